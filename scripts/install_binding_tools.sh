#!/usr/bin/env bash
# Installs what the generated-binding tests need on a fresh Debian machine (run as root):
#   - kotlinc (npm package kotlin-compiler; it ships kotlinx-coroutines, which the generated
#     Kotlin needs for async calls),
#   - JNA >= 5.12 (Debian libjna-java), which the generated Kotlin loads the library through,
#   - a JDK (already on this kind of machine; installed if missing),
#   - ffmpeg (makes the fragmented MP4 the live-capture checks feed through the bindings),
#   - gcc-aarch64-linux-gnu for scripts/cross_check.sh (the C parts of the core, i.e. SQLite).
# Idempotent: anything already present is skipped.
set -euo pipefail

need_apt=()
command -v java >/dev/null 2>&1 || need_apt+=(default-jdk-headless)
command -v javac >/dev/null 2>&1 || need_apt+=(default-jdk-headless)
[ -e /usr/share/java/jna.jar ] || need_apt+=(libjna-java)
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || need_apt+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
command -v ffmpeg >/dev/null 2>&1 || need_apt+=(ffmpeg)

if [ ${#need_apt[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

# The npm package puts only kotlinc-js on PATH; kotlinc itself lives in the package's bin/.
KOTLIN_HOME="$(npm root -g)/kotlin-compiler"
if [ ! -x "$KOTLIN_HOME/bin/kotlinc" ] && ! command -v kotlinc >/dev/null 2>&1; then
    npm install -g --no-audit --no-fund kotlin-compiler
fi

echo "kotlinc: $( [ -x "$KOTLIN_HOME/bin/kotlinc" ] && echo "$KOTLIN_HOME/bin/kotlinc" || command -v kotlinc)"
echo "jna:     $(readlink -f /usr/share/java/jna.jar)"
echo "java:    $(java -version 2>&1 | head -1)"
echo "python3: $(python3 --version)"
