#!/usr/bin/env bash
# Builds libfieldcap_ffi.so for the app's ABIs with cargo-ndk into app/src/main/jniLibs.
# Needs: the Android NDK (ANDROID_NDK_HOME), `cargo install cargo-ndk`, and
# `rustup target add aarch64-linux-android x86_64-linux-android`.
# Not runnable on the project's build machines (no Android NDK there); see ../README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
PROFILE=${1:-release}
flags=()
[ "$PROFILE" = release ] && flags+=(--release)
cargo ndk -t arm64-v8a -t x86_64 -P 26 -o android-shell/app/src/main/jniLibs build -p fieldcap-ffi "${flags[@]}"
# The Kotlin bindings come from the host build of the same sources (library mode).
bash scripts/bindings_generate.sh
