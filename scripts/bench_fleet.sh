#!/usr/bin/env bash
# Fleet throughput of the intake server (issue 9): many devices syncing at once into one
# `fieldcap serve` on 127.0.0.1, next to the disk's sequential write rate measured in the same run.
#
#   [EXTRA_SERVE_ARGS="--records postgres://… --blobs s3://…"] [SCALED=1] [REPLICAS=1] [BIN=…] \
#   [NICE=5] [PHASES=clips,obs] [PROFILE="strace -f -c -o FILE -p"] \
#   scripts/bench_fleet.sh [DEVICES] [CLIPS] [CLIP_MIB] [OBS_PER_DEVICE]
#   defaults:               50        4       32         100      (CLIP_MIB may be KiB: 256k)
#
# SCALED=1: each phase runs on a scaled deployment of its own made here: a fresh database on the
# local PostgreSQL (scripts/start_postgres.sh) and a moto S3 server on 127.0.0.1 with a bucket
# with Object Lock (scripts/start_s3.sh), both removed at the end. REPLICAS=N (scaled only): N
# `fieldcap serve` processes on those stores with one server key; device i enrols and syncs
# through replica (i mod N), so the replicas take the fleet at once.
#
# 1. disk: `dd bs=4M count=256 conv=fdatasync` into the work folder (the same filesystem as the
#    server's data folder), MB/s as dd prints it (10^6 bytes).
# 2. clips: DEVICES device homes, each enrolled and holding CLIPS sealed clips of CLIP_MIB MiB
#    (distinct random contents); then every device runs `fieldcap sync` at once. Printed: clips,
#    MiB, seconds, MiB/s and MiB/s ÷ the disk's rate (both in bytes per second).
# 3. observations: the same devices each seal OBS_PER_DEVICE observations (`fieldcap observe`),
#    then sync at once. Printed: items, seconds, items/s.
# Disk: the clips are held twice (the devices' stores and the server's), so the clip phase needs
# 2 × DEVICES × CLIPS × CLIP_MIB MiB free plus a margin; it refuses to start with less (the
# default 50 × 4 × 32 MiB needs 12.5 GiB + 2 GiB).
# After each phase every device's items are checked with `fieldcap clips --json`: all must be
# `receipted`, else the script fails. The load average is printed before and after. The server's
# and devices' folders are removed at the end (and the clip phase's data before the next phase).
set -euo pipefail
DEVICES=${1:-50}
CLIPS=${2:-4}
CLIP_MIB=${3:-32}
case "$CLIP_MIB" in
  *k) CLIP_KIB=${CLIP_MIB%k} ;;
  *) CLIP_KIB=$((CLIP_MIB * 1024)) ;;
