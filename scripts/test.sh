#!/usr/bin/env bash
# The one test command: installs what the tests need on a fresh machine, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_test_tools.sh
export FIELDCAP_REQUIRE_TUSPY=1   # the generic tus client test must run, not skip
cargo test --workspace --no-fail-fast -- --test-threads=2
