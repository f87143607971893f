#!/usr/bin/env bash
# Upload benchmarks of the device sync client against a real `fieldcap serve` on 127.0.0.1.
#
#   [ROUNDS=3] scripts/bench_upload.sh [SIZE_MIB] [DEVICES] [CLIPS_PER_DEVICE] [CLIP_KIB]
#   defaults:                1024       50        20                 512
#
# 1. One clip of SIZE_MIB: `fieldcap sync` (manifest, verification of the bytes while they are sent, tus PATCHes of
#    4 MiB, receipt verification) vs `curl` sending the same bytes as ONE tus PATCH to an upload
#    URL of the same server (a second device's commitment for an identical clip). Ratio goal ≤ 1.10.
# 2. Bytes re-sent after a cut: a sync stopped by its time budget mid-upload, then resumed.
# 3. DEVICES × CLIPS_PER_DEVICE clips synced concurrently into one server: throughput, next to
#    the disk's sequential write rate measured with dd (fdatasync) in the same run.
# 4. Online latency from seal to manifest committed (`capture` then `sync --manifests-only`).
# Everything runs on loopback; the work folder is removed at the end.
set -euo pipefail
SIZE_MIB=${1:-1024}
DEVICES=${2:-50}
CLIPS=${3:-20}
CLIP_KIB=${4:-512}
ROUNDS=${ROUNDS:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
cargo build --release -q -p fieldcap
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/fieldcap"
W=$(mktemp -d "${TMPDIR:-/tmp}/fieldcap-bench.XXXXXX")
SERVER_PID=""
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT

now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.3f}')"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(d$1)"; }

"$BIN" serve --data "$W/server" --listen 127.0.0.1:0 > "$W/server.out" 2>"$W/server.err" &
SERVER_PID=$!
for _ in $(seq 100); do grep -q "listening on" "$W/server.out" 2>/dev/null && break; sleep 0.1; done
URL=$(head -1 "$W/server.out" | sed 's/^listening on //')
echo "server: $URL   data: $W/server"
enroll() { # HOME ROLE
  "$BIN" --home "$1" init --role "$2" >/dev/null
  local tok; tok=$("$BIN" token --data "$W/server" --role "$2" | tail -1)
  "$BIN" --home "$1" enroll --server "$URL" --token="$tok" >/dev/null
}
upload_url() { # HOME -> absolute upload URL of its newest item
  local u; u=$(sqlite3 "$1/fieldcap.db" "SELECT upload_url FROM items ORDER BY seq DESC LIMIT 1")
  case "$u" in http*) echo "$u";; *) echo "${URL%/}$u";; esac
}

