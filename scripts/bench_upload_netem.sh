#!/usr/bin/env bash
# Uploads on a constrained link: `fieldcap sync`, tuspy and one curl PATCH send the same
# SIZE_MIB random file across an emulated link (default 20 Mbit/s, 60 ms RTT, 1 % loss);
# each is reported as seconds, goodput and a fraction of the link's capacity.
#
#   sudo scripts/bench_upload_netem.sh
#   sudo SIZE_MIB=16 RATE=50 ROUNDS=3 BIN=target/release/fieldcap scripts/bench_upload_netem.sh
#   sudo LIVE_SECONDS=60 RATE=5 DELAY_MS=40 LOSS=0 scripts/bench_upload_netem.sh   # live capture lag
#
# Live mode (LIVE_SECONDS set; issue 11): instead of the three uploads, one live recording across
# the link — a 1080p fMP4 from ffmpeg (LIVE_MBIT Mbit/s [4], a fragment every 2 s) recorded at its
# own pace with `fieldcap record --live` in the device namespace; printed: each piece's lag
# (server acknowledgement received − piece sealed, device clock) as min / median / p90 / max, and
# in fragments.
#
# Environment (defaults in brackets):
#   BIN       fieldcap binary [built with `cargo build --release -p fieldcap` in this repo]
#   SIZE_MIB  file size [256]           ROUNDS   rounds, each order rotated [1]
#   RATE      link rate, Mbit/s [20]    DELAY_MS one-way delay per direction, ms [30]
#   LOSS      loss per direction, % [1] LIMIT    queue limit per direction, packets [1000]
#   SEED      loss RNG seed, userspace link only [1]
#   LINK      auto | netem | user [auto: netem when the kernel has sch_netem, else user]
#   TCP_CC    congestion control in both namespaces [cubic, the usual phone default]
#   CHUNK     bytes per PATCH for `fieldcap sync` [its default, 4 MiB]
#   TUS_CHUNK_MIB  tuspy chunk size [4]
#
# Topology. Two network namespaces, the server in fcb-srv-PID (10.77.0.1), the device in
# fcb-dev-PID (10.77.0.2), joined by a point-to-point link shaped in each direction alike:
# rate RATE, then DELAY_MS, loss LOSS at enqueue, at most LIMIT packets queued. So the RTT is
# 2 × DELAY_MS (60 ms by default) plus serialisation (0.6 ms for 1500 B at 20 Mbit/s), and the
# ACK direction sees the same loss as the data direction. MTU 1500, no segmentation offloads,
# so LOSS applies to each wire-size packet.
#   LINK=netem: a veth pair with `tc qdisc ... netem delay D rate R loss L limit N` on both ends
#     (netem counts the 14-byte Ethernet header in R).
#   LINK=user: when the kernel lacks sch_netem (this project's VMs are built without it), a small
#     Python emulator (written below) forwards IP packets between a TUN device in each namespace
#     with the same model, counting IP bytes in R; it runs SCHED_FIFO so that the benchmark's own
#     CPU load does not stretch the RTT. It forwarded 640 Mbit/s on a loaded 2-core VM, far above
#     the rates meant here (the printed RTT and the counters at the end show it kept up).
# Capacity is RATE. TCP/IP headers (52 B per 1448 B of payload, with timestamps) put the payload
# ceiling at 0.965 of RATE (user) or 0.956 (netem); the script prints it.
#
# Plain HTTP. Device and CLI refuse `http://` except to loopback (core/src/sync.rs, url_allowed).
# The device therefore talks to `http://localhost:PORT`, and the device namespace gets its own
# /etc/hosts (`ip netns exec` mounts /etc/netns/NS/hosts) in which localhost is 10.77.0.1: the
# policy check passes and the bytes cross the shaped link. curl and tuspy use 10.77.0.1 directly.
#
# What is timed, each to a FRESH server and device (as in bench_upload_fresh.sh), page cache warm:
#   fieldcap  the whole `fieldcap sync` (clock, manifest, media in PATCHes with its checks,
#             receipt and proofs), one process, keep-alive connection;
#   tuspy     tusclient.Uploader(url=UPLOAD_URL, chunk_size=TUS_CHUNK_MIB): HEAD for the offset,
#             then one PATCH per chunk (tuspy opens a new connection for each), whole process;
#   curl      one PATCH of the whole file (`Expect:` off).
# tuspy and curl get UPLOAD_URL from `fieldcap sync --manifests-only` (the server does not let a
# client create uploads). After each upload an untimed `fieldcap sync` must leave the clip
# receipted with every byte, so a short or refused upload fails the script.
set -euo pipefail