esac
OBS=${4:-100}
NICE=${NICE:-5}
PHASES=${PHASES:-clips,obs}
PROFILE=${PROFILE:-}
EXTRA_SERVE_ARGS=${EXTRA_SERVE_ARGS:-}
SCALED=${SCALED:-}
REPLICAS=${REPLICAS:-1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
if [ "$REPLICAS" -gt 1 ] && [ -z "$SCALED" ] && [ -z "$EXTRA_SERVE_ARGS" ]; then
  echo "REPLICAS > 1 needs shared stores: SCALED=1 or EXTRA_SERVE_ARGS" >&2
  exit 2
fi
if [ -z "${BIN:-}" ]; then
  cargo build --release -q -p fieldcap
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/fieldcap"
fi
W=$(mktemp -d "${TMPDIR:-/tmp}/fieldcap-fleet.XXXXXX")
SERVER_PIDS=()
MOTO_PID=""
PG_ADMIN=""
DBS=()
stop_server() {
  for p in "${SERVER_PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  SERVER_PIDS=()
  if [ -n "$MOTO_PID" ]; then kill "$MOTO_PID" 2>/dev/null || true; wait "$MOTO_PID" 2>/dev/null || true; MOTO_PID=""; fi
}
cleanup() {
  stop_server
  for db in "${DBS[@]}"; do psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true; done
  chmod -R u+w "$W" 2>/dev/null || true; rm -rf "$W"
}
trap cleanup EXIT
if [ -n "$SCALED" ]; then
  PG_ADMIN=$(bash scripts/start_postgres.sh)
  bash scripts/start_s3.sh
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
fi
# SCALED: a fresh database and a moto server with an Object Lock bucket; sets EXTRA_SERVE_ARGS.
make_scaled_stores() { # NAME
  local db="fleet_$1_$$" port
  psql -q "$PG_ADMIN" -c "CREATE DATABASE $db" >/dev/null
  DBS+=("$db")
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  moto_server -H 127.0.0.1 -p "$port" > "$W/moto-$1.log" 2>&1 &
  MOTO_PID=$!
  for _ in $(seq 100); do python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/')" 2>/dev/null && break; sleep 0.2; done
  python3 -c "
import boto3
boto3.client('s3', endpoint_url='http://127.0.0.1:$port', region_name='us-east-1').create_bucket(Bucket='fleet', ObjectLockEnabledForBucket=True)"
  EXTRA_SERVE_ARGS="--records ${PG_ADMIN%/*}/$db --blobs s3://fleet?endpoint=http://127.0.0.1:$port"
}
N() { nice -n "$NICE" "$@"; }
now() { date +%s.%N; }
calc() { python3 -c "print($1)"; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

start_server() { # DATA: REPLICAS servers (DATA-1, DATA-2, …; one key); sets URLS, SERVER_ERR
  local r data log
  URLS=()
  for r in $(seq "$REPLICAS"); do
    data="$1-$r"
    log="$data.log"
    if [ "$r" -gt 1 ]; then
      mkdir -p "$data"
      cp "$1-1/server.key" "$1-1/server.pub.pem" "$data/"
    fi
    # shellcheck disable=SC2086
    nice -n "$NICE" "$BIN" serve --data "$data" --listen 127.0.0.1:0 $EXTRA_SERVE_ARGS > "$log.out" 2> "$log.err" &
    SERVER_PIDS+=($!)
    for _ in $(seq 1200); do grep -q "listening on" "$log.out" 2>/dev/null && break; sleep 0.1; done
    grep -q "listening on" "$log.out" || { echo "the server did not start within 120 s:" >&2; cat "$log.err" >&2; exit 1; }
    URLS+=("$(head -1 "$log.out" | sed 's/^listening on //')")
  done
  URL=${URLS[0]}
  SERVER_ERR="$1-1.log.err"
  DATA1="$1-1"
}
enroll() { # HOME DEVICE_NUMBER: through replica (DEVICE_NUMBER mod REPLICAS)
  "$BIN" --home "$1" init --role monitor >/dev/null
  local tok; tok=$("$BIN" token --data "$DATA1" --role monitor $EXTRA_SERVE_ARGS | tail -1)
  "$BIN" --home "$1" enroll --server "${URLS[$(( $2 % REPLICAS ))]}" --token="$tok" >/dev/null
}
# Runs `fieldcap sync` on every device at once; sets SECS, FAILED, and the CPU seconds (user +
# system) of the server (SRV_CPU) and of all the device processes together (DEV_CPU) meanwhile.
cpu_of() { local p t=0; for p in "${SERVER_PIDS[@]}"; do t=$(calc "$t + $(awk '{print ($14 + $15) / 100}' "/proc/$p/stat")"); done; echo "$t"; }
fleet_sync() { # PREFIX
  local t0 t1 prof="" c0 c1
  # PROFILE: a command that is given the server's pid, runs during the syncs, and is stopped
  # with SIGTERM after them (e.g. `strace -f -c -o FILE -p`, `perf record -g -o FILE -p`).
  if [ -n "$PROFILE" ]; then $PROFILE "${SERVER_PIDS[0]}" 2>/dev/null & prof=$!; sleep 1; fi
  c0=$(cpu_of)
  t0=$(now)
  (
    pids=(); failed=0
    for d in $(seq "$DEVICES"); do N "$BIN" --home "$1/$d" sync --json > "$1/$d.sync.json" 2>&1 & pids+=($!); done
    for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
    echo "$failed"
    times
  ) > "$1.result"
  t1=$(now)
  c1=$(cpu_of)
  if [ -n "$prof" ]; then kill -TERM "$prof"; wait "$prof" || true; fi
  SECS=$(calc "f'{$t1 - $t0:.3f}'")
  FAILED=$(head -1 "$1.result")
  DEV_CPU=$(tail -1 "$1.result" | python3 -c "
import sys
tot = 0.0
for t in sys.stdin.read().split():
    m, s = t.rstrip('s').split('m')
    tot += float(m) * 60 + float(s)
print(f'{tot:.1f}')")
  SRV_CPU=$(calc "f'{$c1 - $c0:.1f}'")
}
# Counts items not `receipted` over every device (fieldcap clips --json); sets LEFT and ITEMS.
check_receipted() { # PREFIX
  local out
  out=$(for d in $(seq "$DEVICES"); do "$BIN" --home "$1/$d" clips --json; done | python3 -c '
import json, sys
dec = json.JSONDecoder(); s = sys.stdin.read(); i = 0; n = left = 0
while True:
    while i < len(s) and s[i].isspace(): i += 1
    if i >= len(s): break
    v, i = dec.raw_decode(s, i)
    for it in v["items"]:
        n += 1
        left += it["state"] != "receipted"
print(n, left)')
  ITEMS=${out% *}; LEFT=${out#* }
}

echo "machine: $(nproc) cores, load $(load), $(uname -r)"
echo "== 1. disk: dd bs=4M count=256 conv=fdatasync"
dd if=/dev/zero of="$W/dd.bin" bs=4M count=256 conv=fdatasync 2> "$W/dd.txt"
rm -f "$W/dd.bin"
DD_LINE=$(tail -1 "$W/dd.txt")
DD_BPS=$(python3 - "$DD_LINE" <<'EOF'
import re, sys
m = re.search(r'([0-9.,]+) ([kMG]?)B/s', sys.argv[1])
v = float(m.group(1).replace(',', '.')); mult = {'': 1, 'k': 1e3, 'M': 1e6, 'G': 1e9}[m.group(2)]
print(v * mult)
EOF
)
echo "disk: $DD_LINE"

if [[ $PHASES == *clips* ]]; then
NEED_KIB=$(( 2 * DEVICES * CLIPS * CLIP_KIB + 2048 * 1024 ))
FREE_KIB=$(df -Pk "$W" | awk 'NR==2 {print $4}')
if [ "$FREE_KIB" -lt "$NEED_KIB" ]; then
  echo "not enough disk for the clip phase: $((FREE_KIB >> 20)) GiB free, $((NEED_KIB >> 20)) GiB needed (fewer or smaller clips)" >&2
  exit 2
fi
echo "== 2. ${DEVICES} devices x ${CLIPS} clips x ${CLIP_KIB} KiB"
if [ -n "$SCALED" ]; then make_scaled_stores clips; fi
start_server "$W/server"
echo "servers: ${URLS[*]} ${EXTRA_SERVE_ARGS:+(PostgreSQL + S3)}"
head -c "$((CLIP_KIB << 10))" /dev/urandom > "$W/base.bin"
mkdir -p "$W/fleet"
for d in $(seq "$DEVICES"); do
  enroll "$W/fleet/$d" "$d"
  for c in $(seq "$CLIPS"); do
    f="$W/fleet/$d-$c.mp4"
    # Distinct contents per clip (the server stores each distinct original once): the random
    # base with the first 32 bytes replaced.
    cp "$W/base.bin" "$f"
    printf '%032d' "$((d * 100000 + c))" | dd of="$f" conv=notrunc status=none
    "$BIN" --home "$W/fleet/$d" capture "$f" >/dev/null
  done
done
rm -f "$W/base.bin"
sync
TOTAL=$((DEVICES * CLIPS * CLIP_KIB << 10))
echo "load before: $(load)"
fleet_sync "$W/fleet"
echo "load after:  $(load)"
check_receipted "$W/fleet"
MIBS=$(calc "f'{$TOTAL / 1048576 / $SECS:.1f}'")
RATIO=$(calc "f'{$TOTAL / $SECS / $DD_BPS:.3f}'")
echo "clips: ${ITEMS} clips, $((TOTAL >> 20)) MiB in ${SECS} s = $(calc "f'{$ITEMS / $SECS:.1f}'") clips/s, ${MIBS} MiB/s; disk dd $(calc "f'{$DD_BPS / 1048576:.1f}'") MiB/s; ratio ${RATIO} (goal >= 0.6)"
echo "clips: not receipted ${LEFT}; failed syncs ${FAILED}; CPU seconds meanwhile: server ${SRV_CPU}, devices ${DEV_CPU}"
if [ -n "$MOTO_PID" ]; then echo "clips: moto S3 server peak RSS $(awk '/VmHWM/ {print $2, $3}' "/proc/$MOTO_PID/status")"; fi
[ "$LEFT" = 0 ] && [ "$FAILED" = 0 ] || { echo "FAILED: not every clip receipted" >&2; tail -5 "$SERVER_ERR" >&2; exit 1; }
stop_server
chmod -R u+w "$W/fleet" "$W/server" 2>/dev/null || true
rm -rf "$W/fleet" "$W/server"-*
fi

[[ $PHASES == *obs* ]] || exit 0
echo "== 3. ${DEVICES} devices x ${OBS} observations"
if [ -n "$SCALED" ]; then make_scaled_stores obs; fi
start_server "$W/server2"
mkdir -p "$W/obs"
for d in $(seq "$DEVICES"); do enroll "$W/obs/$d" "$d"; done
# Sealing: one loop per device, a few devices at a time.
seal_obs() { for i in $(seq "$OBS"); do "$BIN" --home "$W/obs/$1" observe --text "observation $i of device $1" >/dev/null; done; }
pids=()
for d in $(seq "$DEVICES"); do
  seal_obs "$d" & pids+=($!)
  if [ "${#pids[@]}" -ge 4 ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
done
for p in "${pids[@]}"; do wait "$p"; done
echo "load before: $(load)"
fleet_sync "$W/obs"
echo "load after:  $(load)"
check_receipted "$W/obs"
echo "observations: ${ITEMS} items in ${SECS} s = $(calc "f'{$ITEMS / $SECS:.1f}'") items/s (goal >= 300); not receipted ${LEFT}; failed syncs ${FAILED}"
echo "observations: CPU seconds meanwhile: server ${SRV_CPU}, devices ${DEV_CPU}"
[ "$LEFT" = 0 ] && [ "$FAILED" = 0 ] || { echo "FAILED: not every observation receipted" >&2; tail -5 "$SERVER_ERR" >&2; exit 1; }