echo "== 1. one ${SIZE_MIB} MiB clip: fieldcap sync vs curl (one tus PATCH), ${ROUNDS} rounds, order alternating"
# Each round uses fresh devices and clips (an upload happens once). Before each timed command the
# disk is flushed (`sync`), so neither side pays for the other's writeback; the order alternates
# so that neither side always runs on a colder disk. Medians are reported.
T_CURLS=(); T_FCS=()
for r in $(seq 1 "$ROUNDS"); do
  head -c "$((SIZE_MIB << 20))" /dev/urandom > "$W/a$r.mp4"
  cp "$W/a$r.mp4" "$W/b$r.mp4"
  enroll "$W/devA$r" monitor
  enroll "$W/devB$r" monitor
  "$BIN" --home "$W/devA$r" capture "$W/a$r.mp4" >/dev/null
  "$BIN" --home "$W/devB$r" capture "$W/b$r.mp4" >/dev/null
  "$BIN" --home "$W/devB$r" sync --manifests-only --json >/dev/null
  UB=$(upload_url "$W/devB$r")
  BFILE=$(ls "$W"/devB$r/items/*/media.mp4)
  cat "$W"/devA$r/items/*/media.mp4 "$BFILE" > /dev/null   # both files warm in the page cache
  run_curl() {
    sync; local t0 t1; t0=$(now)
    curl -sS -f -o /dev/null -X PATCH -H "Tus-Resumable: 1.0.0" -H "Upload-Offset: 0" -H "Expect:" \
      -H "Content-Type: application/offset+octet-stream" -T "$BFILE" "$UB"
    t1=$(now); T_CURLS+=("$(secs "$t0" "$t1")")
  }
  run_fc() {
    sync; local t0 t1; t0=$(now)
    "$BIN" --home "$W/devA$r" sync --json > "$W/a$r.json"
    t1=$(now); T_FCS+=("$(secs "$t0" "$t1")")
  }
  if [ $((r % 2)) -eq 1 ]; then run_curl; run_fc; else run_fc; run_curl; fi
  echo "round $r: curl ${T_CURLS[-1]} s, fieldcap sync ${T_FCS[-1]} s"
  rm -f "$W/a$r.mp4" "$W/b$r.mp4"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
T_CURL=$(median "${T_CURLS[@]}"); T_FC=$(median "${T_FCS[@]}")
RATIO=$(python3 -c "print(f'{$T_FC / $T_CURL:.3f}')")
echo "curl one PATCH (median):           ${T_CURL} s  ($(python3 -c "print(f'{$SIZE_MIB / $T_CURL:.0f}')") MiB/s)"
echo "fieldcap sync, complete (median):  ${T_FC} s  ($(python3 -c "print(f'{$SIZE_MIB / $T_FC:.0f}')") MiB/s)  [includes re-hash of the file, manifest, receipt + proofs]"
echo "ratio fieldcap/curl:               ${RATIO}   (goal <= 1.10)"

echo "== 2. bytes re-sent after a cut (256 MiB clip, 4 MiB chunks, sync stopped by a 1 s budget)"
head -c $((256 << 20)) /dev/urandom > "$W/c.mp4"
enroll "$W/devC" police
"$BIN" --home "$W/devC" capture "$W/c.mp4" >/dev/null
"$BIN" --home "$W/devC" sync --json --timeout 1 > "$W/c1.json" || true
"$BIN" --home "$W/devC" sync --json > "$W/c2.json"
C1=$(json "['bytes_uploaded']" < "$W/c1.json"); C2=$(json "['bytes_uploaded']" < "$W/c2.json"); R2=$(json "['bytes_resent']" < "$W/c2.json")
echo "cut after ${C1} bytes; resumed with ${C2} bytes; re-sent ${R2} bytes (one chunk = 4194304)"

echo "== 3. ${DEVICES} devices x ${CLIPS} clips of ${CLIP_KIB} KiB, concurrently"
for d in $(seq "$DEVICES"); do
  H="$W/fleet/$d"; enroll "$H" monitor
  for c in $(seq "$CLIPS"); do
    head -c "$((CLIP_KIB << 10))" /dev/urandom > "$W/fleet/$d-$c.mp4"
    "$BIN" --home "$H" capture "$W/fleet/$d-$c.mp4" >/dev/null
  done
done
TOTAL=$((DEVICES * CLIPS * CLIP_KIB << 10))
t0=$(now)
pids=()
for d in $(seq "$DEVICES"); do "$BIN" --home "$W/fleet/$d" sync --json > "$W/fleet/$d.json" 2>&1 & pids+=($!); done
fail=0; for p in "${pids[@]}"; do wait "$p" || fail=$((fail + 1)); done
t1=$(now)
T_FLEET=$(secs "$t0" "$t1")
LEFT=$(for d in $(seq "$DEVICES"); do sqlite3 "$W/fleet/$d/fieldcap.db" "SELECT COUNT(*) FROM items WHERE state != 'receipted'"; done | paste -sd+ | bc)
dd if=/dev/zero of="$W/dd.bin" bs=4M count=256 conv=fdatasync 2> "$W/dd.txt"
DD=$(tail -1 "$W/dd.txt")
echo "fleet: $((DEVICES * CLIPS)) clips, $((TOTAL >> 20)) MiB in ${T_FLEET} s = $(python3 -c "print(f'{$TOTAL / 1048576 / $T_FLEET:.1f}')") MiB/s; not receipted: ${LEFT}; failed syncs: ${fail}"
echo "disk (dd 1 GiB, fdatasync): ${DD}"

echo "== 4. seal -> manifest committed, online (20 samples)"
enroll "$W/devL" monitor
LAT=()
for i in $(seq 20); do
  head -c 65536 /dev/urandom > "$W/l$i.mp4"
  t0=$(now)
  "$BIN" --home "$W/devL" capture "$W/l$i.mp4" >/dev/null
  "$BIN" --home "$W/devL" sync --manifests-only --json >/dev/null
  t1=$(now)
  LAT+=("$(secs "$t0" "$t1")")
done
printf '%s\n' "${LAT[@]}" | python3 -c "import sys,statistics as s; v=sorted(float(x) for x in sys.stdin); print(f'seal->committed (capture + sync --manifests-only, two process starts): median {s.median(v)*1000:.0f} ms, max {v[-1]*1000:.0f} ms')"