SIZE_MIB=${SIZE_MIB:-$([[ -n ${LIVE_SECONDS:-} ]] && echo 1 || echo 256)} ROUNDS=${ROUNDS:-1}   # live mode: a 1 MiB clip beside the recording
RATE=${RATE:-20} DELAY_MS=${DELAY_MS:-30} LOSS=${LOSS:-1} LIMIT=${LIMIT:-1000} SEED=${SEED:-1}
LINK=${LINK:-auto} TCP_CC=${TCP_CC:-cubic} TUS_CHUNK_MIB=${TUS_CHUNK_MIB:-4}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NS_SRV=fcb-srv-$$ NS_DEV=fcb-dev-$$
SRV_IP=10.77.0.1 DEV_IP=10.77.0.2

in_dev() { ip netns exec "$NS_DEV" "$@"; }
die() { echo "bench_upload_netem: $*" >&2; exit 1; }
[[ $EUID -eq 0 ]] || die "needs root (network namespaces, tc, TUN devices)"

# ---- tools (a fresh machine may lack them) -------------------------------------------------
APT_UPDATED=
apt_install() {
  [[ -n $APT_UPDATED ]] || { apt-get update -qq >/dev/null; APT_UPDATED=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
need() { command -v "$1" >/dev/null 2>&1 || apt_install "$2"; } # command package
need ip iproute2; need tc iproute2; need sqlite3 sqlite3; need curl curl; need python3 python3
need awk mawk

# tuspy: in python3 itself if importable or installable there, else in a cached venv.
TUS_VENV=${XDG_CACHE_HOME:-$HOME/.cache}/fieldcap-bench-tuspy
if python3 -c 'import tusclient' 2>/dev/null; then TUS_PY=python3
elif python3 -m pip install -q tuspy >/dev/null 2>&1 && python3 -c 'import tusclient' 2>/dev/null; then TUS_PY=python3
else
  TUS_PY=$TUS_VENV/bin/python
  if ! "$TUS_PY" -c 'import tusclient' 2>/dev/null; then
    # Debian's python3 needs python3-venv for this
    python3 -m venv --clear "$TUS_VENV" 2>/dev/null || { apt_install python3-venv; python3 -m venv --clear "$TUS_VENV"; }
    "$TUS_PY" -m pip install -q tuspy
  fi
fi

if [[ -z ${BIN:-} ]]; then
  (cd "$ROOT" && cargo build --release -q -p fieldcap)
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/fieldcap"
  BIN_DESC="$BIN (built from $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD || echo ", dirty"))"
else
  BIN_DESC="$BIN"
fi
[[ -x $BIN ]] || die "BIN=$BIN is not an executable"

# ---- cleanup -------------------------------------------------------------------------------
W=$(mktemp -d "${TMPDIR:-/tmp}/fieldcap-bench-netem.XXXXXX")
EMU_PID='' CC_ALLOWED_OLD=''
cleanup() {
  set +e
  if [[ -s $W/srv.pid ]]; then   # a server left by an interrupted upload: it may wait on a dead
    local pid; pid=$(cat "$W/srv.pid")   # connection before it stops, so give it 5 s, then KILL
    kill "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
  fi
  if [[ -n $EMU_PID ]]; then kill "$EMU_PID" 2>/dev/null; wait "$EMU_PID" 2>/dev/null; fi
  ip netns del "$NS_DEV" 2>/dev/null; ip netns del "$NS_SRV" 2>/dev/null
  rm -rf "/etc/netns/$NS_DEV" "$W"
  [[ -n $CC_ALLOWED_OLD ]] && sysctl -q -w net.ipv4.tcp_allowed_congestion_control="$CC_ALLOWED_OLD"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- namespaces ----------------------------------------------------------------------------
ip netns add "$NS_SRV"; ip netns add "$NS_DEV"
for ns in "$NS_SRV" "$NS_DEV"; do
  ip -n "$ns" link set lo up
  ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 2>/dev/null || true
done
# A namespace other than the first may only pick a congestion control listed as allowed.
modprobe "tcp_$TCP_CC" 2>/dev/null || true
grep -qw "$TCP_CC" /proc/sys/net/ipv4/tcp_available_congestion_control || die "TCP_CC=$TCP_CC is not available"
if ! grep -qw "$TCP_CC" /proc/sys/net/ipv4/tcp_allowed_congestion_control; then
  CC_ALLOWED_OLD=$(cat /proc/sys/net/ipv4/tcp_allowed_congestion_control)
  sysctl -q -w net.ipv4.tcp_allowed_congestion_control="$CC_ALLOWED_OLD $TCP_CC"
fi
for ns in "$NS_SRV" "$NS_DEV"; do ip netns exec "$ns" sysctl -q -w net.ipv4.tcp_congestion_control="$TCP_CC"; done
mkdir -p "/etc/netns/$NS_DEV"; echo "$SRV_IP localhost" > "/etc/netns/$NS_DEV/hosts"

modprobe sch_netem 2>/dev/null || true
HAVE_NETEM=''
if tc -n "$NS_DEV" qdisc add dev lo root netem delay 0ms 2>/dev/null; then
  tc -n "$NS_DEV" qdisc del dev lo root; HAVE_NETEM=1
fi
case $LINK in
  auto) LINK=${HAVE_NETEM:+netem}; LINK=${LINK:-user} ;;
  netem) [[ -n $HAVE_NETEM ]] || die "this kernel has no sch_netem; use LINK=user" ;;
  user) ;;
  *) die "LINK must be auto, netem or user" ;;
