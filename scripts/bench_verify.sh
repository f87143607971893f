#!/usr/bin/env bash
# Package verification benchmark: `fieldcap verify PACKAGE` against `sha256sum --check SHA256SUMS`
# plus `b3sum --check B3SUMS` on the same package, page cache warm for all three.
#
#   scripts/bench_verify.sh [TOTAL_MIB] [CLIPS]      defaults: 4096 4   (4 GiB of media in 4 clips)
#
# Builds a real package: `fieldcap serve` on 127.0.0.1, one device captures CLIPS clips of
# random bytes, syncs (with --purge, so the device copies are dropped), `fieldcap package`
# exports them. Then each command runs 3 times and the best wall time is kept.
# Goal: fieldcap verify ≤ 0.6 × (sha256sum --check + b3sum --check).
# Needs about 3 × TOTAL_MIB of free disk in $TMPDIR; the work folder is removed at the end.
set -euo pipefail
TOTAL_MIB=${1:-4096}
CLIPS=${2:-4}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release -q -p fieldcap
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/fieldcap"
W=$(mktemp -d "${TMPDIR:-/tmp}/fieldcap-bench-verify.XXXXXX")
SERVER_PID=""
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT

"$BIN" serve --data "$W/server" --listen 127.0.0.1:0 > "$W/server.out" 2>"$W/server.err" &
SERVER_PID=$!
for _ in $(seq 100); do grep -q "listening on" "$W/server.out" 2>/dev/null && break; sleep 0.1; done
URL=$(head -1 "$W/server.out" | sed 's/^listening on //')
"$BIN" --home "$W/dev" init --role police >/dev/null
TOK=$("$BIN" token --data "$W/server" --role police | tail -1)
"$BIN" --home "$W/dev" enroll --server "$URL" --token="$TOK" >/dev/null
PER=$((TOTAL_MIB / CLIPS))
for i in $(seq "$CLIPS"); do
  head -c "$((PER * 1024 * 1024))" /dev/urandom > "$W/clip$i.mp4"
  "$BIN" --home "$W/dev" capture "$W/clip$i.mp4" --started-at "2025-06-07T18:0$i:00Z" --ended-at "2025-06-07T18:0$i:30Z" >/dev/null
done
"$BIN" --home "$W/dev" sync --purge >/dev/null
"$BIN" package --data "$W/server" --from 2025-06-07T18:00:00Z --to 2025-06-07T19:00:00Z \
  --out "$W/pkg" --recipient "benchmark" --purpose "benchmark" >/dev/null
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
rm -rf "$W/server/blobs"
echo "package: $(du -sh "$W/pkg" | cut -f1) in $(find "$W/pkg" -type f | wc -l) files; $(nproc) cores"

best() { # command... ; prints the best of 3 wall times in seconds
  local b=""
  for _ in 1 2 3; do
    local s e t
    s=$(date +%s.%N); "$@" >/dev/null 2>&1 || { echo "FAILED: $*" >&2; exit 1; }; e=$(date +%s.%N)
    t=$(echo "$e - $s" | bc -l)
    if [ -z "$b" ] || [ "$(echo "$t < $b" | bc -l)" = 1 ]; then b=$t; fi
  done
  printf '%.3f' "$b"
}
cat "$W"/pkg/clips/*/media.* > /dev/null   # warm the page cache
cd "$W/pkg"
V=$(best "$BIN" verify .)
S=$(best sha256sum --check --quiet SHA256SUMS)
B=$(best b3sum --check --quiet B3SUMS)
R=$(echo "$V / ($S + $B)" | bc -l)
printf 'fieldcap verify          %8.3f s\n' "$V"
printf 'sha256sum --check        %8.3f s\n' "$S"
printf 'b3sum --check            %8.3f s\n' "$B"
printf 'ratio verify/(sha+b3)    %8.3f   (goal <= 0.6)\n' "$R"
