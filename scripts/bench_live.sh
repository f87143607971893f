#!/usr/bin/env bash
# Live capture figures (issue 11), printed as the lines docs/BENCHMARKS.md records:
#   1. seal cost and peak memory of a 30-minute recording at a 1080p bitrate: MINUTES × 30
#      fragments of FRAG_MB (default 1.5 MB = 6 Mbit/s over 2 s), structurally valid fMP4
#      (ffmpeg's init segment, synthetic moof + random mdat: the core checks boxes, never decodes),
#      fed with `fieldcap record --live --fast --offline` under /usr/bin/time: CPU seconds of the
#      whole process per 2 s fragment, as a fraction of real time (goal < 1 % of one core), and
#      the maximum resident set size;
#   2. capture-to-server lag on loopback: a real 1080p fMP4 from ffmpeg (LAG_SECONDS, 2 s
#      fragments, 6 Mbit/s) recorded at its own pace with `fieldcap record --live` to a server on
#      127.0.0.1; each piece's lag = server acknowledgement received − piece sealed (device clock),
#      printed as min / median / p90 / max and in fragments (lag / 2 s).
#
#   scripts/bench_live.sh                       # MINUTES=30 FRAG_MB=1.5 LAG_SECONDS=60
#   MINUTES=5 LAG_SECONDS=20 scripts/bench_live.sh
#
# The constrained link (5 Mbit/s up, 80 ms RTT) is scripts/bench_live_netem.sh (needs root for
# network namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${MINUTES:-30} FRAG_MB=${FRAG_MB:-1.5} LAG_SECONDS=${LAG_SECONDS:-60}
BIN=${BIN:-target/release/fieldcap}
[[ -x $BIN ]] || cargo build --release -p fieldcap
command -v ffmpeg >/dev/null || { echo "bench_live: ffmpeg is needed (apt-get install ffmpeg)" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "bench_live: /usr/bin/time is needed (apt-get install time)" >&2; exit 1; }
W=$(mktemp -d)
srv=""
cleanup() { [[ -n $srv ]] && kill "$srv" 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT

# ── 1. seal cost and memory ──
ffmpeg -nostdin -loglevel error -f lavfi -i testsrc2=size=1920x1080:rate=30 -t 2 -c:v libx264 -preset ultrafast -g 60 \
  -movflags frag_keyframe+empty_moov+default_base_moof -f mp4 "$W/seed.mp4"
python3 - "$W/seed.mp4" "$W/long.mp4" "$MINUTES" "$FRAG_MB" <<'EOF'
import os, struct, sys
seed, out, minutes, frag_mb = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
data = open(seed, 'rb').read()
pos, init = 0, b''
while pos < len(data):
    size, typ = struct.unpack('>I4s', data[pos:pos+8])
    if typ in (b'moof', b'styp', b'sidx'):
        break
    init += data[pos:pos+size]; pos += size
def box(t, b): return struct.pack('>I', len(b) + 8) + t + b
payload_len = int(frag_mb * 1_000_000)
rnd = os.urandom(payload_len + 4096)
with open(out, 'wb') as f:
    f.write(init)
    for i in range(1, minutes * 30 + 1):
        mfhd = box(b'mfhd', struct.pack('>II', 0, i))
        tfhd = box(b'tfhd', struct.pack('>II', 0x020000, 1))
        tfdt = box(b'tfdt', struct.pack('>IQ', 0x01000000, (i - 1) * 30720))
        moof = box(b'moof', mfhd + box(b'traf', tfhd + tfdt))
        off = (i * 997) % 4096
        f.write(moof + box(b'mdat', rnd[off:off + payload_len]))
EOF
fragments=$((MINUTES * 30))
"$BIN" --home "$W/dev" init >/dev/null
/usr/bin/time -v -o "$W/time.txt" "$BIN" --home "$W/dev" record "$W/long.mp4" --live --fast --offline --json > "$W/rec.json"
cpu=$(awk -F': ' '/User time/{u=$2} /System time/{s=$2} END{printf "%.2f", u+s}' "$W/time.txt")
wall=$(awk -F': ' '/Elapsed \(wall clock\)/{print $2}' "$W/time.txt")
rss=$(awk -F': ' '/Maximum resident set size/{printf "%.1f", $2/1024}' "$W/time.txt")
size_mb=$(python3 -c "import os;print(round(os.path.getsize('$W/long.mp4')/1e6))")
python3 - "$cpu" "$fragments" "$rss" "$wall" "$size_mb" "$MINUTES" <<'EOF'
import sys
cpu, n, rss, wall, size, minutes = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
per = cpu / n * 1000
print(f"seal: {minutes} min recording, {n} fragments, {size} MB: CPU {cpu:.2f} s in all (wall {wall}), "
      f"{per:.1f} ms CPU per 2 s fragment = {per / 2000 * 100:.2f} % of one core; peak RSS {rss} MiB")
EOF

# ── 2. loopback lag ──
ffmpeg -nostdin -loglevel error -f lavfi -i testsrc2=size=1920x1080:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000 \
  -t "$LAG_SECONDS" -c:v libx264 -preset ultrafast -b:v 6M -maxrate 6M -bufsize 6M -g 60 -c:a aac \
  -movflags frag_keyframe+empty_moov+default_base_moof -f mp4 "$W/lag.mp4"
"$BIN" serve --data "$W/srv" --listen 127.0.0.1:0 > "$W/srv.out" 2> "$W/srv.err" &
srv=$!
for _ in $(seq 50); do [[ -s $W/srv.out ]] && break; sleep 0.1; done
port=$(head -1 "$W/srv.out" | sed 's/.*://')
tok=$("$BIN" token --data "$W/srv" --role monitor | tail -1)
"$BIN" --home "$W/dev2" init >/dev/null
"$BIN" --home "$W/dev2" enroll --server "http://127.0.0.1:$port" --token="$tok" >/dev/null
"$BIN" --home "$W/dev2" record "$W/lag.mp4" --live --json > "$W/lag.json"
python3 - "$W/lag.json" "$(stat -c %s "$W/lag.mp4")" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
lags = sorted(d['ack_lag_ms'])
n = d['fragments']
def pct(p): return lags[min(len(lags) - 1, int(round(p / 100 * (len(lags) - 1))))]
print(f"lag (loopback): {len(lags)} of {n} pieces acknowledged while recording ({int(sys.argv[2]) / 1e6:.1f} MB); "
      f"ms min {lags[0]} / median {pct(50)} / p90 {pct(90)} / max {lags[-1]}; "
      f"in fragments (2 s): max {lags[-1] / 2000:.2f}; receipts after the final sync: {d['sync']['receipts_verified']}")
EOF