esac

# ---- the link ------------------------------------------------------------------------------
link_netem() {
  need ethtool ethtool
  ip -n "$NS_DEV" link add fcd0 type veth peer name fcs0 netns "$NS_SRV"
  local ns dev ip ns_dev_ip
  for ns_dev_ip in "$NS_DEV fcd0 $DEV_IP" "$NS_SRV fcs0 $SRV_IP"; do
    read -r ns dev ip <<<"$ns_dev_ip"
    ip -n "$ns" addr add "$ip/24" dev "$dev"
    ip netns exec "$ns" ethtool -K "$dev" tso off gso off gro off >/dev/null 2>&1 ||
      echo "warning: could not turn offloads off on $dev; netem would drop whole GSO bursts" >&2
    ip -n "$ns" link set "$dev" mtu 1500 up
    tc -n "$ns" qdisc add dev "$dev" root netem delay "${DELAY_MS}ms" rate "${RATE}mbit" loss "${LOSS}%" limit "$LIMIT"
  done
  CEILING=$(awk 'BEGIN { printf "%.3f", 1448 / 1514 }')
}

link_user() {
  # netem's model in userspace: per direction, drop with probability LOSS (or when LIMIT packets
  # are queued), serialise at RATE behind earlier packets, deliver DELAY_MS later.
  cat > "$W/linkemu.py" <<'PY'
import collections, ctypes, fcntl, os, random, select, signal, struct, sys, time
TUNSETIFF, IFF_TUN, IFF_NO_PI, CLONE_NEWNET = 0x400454CA, 0x0001, 0x1000, 0x40000000
libc = ctypes.CDLL(None, use_errno=True)

def open_tun(ns, name):  # create TUN `name` inside namespace `ns`; it goes when we exit
    own, target = os.open("/proc/self/ns/net", os.O_RDONLY), os.open(f"/run/netns/{ns}", os.O_RDONLY)
    if libc.setns(target, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), f"setns {ns}")
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    finally:
        libc.setns(own, CLONE_NEWNET); os.close(own); os.close(target)
    return fd

