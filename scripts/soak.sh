#!/usr/bin/env bash
# A soak under faults (issue 12): the release `fieldcap serve` on 127.0.0.1 with its data folder
# on a small tmpfs, DEVICES device stores sealing clips, photos and notes and syncing through the
# fault proxy (cuts, stalls, 503s, truncated answers) while the server is SIGKILLed and restarted
# at random, the tmpfs fills up (ENOSPC) and frees again, and the devices' clocks are minutes off
# and jump. Then the faults stop, the queues drain, and every invariant is checked (see
# tests/examples/soak.rs). Prints a summary and the server's memory/fd curve; writes samples.csv,
# summary.txt and server.log to OUT. Exit status non-zero on any invariant violation.
#
#   scripts/soak.sh [--minutes N] [--devices N] [--out DIR] [--tmpfs-mib N] [--seed N]
#                   defaults:   10            30         target/soak/DATE  768
#
# Needs root for the tmpfs mount (unmounted on exit). Without it the data folder is a plain
# folder and the disk-full episodes are skipped (filling the machine's own disk is not an
# option); the summary says so. On a shared machine run it with `nice`.
set -euo pipefail
MINUTES=10; DEVICES=30; OUT=""; TMPFS_MIB=768; SEED=""
while (($#)); do
  case "$1" in
    --minutes) MINUTES=$2; shift 2;;
    --devices) DEVICES=$2; shift 2;;
    --out) OUT=$2; shift 2;;
    --tmpfs-mib) TMPFS_MIB=$2; shift 2;;
    --seed) SEED=$2; shift 2;;
    -h|--help) sed -n '2,16p' "$0"; exit 0;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2;;
  esac
done
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT=${OUT:-$TARGET/soak/$(date -u +%Y%m%dT%H%M%SZ)}
(cd "$ROOT" && cargo build --release -q -p fieldcap && cargo build --release -q -p fieldcap-tests --example soak)
W=$(mktemp -d "${TMPDIR:-/tmp}/fieldcap-soak.XXXXXX")
mkdir -p "$W/root" "$W/work" "$OUT"
MOUNTED=0
cleanup() {
  if ((MOUNTED)); then umount "$W/root" || umount -l "$W/root" || true; fi
  rm -rf "$W"
}
trap cleanup EXIT
EXTRA=()
if mount -t tmpfs -o "size=${TMPFS_MIB}m,mode=0700" fieldcap-soak "$W/root" 2>/dev/null; then
  MOUNTED=1
  echo "soak: data folder on a ${TMPFS_MIB} MiB tmpfs at $W/root"
else
  echo "soak: cannot mount a tmpfs (not root?): the data folder is a plain folder and the disk-full episodes are SKIPPED" >&2
  EXTRA+=(--no-disk-full)
fi
[[ -n $SEED ]] && EXTRA+=(--seed "$SEED")
echo "soak: results in $OUT"
"$TARGET/release/examples/soak" --bin "$TARGET/release/fieldcap" --root "$W/root" --work "$W/work" --out "$OUT" \
  --minutes "$MINUTES" --devices "$DEVICES" "${EXTRA[@]}"
