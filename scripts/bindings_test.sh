#!/usr/bin/env bash
# Tests of the generated bindings, end to end:
#   1. builds libfieldcap_ffi and generates the Kotlin and Python bindings from it
#      (scripts/bindings_generate.sh), and builds the `fieldcap` CLI;
#   2. starts a real `fieldcap serve` on 127.0.0.1 (port 0) with a fresh data dir and issues
#      one-time enrolment tokens with `fieldcap token`; makes a fragmented MP4 with ffmpeg for the
#      live-capture checks (FIELDCAP_LIVE_MP4);
#   3. compiles the generated Kotlin + the Android shell's JVM-portable Kotlin + the JVM test with
#      kotlinc against JNA and runs it on the JVM against the host-built library;
#   4. runs the same scenario through the generated Python bindings;
#   5. stops the server. Exit status 0 only if both passed; last line "bindings: N passed, M failed".
# Tools: scripts/install_binding_tools.sh (kotlinc from npm `kotlin-compiler`, Debian libjna-java,
# Debian ffmpeg).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PROFILE=${FIELDCAP_PROFILE:-debug}

# ── tools ──
KOTLIN_HOME=""
if command -v npm >/dev/null 2>&1 && [ -x "$(npm root -g)/kotlin-compiler/bin/kotlinc" ]; then
    KOTLIN_HOME="$(npm root -g)/kotlin-compiler"
elif command -v kotlinc >/dev/null 2>&1; then
    KOTLIN_HOME="$(cd "$(dirname "$(readlink -f "$(command -v kotlinc)")")/.." && pwd)"
fi
[ -n "$KOTLIN_HOME" ] || { echo "kotlinc not found: run scripts/install_binding_tools.sh" >&2; exit 1; }
JNA_JAR=/usr/share/java/jna.jar
[ -e "$JNA_JAR" ] || { echo "JNA not found ($JNA_JAR): run scripts/install_binding_tools.sh" >&2; exit 1; }
COROUTINES_JAR="$KOTLIN_HOME/lib/kotlinx-coroutines-core-jvm.jar"

# ── build and generate ──
bash scripts/bindings_generate.sh
cargo_flags=(-p fieldcap)
[ "$PROFILE" = release ] && cargo_flags+=(--release)
cargo build "${cargo_flags[@]}"
FIELDCAP="${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE/fieldcap"

# ── server ──
WORK="$(mktemp -d "${TMPDIR:-/tmp}/fieldcap-bindings.XXXXXX")"
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/server" "$WORK/kotlin" "$WORK/python"
# The live-capture fixture, made once for both tests: 6 s of fragmented MP4 (a keyframe and a
# fragment every second), which the tests split into pieces themselves.
command -v ffmpeg >/dev/null 2>&1 || { echo "ffmpeg not found: run scripts/install_binding_tools.sh" >&2; exit 1; }
LIVE_MP4="$WORK/live.mp4"
ffmpeg -nostdin -hide_banner -loglevel error -f lavfi -i testsrc=size=320x240:rate=30 -t 6 -c:v libx264 -preset ultrafast -g 30 \
    -movflags frag_keyframe+empty_moov+default_base_moof -f mp4 "$LIVE_MP4"
"$FIELDCAP" serve --data "$WORK/server" --listen 127.0.0.1:0 >"$WORK/server.out" 2>"$WORK/server.err" &
SERVER_PID=$!
URL=""
for _ in $(seq 1 300); do
    line="$(head -n 1 "$WORK/server.out" 2>/dev/null || true)"
    case "$line" in
        "listening on "*) URL="${line#listening on }"; break ;;
    esac
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$URL" ]; then
    echo "fieldcap serve did not start:" >&2
    cat "$WORK/server.err" >&2
    exit 1
fi
echo "server: $URL"
token() { "$FIELDCAP" token --data "$WORK/server" --role "$1" | tail -n 1; }

total_pass=0
total_fail=0
tally() { # the "<lang>: N passed, M failed" line of a test's output
    local line
    line="$(grep -E '^[a-z]+: [0-9]+ passed, [0-9]+ failed$' "$1" | tail -n 1 || true)"
    if [ -z "$line" ]; then
        total_fail=$((total_fail + 1))
        return
    fi
    total_pass=$((total_pass + $(echo "$line" | sed -E 's/^[a-z]+: ([0-9]+) passed.*/\1/')))
    total_fail=$((total_fail + $(echo "$line" | sed -E 's/.* ([0-9]+) failed$/\1/')))
}

# ── Kotlin on the JVM ──
echo "== kotlin (JVM, JNA) =="
KT_OUT="$ROOT/target/bindings/kotlin-test"
mkdir -p "$KT_OUT"
"$KOTLIN_HOME/bin/kotlinc" -nowarn -include-runtime \
    -cp "$JNA_JAR:$COROUTINES_JAR" \
    target/bindings/kotlin/org/fieldcap/core/fieldcap_ffi.kt \
    android-shell/app/src/main/java/org/fieldcap/app/portable/*.kt \
    bindings/tests/kotlin/FieldcapJvmTest.kt \
    -d "$KT_OUT/fieldcap-jvm-test.jar"
kt_status=0
FIELDCAP_SERVER_URL="$URL" FIELDCAP_TOKENS="$(token monitor),$(token police),$(token monitor)" FIELDCAP_WORK="$WORK/kotlin" FIELDCAP_LIVE_MP4="$LIVE_MP4" \
    java -Djna.library.path="${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE" -cp "$KT_OUT/fieldcap-jvm-test.jar:$JNA_JAR:$COROUTINES_JAR" \
    org.fieldcap.test.FieldcapJvmTestKt 2>&1 | tee "$WORK/kotlin.log" || kt_status=$?
tally "$WORK/kotlin.log"
[ "$kt_status" = 0 ] || { echo "kotlin test exited with $kt_status"; total_fail=$((total_fail > 0 ? total_fail : 1)); }

# ── Python ──
echo "== python =="
py_status=0
FIELDCAP_SERVER_URL="$URL" FIELDCAP_TOKENS="$(token monitor),$(token police),$(token monitor)" FIELDCAP_WORK="$WORK/python" FIELDCAP_LIVE_MP4="$LIVE_MP4" \
    PYTHONPATH="$ROOT/target/bindings/python" python3 bindings/tests/python/test_bindings.py 2>&1 | tee "$WORK/python.log" || py_status=$?
tally "$WORK/python.log"
[ "$py_status" = 0 ] || { echo "python test exited with $py_status"; total_fail=$((total_fail > 0 ? total_fail : 1)); }

echo "bindings: $total_pass passed, $total_fail failed"
[ "$total_fail" = 0 ]