a, b = sys.argv[1:3]
rate, delay, loss, limit = float(sys.argv[3]) * 1e6, float(sys.argv[4]) / 1e3, float(sys.argv[5]) / 100, int(sys.argv[6])
rng = random.Random(int(sys.argv[7]))
fa, fb = open_tun(*a.split(":")), open_tun(*b.split(":"))
dirs = {i: dict(out=o, name=n, q=collections.deque(), free=0.0, fwd=0, bytes=0, lost=0, full=0)
        for i, o, n in ((fa, fb, f"{a} -> {b}"), (fb, fa, f"{b} -> {a}"))}

def report(*_):
    for d in dirs.values():
        n = d["fwd"] + d["lost"] + d["full"]
        print(f"  {d['name']}: {d['fwd']} packets ({d['bytes']} B) forwarded, {d['lost']} lost"
              f" ({100 * d['lost'] / max(n, 1):.2f} %), {d['full']} dropped at the queue limit", flush=True)
    sys.exit(0)

signal.signal(signal.SIGTERM, report)
signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the script's cleanup stops us after the server
print("ready", flush=True)
while True:
    due = [d["q"][0][0] for d in dirs.values() if d["q"]]
    readable = select.select(list(dirs), [], [], max(0.0, min(due) - time.monotonic()) if due else None)[0]
    for fd in readable:
        d = dirs[fd]
        while True:
            try:
                pkt = os.read(fd, 65536)
            except BlockingIOError:
                break
            if rng.random() < loss:
                d["lost"] += 1
            elif len(d["q"]) >= limit:
                d["full"] += 1
            else:
                d["free"] = max(time.monotonic(), d["free"]) + len(pkt) * 8 / rate
                d["q"].append((d["free"] + delay, pkt))
    now = time.monotonic()
    for d in dirs.values():
        while d["q"] and d["q"][0][0] <= now:
            pkt = d["q"].popleft()[1]
            os.write(d["out"], pkt)
            d["fwd"] += 1; d["bytes"] += len(pkt)
PY
  local rt=()
  chrt -f 50 true 2>/dev/null && rt=(chrt -f 50)
  "${rt[@]}" python3 "$W/linkemu.py" "$NS_DEV:fcd0" "$NS_SRV:fcs0" "$RATE" "$DELAY_MS" "$LOSS" "$LIMIT" "$SEED" \
    > "$W/emu.out" 2> "$W/emu.err" & EMU_PID=$!
  for _ in $(seq 100); do grep -q ready "$W/emu.out" 2>/dev/null && break; sleep 0.05; done
  grep -q ready "$W/emu.out" || die "link emulator did not start: $(cat "$W/emu.err")"
  ip -n "$NS_DEV" addr add "$DEV_IP" peer "$SRV_IP" dev fcd0; ip -n "$NS_DEV" link set fcd0 mtu 1500 up
  ip -n "$NS_SRV" addr add "$SRV_IP" peer "$DEV_IP" dev fcs0; ip -n "$NS_SRV" link set fcs0 mtu 1500 up
  CEILING=$(awk 'BEGIN { printf "%.3f", 1448 / 1500 }')
}

"link_$LINK"

rtt_probe() { # median and minimum of 9 TCP handshakes across the link (SYN -> SYN-ACK = 1 RTT), ms
  ip netns exec "$NS_SRV" python3 -c '
import socket, sys, time
s = socket.create_server((sys.argv[1], 9)); s.listen(64); time.sleep(60)' "$SRV_IP" &
  local pid=$!; sleep 0.5
  in_dev python3 -c '
import socket, statistics, sys, time
ms = []
for _ in range(9):
    t = time.monotonic(); socket.create_connection((sys.argv[1], 9)).close(); ms.append((time.monotonic() - t) * 1e3)
    time.sleep(0.05)
print(f"{statistics.median(ms):.1f} ms median, {min(ms):.1f} ms min")' "$SRV_IP"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

# ---- one upload ----------------------------------------------------------------------------
head -c $((SIZE_MIB << 20)) /dev/urandom > "$W/src.mp4"
SIZE_BYTES=$((SIZE_MIB << 20))

setup() { # dir: fresh server in the server namespace, fresh enrolled device holding one clip
  local d=$1 tok
  ip netns exec "$NS_SRV" "$BIN" serve --data "$d/srv" --listen "$SRV_IP:0" > "$d/out" 2> "$d/err" &
  echo $! > "$W/srv.pid"   # run() is in a subshell: the EXIT trap finds the server through this file
  for _ in $(seq 100); do grep -q listening "$d/out" 2>/dev/null && break; sleep 0.05; done
  PORT=$(head -1 "$d/out" | sed 's/.*://'); [[ $PORT =~ ^[0-9]+$ ]] || die "server did not start: $(cat "$d/err")"
  "$BIN" --home "$d/dev" init --role monitor >/dev/null
  tok=$("$BIN" token --data "$d/srv" --role monitor | tail -1)
  in_dev "$BIN" --home "$d/dev" enroll --server "http://localhost:$PORT" --token="$tok" >/dev/null
  cp "$W/src.mp4" "$d/c.mp4"; "$BIN" --home "$d/dev" capture "$d/c.mp4" >/dev/null   # moves it into the store
  MEDIA=$(ls "$d"/dev/items/*/media.mp4)
}

upload_url() { # dir: manifests on record, then the clip's tus URL as the server sees it
  in_dev "$BIN" --home "$1/dev" sync --manifests-only >/dev/null
  echo "http://$SRV_IP:$PORT$(sqlite3 "$1/dev/fieldcap.db" "SELECT upload_url FROM items LIMIT 1")"
}

finish() { # dir: the server must hold every byte and have receipted the clip; stop the server
  local d=$1
  in_dev "$BIN" --home "$d/dev" sync --timeout 600 >/dev/null
  "$BIN" --home "$d/dev" clips --json | python3 -c '
import json, sys
it = json.load(sys.stdin)["items"][0]
sys.exit(0 if it["state"] == "receipted" and it["media_bytes"] == int(sys.argv[1]) else f"not receipted: {it}")' "$SIZE_BYTES"
  kill "$(cat "$W/srv.pid")"; wait 2>/dev/null || true; rm "$W/srv.pid"
  rm -rf "$d"
}

run() { # fieldcap|tuspy|curl -> seconds on stdout
  local how=$1 d u t0 t1
  d=$(mktemp -d "$W/r.XXXX"); setup "$d"
  case $how in
    fieldcap)
      cat "$MEDIA" >/dev/null; sync; t0=$(date +%s.%N)
      in_dev "$BIN" --home "$d/dev" sync --timeout 7200 ${CHUNK:+--chunk-size "$CHUNK"} >/dev/null
      t1=$(date +%s.%N) ;;
    tuspy)
      u=$(upload_url "$d"); cat "$MEDIA" >/dev/null; sync; t0=$(date +%s.%N)
      in_dev "$TUS_PY" -c '
import sys
from tusclient.uploader import Uploader
up = Uploader(file_path=sys.argv[1], url=sys.argv[2], chunk_size=int(sys.argv[3]) << 20)
up.upload()
assert up.offset == up.get_file_size(), up.offset' "$MEDIA" "$u" "$TUS_CHUNK_MIB"
      t1=$(date +%s.%N) ;;
    curl)
      u=$(upload_url "$d"); cat "$MEDIA" >/dev/null; sync; t0=$(date +%s.%N)
      in_dev curl -sS -f -o /dev/null -X PATCH -H "Tus-Resumable: 1.0.0" -H "Upload-Offset: 0" -H "Expect:" \
        -H "Content-Type: application/offset+octet-stream" -T "$MEDIA" "$u"
      t1=$(date +%s.%N) ;;
  esac
  finish "$d"
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }'
}

# ---- report --------------------------------------------------------------------------------
line() { # name seconds
  awk -v n="$1" -v s="$2" -v B="$SIZE_BYTES" -v R="$RATE" \
    'BEGIN { g = B * 8 / s / 1e6; printf "  %-9s %8.2f s  %7.2f Mbit/s  %.3f of the link\n", n, s, g, g / R }'
}

echo "fieldcap constrained-link upload, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(uname -r), $(nproc) CPUs"
echo "binary: $BIN_DESC ($("$BIN" --version))"
echo "file: $SIZE_MIB MiB random ($SIZE_BYTES B); tuspy chunk $TUS_CHUNK_MIB MiB; fieldcap chunk ${CHUNK:-default}"
echo "link ($LINK), each direction: rate $RATE Mbit/s, delay $DELAY_MS ms (RTT $((2 * DELAY_MS)) ms), loss $LOSS %, limit $LIMIT packets; MTU 1500; TCP $TCP_CC"
if [[ $LINK == netem ]]; then
  tc -n "$NS_DEV" qdisc show dev fcd0 | sed "s/^/  device: /"
  tc -n "$NS_SRV" qdisc show dev fcs0 | sed "s/^/  server: /"
else
  echo "  userspace emulator (no sch_netem in this kernel), equivalent of: netem delay ${DELAY_MS}ms rate ${RATE}mbit loss ${LOSS}% limit $LIMIT (rate over IP bytes), seed $SEED"
fi
echo "payload ceiling: $CEILING of the link (TCP/IP headers at MSS 1448); measured RTT: $(rtt_probe)"
echo "clients: $(curl --version | head -1 | cut -d' ' -f1,2), tuspy $("$TUS_PY" -c 'import importlib.metadata as m; print(m.version("tuspy"))')"

if [[ -n ${LIVE_SECONDS:-} ]]; then
  LIVE_MBIT=${LIVE_MBIT:-4}
  command -v ffmpeg >/dev/null 2>&1 || apt_install ffmpeg
  ffmpeg -nostdin -loglevel error -f lavfi -i testsrc2=size=1920x1080:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000 \
    -t "$LIVE_SECONDS" -c:v libx264 -preset ultrafast -b:v "${LIVE_MBIT}M" -maxrate "${LIVE_MBIT}M" -bufsize "${LIVE_MBIT}M" -g 60 -c:a aac \
    -movflags frag_keyframe+empty_moov+default_base_moof -f mp4 "$W/live.mp4"
  echo "live: $LIVE_SECONDS s of 1080p at $LIVE_MBIT Mbit/s, $(stat -c %s "$W/live.mp4") B, a fragment every 2 s"
  d=$(mktemp -d "$W/live.XXXX"); setup "$d"
  in_dev "$BIN" --home "$d/dev" record "$W/live.mp4" --live --json > "$d/live.json"
  python3 - "$d/live.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
lags = sorted(d["ack_lag_ms"]); n = d["fragments"]
def pct(p): return lags[min(len(lags) - 1, int(round(p / 100 * (len(lags) - 1))))]
if lags:
    print(f"  {len(lags)} of {n} pieces acknowledged while recording; lag ms min {lags[0]} / median {pct(50)} / p90 {pct(90)} / max {lags[-1]}; max {lags[-1] / 2000:.2f} fragments")
else:
    print(f"  none of {n} pieces acknowledged while recording")
print(f"  after the final sync: {d['sync']['receipts_verified']} receipt(s)")
PY
  finish "$d" || true
  if [[ $LINK == user ]]; then kill "$EMU_PID"; wait "$EMU_PID" 2>/dev/null || true; EMU_PID=; fi
  exit 0
fi

declare -A ALL
ORDER=(fieldcap tuspy curl)
for r in $(seq "$ROUNDS"); do
  echo "round $r"
  for i in 0 1 2; do
    how=${ORDER[$(((i + r - 1) % 3))]}
    s=$(run "$how"); ALL[$how]+="$s "
    line "$how" "$s"
  done
done
if (( ROUNDS > 1 )); then
  echo "median of $ROUNDS rounds"
  for how in "${ORDER[@]}"; do
    line "$how" "$(tr ' ' '\n' <<<"${ALL[$how]}" | grep . | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')"
  done
fi
if [[ $LINK == user ]]; then
  kill "$EMU_PID"; wait "$EMU_PID" 2>/dev/null || true; EMU_PID=
  echo "link counters (device -> server is the upload direction):"; grep -v ready "$W/emu.out"
fi
