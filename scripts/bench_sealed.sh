#!/usr/bin/env bash
# Sealed storage benchmarks (issue 14), all in one run on this machine:
#  1. Sealing a SIZE_MIB clip into a sealed store (hash + encrypt in one pass, key wraps, source
#     removed) vs into a plain store (hash + rename): medians of REPS rounds, ratio (goal <= 1.3
#     on two cores), and the peak RSS of each.
#  2. Uploading an UP_MIB clip to a real `fieldcap serve` on 127.0.0.1: a plain item, a sealed
#     unlocked item and a sealed locked item (the server decrypts the age file and re-hashes the
#     plaintext before the receipt); medians of REPS rounds and the ratios to plain.
# Usage: scripts/bench_sealed.sh [SIZE_MIB=1024] [UP_MIB=256] [REPS=3]
set -euo pipefail
size=${1:-1024}; up=${2:-256}; reps=${3:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
work=${BENCH_DIR:-$root/target/bench-data/sealed}
rm -rf "$work"; mkdir -p "$work"
cargo build --release -q -p fieldcap --manifest-path "$root/Cargo.toml"
fc=${CARGO_TARGET_DIR:-$root/target}/release/fieldcap
server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
# Runs a command under /usr/bin/time; prints "seconds rss_kib".
timed() {
  /usr/bin/time -o "$work/time" -f '%e %M' "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; return 1; }
  tail -1 "$work/time"
}

f=$work/clip.mp4
head -c $((size * 1024 * 1024)) /dev/urandom > "$f"
declare -a P S PR SR
for r in $(seq 1 "$reps"); do
  cp "$f" "$work/p.mp4"; cp "$f" "$work/s.mp4"; sync
  cat "$work/p.mp4" "$work/s.mp4" > /dev/null   # both warm in the page cache
  hp=$work/plain-$r; "$fc" --home "$hp" init >/dev/null
  hs=$work/sealed-$r; "$fc" --home "$hs" init --sealed --lock-after never >/dev/null
  if [ $((r % 2)) -eq 1 ]; then
    read -r tp rp < <(timed "$fc" --home "$hp" capture "$work/p.mp4")
    read -r ts rs < <(timed "$fc" --home "$hs" capture "$work/s.mp4")
  else
    read -r ts rs < <(timed "$fc" --home "$hs" capture "$work/s.mp4")
    read -r tp rp < <(timed "$fc" --home "$hp" capture "$work/p.mp4")
  fi
  P+=("$tp"); S+=("$ts"); PR+=("$rp"); SR+=("$rs")
  [ ! -e "$work/s.mp4" ] || { echo "the sealed store left the plaintext source in place" >&2; exit 1; }
  rm -rf "$hp" "$hs"
done
p=$(med "${P[@]}"); s=$(med "${S[@]}")
printf '1. sealing a %d MiB clip, %d rounds (order alternating), medians\n' "$size" "$reps"
printf '   plain store  (hash + rename)                 %.2f s   peak RSS %.1f MiB\n' "$p" "$(echo "$(med "${PR[@]}") / 1024" | bc -l)"
printf '   sealed store (hash + encrypt, one pass)      %.2f s   peak RSS %.1f MiB\n' "$s" "$(echo "$(med "${SR[@]}") / 1024" | bc -l)"
printf '   ratio sealed / plain                         %.3f   (goal <= 1.3)\n' "$(echo "$s / $p" | bc -l)"
rm -f "$f"

"$fc" serve --data "$work/server" --listen 127.0.0.1:0 > "$work/server.out" 2>"$work/server.err" &
server_pid=$!
for _ in $(seq 100); do grep -q "listening on" "$work/server.out" 2>/dev/null && break; sleep 0.1; done
url=$(head -1 "$work/server.out" | sed 's/^listening on //')
enrolled() { # HOME INIT-ARGS...
  local h=$1; shift
  "$fc" --home "$h" init "$@" >/dev/null
  local tok; tok=$("$fc" token --data "$work/server" --role monitor | tail -1)
  "$fc" --home "$h" enroll --server "$url" --token="$tok" >/dev/null
  "$fc" --home "$h" sync >/dev/null   # pins the escrow key (sealed stores)
}
declare -a UP US UL
for r in $(seq 1 "$reps"); do
  for kind in plain unlocked locked; do
    h=$work/up-$kind-$r
    case $kind in
      plain) enrolled "$h";;
      unlocked) enrolled "$h" --sealed --lock-after never;;
      locked) enrolled "$h" --sealed --lock-after 0;;
    esac
    head -c $((up * 1024 * 1024)) /dev/urandom > "$work/u.mp4"
    "$fc" --home "$h" capture "$work/u.mp4" >/dev/null
    rm -f "$work/u.mp4"; sync
    read -r t _ < <(timed "$fc" --home "$h" sync --chunk-size 4194304)
    case $kind in plain) UP+=("$t");; unlocked) US+=("$t");; locked) UL+=("$t");; esac
    if [ "$kind" = locked ]; then
      "$fc" --home "$h" clips --json | python3 -c "import json,sys; d=json.load(sys.stdin); items=d if isinstance(d,list) else d['items']; assert all(i['locked'] and i['state']=='receipted' for i in items), items"
    fi
  done
done
up_p=$(med "${UP[@]}"); up_s=$(med "${US[@]}"); up_l=$(med "${UL[@]}")
printf '2. uploading a %d MiB clip to fieldcap serve on loopback (4 MiB chunks), %d rounds, medians\n' "$up" "$reps"
printf '   plain item                                   %.2f s\n' "$up_p"
printf '   sealed, unlocked                             %.2f s   ratio %.3f\n' "$up_s" "$(echo "$up_s / $up_p" | bc -l)"
printf '   sealed, locked                               %.2f s   ratio %.3f\n' "$up_l" "$(echo "$up_l / $up_p" | bc -l)"
