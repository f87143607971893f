#!/usr/bin/env bash
# Server memory under stalled clients (issue 12, finding 1): N clients each announce a
# `POST /v1/manifests` body of 5.5 MB, send 4 MB of it and stall. Prints the resident memory
# (VmRSS) and peak (VmHWM) of `fieldcap serve` before the clients, once they have all stalled,
# and its open file descriptors.
#
#   scripts/stalled_clients_rss.sh [N] [MODE]        defaults: 300 unsigned
#
# MODE `unsigned`: the requests carry no signature headers (anyone can send them).
# MODE `device`:   the requests name an enrolled device with a fresh timestamp and a wrong
#                  signature (the worst case without a key: the body must be read to check it).
# BIN=path/to/fieldcap to measure another build (default: target/debug/fieldcap, built here).
# Not a test: numbers for docs/BENCHMARKS.md. Everything on 127.0.0.1; the work folder is
# removed at the end.
set -euo pipefail
N=${1:-300}
MODE=${2:-unsigned}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"
if [ -z "${BIN:-}" ]; then
  cargo build -q -p fieldcap
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/fieldcap"
fi
W=$(mktemp -d "${TMPDIR:-/tmp}/fieldcap-stall.XXXXXX")
SERVER_PID=""
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT

"$BIN" serve --data "$W/server" --listen 127.0.0.1:0 > "$W/server.out" 2>"$W/server.err" &
SERVER_PID=$!
for _ in $(seq 100); do grep -q "listening on" "$W/server.out" 2>/dev/null && break; sleep 0.1; done
URL=$(head -1 "$W/server.out" | sed 's/^listening on //')
TOK=$("$BIN" token --data "$W/server" --role monitor | tail -1)

python3 - "$URL" "$TOK" "$SERVER_PID" "$N" "$MODE" <<'EOF'
import base64, hashlib, json, os, socket, sys, threading, time, urllib.request
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization

url, token, pid, n, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
host, port = url.split("//")[1].split(":")
port = int(port)

def status():
    s = {}
    for line in open(f"/proc/{pid}/status"):
        k, v = line.split(":", 1)
        s[k] = v.strip()
    return s["VmRSS"], s["VmHWM"], len(os.listdir(f"/proc/{pid}/fd"))

key = Ed25519PrivateKey.generate()
pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
device_id = hashlib.sha256(raw).hexdigest()[:32]
req = urllib.request.Request(url + "/v1/enroll", data=json.dumps({"token": token, "public_key_pem": pem}).encode(),
                             headers={"content-type": "application/json"})
urllib.request.urlopen(req).read()

ANNOUNCED, SENT = 5_500_000, 4_000_000
def head():
    h = f"POST /v1/manifests HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\ncontent-length: {ANNOUNCED}\r\n"
    if mode == "device":
        h += (f"fieldcap-device: {device_id}\r\nfieldcap-timestamp: {int(time.time() * 1000)}\r\n"
              f"fieldcap-nonce: {os.urandom(16).hex()}\r\nfieldcap-signature: {base64.b64encode(os.urandom(64)).decode()}\r\n")
    return (h + "\r\n").encode()

chunk = b'{"manifest":"' + b"A" * (64 * 1024)
socks, sent_ok = [], [0]
lock = threading.Lock()
def client():
    s = socket.create_connection((host, port))
    s.settimeout(30)
    with lock:
        socks.append(s)
    try:
        s.sendall(head())
        left = SENT
        while left > 0:
            part = chunk[: min(len(chunk), left)]
            s.sendall(part)
            left -= len(part)
        with lock:
            sent_ok[0] += 1
    except OSError:
        pass

print(f"mode={mode} clients={n} announced={ANNOUNCED} sent={SENT}")
rss, hwm, fds = status()
print(f"before:  VmRSS {rss}  VmHWM {hwm}  fds {fds}")
t0 = time.time()
threads = [threading.Thread(target=client) for _ in range(n)]
for t in threads:
    t.start()
for t in threads:
    t.join()
time.sleep(3)
rss, hwm, fds = status()
print(f"stalled: VmRSS {rss}  VmHWM {hwm}  fds {fds}  (clients that sent their 4 MB: {sent_ok[0]}, {time.time() - t0:.1f} s)")
time.sleep(20)
rss, hwm, fds = status()
print(f"+20 s:   VmRSS {rss}  VmHWM {hwm}  fds {fds}")
for s in socks:
    s.close()
EOF
