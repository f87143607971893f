#!/usr/bin/env bash
# Installs the stock tools the tests run, when they are missing (idempotent).
set -euo pipefail
export PATH="$HOME/.cargo/bin:$PATH"
need_apt=()
command -v openssl >/dev/null || need_apt+=(openssl)
command -v sha256sum >/dev/null || need_apt+=(coreutils)
[ -x /usr/bin/time ] || need_apt+=(time)
command -v bc >/dev/null || need_apt+=(bc)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
command -v b3sum >/dev/null || cargo install --locked b3sum
# A tus 1.0 client that is not ours, for the interoperability test.
python3 -c "import tusclient" 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check tuspy
# cargo-fuzz, for the fuzz targets in fuzz/ (scripts/fuzz.sh; scripts/test.sh runs each briefly).
cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked
