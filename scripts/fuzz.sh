#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ (every parser of untrusted bytes; see fuzz/Cargo.toml):
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 60 s, every target)
#
# Each target runs for SECONDS_PER_TARGET over its committed seed corpus fuzz/corpus/TARGET
# (read only) plus fuzz/corpus-run/TARGET, where new inputs go (git-ignored), with a 10 s
# per-input timeout and a 2 GiB memory limit. A crash, panic, leak, timeout or out-of-memory
# stops that target; the input is kept in fuzz/artifacts/TARGET/ (reproduce with
# `cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-…`, minimise with `tmin`). The
# script prints one line per target (executions, result) and exits non-zero if any failed.
#
# Toolchain: nightly when rustup has one, else the stable toolchain with RUSTC_BOOTSTRAP=1 (a
# fresh CI machine has one toolchain and cannot fetch another). FUZZ_TOOLCHAIN=stable forces
# the second path. FUZZ_SANITIZER (default address) is passed to `cargo fuzz -s`; `none` runs
# about twice as fast but finds no leaks. FUZZ_JOBS>1 runs that many fuzzing processes per
# target (libFuzzer -fork). FUZZ_RUNS=N also stops a target after N executions (whichever of
# the time and the count comes first; the issue's campaign goal is 10 million or 30 minutes:
# `FUZZ_RUNS=10000000 scripts/fuzz.sh 1800`). The build goes to fuzz/target.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

secs=${1:-60}
[ $# -gt 0 ] && shift
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ]; then
  echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]" >&2
  exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz is missing: run scripts/install_test_tools.sh" >&2
  exit 2
fi

toolchain=${FUZZ_TOOLCHAIN:-}
if [ -z "$toolchain" ]; then
  if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then toolchain=nightly; else toolchain=stable; fi
fi
if [ "$toolchain" != nightly ]; then
  # The fuzzing instrumentation needs unstable rustc flags; the bootstrap switch allows them.
  export RUSTC_BOOTSTRAP=1
fi
cargo_fuzz=(cargo "+$toolchain" fuzz)
sanitizer=${FUZZ_SANITIZER:-address}
export LSAN_OPTIONS="suppressions=$PWD/fuzz/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cd fuzz && "${cargo_fuzz[@]}" list)
fi

echo "== building ${#targets[@]} fuzz targets ($toolchain${RUSTC_BOOTSTRAP:+, RUSTC_BOOTSTRAP=1}, sanitizer $sanitizer)"
build_start=$(date +%s)
# Release build with debug assertions (overflow checks) on, as the fuzzing runs use.
if ! (cd fuzz && "${cargo_fuzz[@]}" build -O -a -s "$sanitizer"); then
  echo "fuzz build failed" >&2
  exit 1
fi
echo "== built in $(( $(date +%s) - build_start )) s"

status=0
summary=()
for t in "${targets[@]}"; do
  seeds="fuzz/corpus/$t"
  work="fuzz/corpus-run/$t"
  artifacts="fuzz/artifacts/$t"
  mkdir -p "$seeds" "$work" "$artifacts"
  log="fuzz/artifacts/$t.log"
  extra=()
  [ "${FUZZ_JOBS:-1}" -gt 1 ] && extra=(-fork="$FUZZ_JOBS" -ignore_crashes=0)
  [ -n "${FUZZ_RUNS:-}" ] && extra+=(-runs="$FUZZ_RUNS")
  start=$(date +%s)
  (cd fuzz && "${cargo_fuzz[@]}" run -O -a -s "$sanitizer" "$t" "../$work" "../$seeds" -- \
      -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=1048576 -print_final_stats=1 \
      -artifact_prefix="../$artifacts/" "${extra[@]}") >"$log" 2>&1
  rc=$?
  took=$(( $(date +%s) - start ))
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
  [ -z "$execs" ] && execs=$(grep -o 'Done [0-9]* runs' "$log" | tail -1 | grep -o '[0-9]*')
  corpus=$(find "$work" "$seeds" -type f | wc -l)
  if [ $rc -eq 0 ]; then
    result=ok
  else
    status=1
    result="FAILED (exit $rc): $(grep -m1 -oE 'ERROR: libFuzzer: [a-z-]+|ERROR: AddressSanitizer: [a-z-]+|ERROR: LeakSanitizer|panicked at [^ ]*' "$log" || echo 'see log'); input and log in $artifacts/, $log"
    tail -n 40 "$log" >&2
  fi
  line=$(printf '%-18s %10s execs in %4s s, corpus %5s files: %s' "$t" "${execs:-?}" "$took" "$corpus" "$result")
  echo "$line"
  summary+=("$line")
done
echo "== fuzz summary"
printf '%s\n' "${summary[@]}"
exit $status
