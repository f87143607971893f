#!/usr/bin/env bash
# Upload ratio with less disk noise than bench_upload.sh: every upload (ours and curl's) goes to a
# FRESH `fieldcap serve` on 127.0.0.1 with a fresh device, page cache warm, disk flushed before
# each timed command, order alternating. Prints each round and the ratio fieldcap / curl.
#
#   [CHUNK=BYTES] scripts/bench_upload_fresh.sh [SIZE_MIB] [ROUNDS]      defaults 512 6
#
# fieldcap's time is the whole `fieldcap sync` (clock, manifest, media with its verification,
# receipt and proofs); curl's is one tus PATCH of the same bytes to an upload URL the device got
# from `sync --manifests-only` (the server re-hashes and receipts on completion in both cases).
set -euo pipefail
SIZE=${1:-512}; ROUNDS=${2:-6}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
(cd "$ROOT" && cargo build --release -q -p fieldcap)
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/fieldcap"
W=$(mktemp -d "${TMPDIR:-/tmp}/fieldcap-bench-fresh.XXXXXX")
trap 'rm -rf "$W"' EXIT
head -c $((SIZE<<20)) /dev/urandom > $W/src.mp4
setup() { # dir -> url
  local d=$1
  $BIN serve --data $d/srv --listen 127.0.0.1:0 > $d/out 2>/dev/null & echo $! > $d/pid
  for _ in $(seq 100); do grep -q listening $d/out 2>/dev/null && break; sleep 0.05; done
  local url; url=$(head -1 $d/out | sed 's/^listening on //')
  $BIN --home $d/dev init --role monitor >/dev/null
  local tok; tok=$($BIN token --data $d/srv --role monitor | tail -1)
  $BIN --home $d/dev enroll --server $url --token=$tok >/dev/null
  cp $W/src.mp4 $d/c.mp4; $BIN --home $d/dev capture $d/c.mp4 >/dev/null
  echo $url > $d/url
}
fc() { local d; d=$(mktemp -d $W/r.XXXX); setup $d; sync; local t0 t1; t0=$(date +%s.%N)
  $BIN --home $d/dev sync --timeout 600 ${CHUNK:+--chunk-size $CHUNK} >/dev/null; t1=$(date +%s.%N)
  kill $(cat $d/pid); wait 2>/dev/null || true; rm -rf $d; python3 -c "print(f'{$t1-$t0:.3f}')"; }
cu() { local d; d=$(mktemp -d $W/r.XXXX); setup $d
  $BIN --home $d/dev sync --manifests-only >/dev/null
  local u; u=$(sqlite3 $d/dev/fieldcap.db "SELECT upload_url FROM items LIMIT 1"); u="$(cat $d/url)$u"
  cat $d/dev/items/*/media.mp4 > /dev/null; sync; local t0 t1; t0=$(date +%s.%N)
  curl -sS -f -o /dev/null -X PATCH -H "Tus-Resumable: 1.0.0" -H "Upload-Offset: 0" -H "Expect:" -H "Content-Type: application/offset+octet-stream" -T $(ls $d/dev/items/*/media.mp4) "$u"
  t1=$(date +%s.%N)
  kill $(cat $d/pid); wait 2>/dev/null || true; rm -rf $d; python3 -c "print(f'{$t1-$t0:.3f}')"; }
for r in $(seq $ROUNDS); do
  if (( r % 2 )); then a=$(cu); b=$(fc); else b=$(fc); a=$(cu); fi
  echo "round $r  curl $a  fieldcap $b  ratio $(python3 -c "print(f'{$b/$a:.3f}')")"
done
