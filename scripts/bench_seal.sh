#!/usr/bin/env bash
# Seal benchmark: in one run, on the same file (warm page cache for every tool), times
#   sha256sum FILE, b3sum --num-threads 1 FILE, and `fieldcap capture FILE` (hash both digests,
#   move into the store, sign, commit) and prints the ratios; then peak RSS of sealing a 4 GiB file.
# Goals (issue 2): seal wall time <= 1.05 x sha256sum alone; peak RSS <= 48 MiB.
# Usage: scripts/bench_seal.sh [SIZE_MIB=1024] [BIG_MIB=4096] [REPS=3]
set -euo pipefail
size=${1:-1024}; big=${2:-4096}; reps=${3:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
work=${BENCH_DIR:-$root/target/bench-data/seal}
rm -rf "$work"; mkdir -p "$work"
command -v b3sum >/dev/null || { echo "b3sum missing: cargo install b3sum" >&2; exit 1; }
cargo build --release -q -p fieldcap --manifest-path "$root/Cargo.toml"
fc=$root/target/release/fieldcap
f=$work/clip.mp4
head -c $((size * 1024 * 1024)) /dev/urandom > "$f"; sync
now() { date +%s.%N; }
t() { local s e; s=$(now); "$@" >/dev/null; e=$(now); echo "$e - $s" | bc -l; }
cat "$f" > /dev/null # warm the cache once for everyone
declare -a S O B F
for r in $(seq 1 "$reps"); do
  S+=("$(t sha256sum "$f")")
  O+=("$(t openssl dgst -sha256 "$f")")
  B+=("$(t b3sum --num-threads 1 "$f")")
  home=$work/home-$r; "$fc" --home "$home" init >/dev/null
  F+=("$(t "$fc" --home "$home" capture "$f")")
  mv "$home"/items/*/media.mp4 "$f"   # put the same bytes back for the next round
done
med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
s=$(med "${S[@]}"); o=$(med "${O[@]}"); b=$(med "${B[@]}"); fcap=$(med "${F[@]}")
printf 'file: %d MiB, %d rounds, medians (s)\n' "$size" "$reps"
printf '  sha256sum                 %.3f\n  openssl dgst -sha256      %.3f\n  b3sum --num-threads 1     %.3f\n  fieldcap capture (seal)   %.3f\n' "$s" "$o" "$b" "$fcap"
printf '  ratio seal / sha256sum    %.3f   (goal <= 1.05)\n' "$(echo "$fcap / $s" | bc -l)"
printf '  ratio seal / openssl dgst %.3f   (SHA-256 with the CPU SHA extensions, if coreutils lacks them)\n' "$(echo "$fcap / $o" | bc -l)"
printf '  ratio seal / b3sum        %.3f\n' "$(echo "$fcap / $b" | bc -l)"
printf '  ratio seal / (sha+b3)     %.3f   (both digests from one read)\n' "$(echo "$fcap / ($s + $b)" | bc -l)"
rm -f "$f"
g=$work/big.mp4
head -c $((big * 1024 * 1024)) /dev/urandom > "$g"; sync
home=$work/home-big; "$fc" --home "$home" init >/dev/null
rss=$( { /usr/bin/time -v "$fc" --home "$home" capture "$g" >/dev/null; } 2>&1 | awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}')
printf 'peak RSS sealing %d MiB: %.1f MiB   (goal <= 48 MiB)\n' "$big" "$(echo "$rss / 1024" | bc -l)"
rm -rf "$work"
