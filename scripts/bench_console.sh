#!/usr/bin/env bash
# Console benchmarks against a real `fieldcap serve --console-listen` on 127.0.0.1.
#
#   scripts/bench_console.sh [SIZE_MIB] [OBSERVATIONS]
#   defaults:                  512        500
#
# 1. Serving an original: `curl` of GET /media/{clip} (whole, through the console: session
#    check, custody event, streaming) vs `cat` of the same bytes from the blob folder, and a
#    1 MiB range from the middle (what a seeking browser asks), median of 5; ratio printed.
# 2. Pages over OBSERVATIONS + 1 items in one incident: /incidents, the incident's review page
#    (which verifies every item: signature, receipt, log inclusion, custody), an item page;
#    median of 5 each.
# Not part of scripts/test.sh. The work folder is removed at the end.
set -euo pipefail
SIZE_MIB=${1:-512}
OBS=${2:-500}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
cargo build --release -q -p fieldcap
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/fieldcap"
W=$(mktemp -d "${TMPDIR:-/tmp}/fieldcap-bench-console.XXXXXX")
SERVER_PID=""
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT
now() { date +%s.%N; }
median() { python3 -c "import statistics,sys; print(f'{statistics.median(float(x) for x in sys.argv[1:]):.4f}')" "$@"; }

"$BIN" serve --data "$W/server" --listen 127.0.0.1:0 --console-listen 127.0.0.1:0 > "$W/server.out" 2>"$W/server.err" &
SERVER_PID=$!
for _ in $(seq 100); do grep -q "console on" "$W/server.out" 2>/dev/null && break; sleep 0.1; done
URL=$(sed -n 's/^listening on //p' "$W/server.out")
CONSOLE=$(sed -n 's/^console on //p' "$W/server.out")
echo "server $URL, console $CONSOLE"

"$BIN" --home "$W/dev" init --role monitor >/dev/null
TOK=$("$BIN" token --data "$W/server" --role monitor | tail -1)
"$BIN" --home "$W/dev" enroll --server "$URL" --token="$TOK" >/dev/null
head -c "$((SIZE_MIB << 20))" /dev/urandom > "$W/clip.mp4"
START=$(date -u -d '-10 minutes' +%Y-%m-%dT%H:%M:%SZ)
END=$(date -u -d '-5 minutes' +%Y-%m-%dT%H:%M:%SZ)
"$BIN" --home "$W/dev" capture "$W/clip.mp4" --started-at "$START" --ended-at "$END" >/dev/null
for i in $(seq "$OBS"); do
  "$BIN" --home "$W/dev" observe --text "note $i" --lat 33.7361 --lon -118.2922 --field agency=ICE >/dev/null
done
"$BIN" --home "$W/dev" sync >/dev/null
CLIP=$("$BIN" --home "$W/dev" clips --json | python3 -c "import json,sys; print([c['clip_id'] for c in json.load(sys.stdin)['items'] if c['kind']=='video'][0])")

# A supervisor's session.
LINK=$("$BIN" staff add --data "$W/server" --name bench --role supervisor | tail -1)
curl -s -o /dev/null -X POST --data "password=benchmark-password&password2=benchmark-password" "$LINK"
curl -s -c "$W/jar" -b "$W/jar" "$CONSOLE/login" > "$W/login.html"
CSRF=$(grep -o 'name="csrf" value="[^"]*"' "$W/login.html" | sed 's/.*value="//; s/"$//')
curl -s -c "$W/jar" -b "$W/jar" -o /dev/null --data-urlencode "name=bench" --data-urlencode "password=benchmark-password" --data-urlencode "csrf=$CSRF" "$CONSOLE/login"

BLOB=$(find "$W/server/blobs" -type f -size +1M | head -1)
echo "== 1. one ${SIZE_MIB} MiB original: GET /media (curl) vs cat of the blob, median of 5"
TC=(); TM=(); TR=()
MID=$(( (SIZE_MIB << 19) ))
for r in 1 2 3 4 5; do
  a=$(now); cat "$BLOB" > /dev/null; b=$(now); TC+=("$(python3 -c "print($b-$a)")")
  a=$(now); curl -s -b "$W/jar" -o /dev/null "$CONSOLE/media/$CLIP"; b=$(now); TM+=("$(python3 -c "print($b-$a)")")
  a=$(now); curl -s -b "$W/jar" -o /dev/null -H "Range: bytes=$MID-$((MID + 1048575))" "$CONSOLE/media/$CLIP"; b=$(now); TR+=("$(python3 -c "print($b-$a)")")
done
C=$(median "${TC[@]}"); M=$(median "${TM[@]}"); R=$(median "${TR[@]}")
echo "cat ${C}s  console ${M}s  ratio $(python3 -c "print(f'{$M/$C:.2f}')")  ($(python3 -c "print(f'{$SIZE_MIB/$M:.0f}')") MiB/s)"
echo "1 MiB range from the middle: ${R}s"
INC=$(curl -s -b "$W/jar" "$CONSOLE/incidents" | grep -o 'data-incident-id="[^"]*"' | head -1 | sed 's/.*="//; s/"$//')
echo "== 2. pages over $((OBS + 1)) items in one incident, median of 5"
for page in /incidents "/incidents/$INC" "/items/$CLIP" /reports/moia.csv; do
  T=()
  for r in 1 2 3 4 5; do
    a=$(now); code=$(curl -s -b "$W/jar" -o /dev/null -w '%{http_code}' "$CONSOLE$page"); b=$(now)
    [ "$code" = 200 ] || { echo "$page answered $code"; exit 1; }
    T+=("$(python3 -c "print($b-$a)")")
  done
  echo "$page: $(median "${T[@]}")s"
done
