#!/usr/bin/env bash
# The one test command: installs what the tests need on a fresh machine (idempotent), then runs
# every test: the Rust workspace (unit, integration, property, crash and network tests on
# 127.0.0.1, doc tests), a short run of every fuzz target, and the generated Kotlin and Python
# bindings against a real server.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
# A clean clone builds everything once: incremental caches would only cost disk (~3 GB).
if [ "${CI:-}" = true ]; then export CARGO_INCREMENTAL=0; fi
bash scripts/install_test_tools.sh
bash scripts/install_binding_tools.sh
bash scripts/install_report_test_tools.sh
bash scripts/install_console_test_tools.sh
export FIELDCAP_REQUIRE_TUSPY=1     # the generic tus client test must run, not skip
export FIELDCAP_REQUIRE_CHROMIUM=1  # so must the report rendering test and the console's browser test
export FIELDCAP_REQUIRE_STOCK_TOOLS=1  # and the openssl/sha256sum/b3sum (VERIFY.txt) halves of the package tests
# The scaled deployment's stores (issue 9): a local PostgreSQL cluster (Debian's package) and
# the moto S3 server (PyPI); the tests create their own databases and buckets and remove them.
FIELDCAP_TEST_POSTGRES_URL=$(bash scripts/start_postgres.sh)
export FIELDCAP_TEST_POSTGRES_URL
export FIELDCAP_REQUIRE_POSTGRES=1
bash scripts/start_s3.sh
export FIELDCAP_REQUIRE_S3=1
# moto's test credentials, for the scaled stores the tests open in this process (only ever
# sent to the moto servers the tests start on 127.0.0.1).
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
# The CLI binary every test outside the CLI crate runs: the one this workspace build makes for
# the CLI crate's own tests (built before any test runs; see testkit's `Cli::built`).
export FIELDCAP_CLI_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/fieldcap"
status=0
cargo test --workspace --no-fail-fast -- --test-threads=2 || status=1
# The end-to-end, kill and package tests once more with every test server on the scaled
# deployment's stores (PostgreSQL + S3 with Object Lock) instead of the embedded ones.
# (`--workspace` with `--test` filters: the same feature resolution as the run above, so nothing
# is built again; `-p fieldcap-tests` resolved other features and rebuilt minutes of crates.)
FIELDCAP_TEST_SCALED=1 cargo test --workspace --no-fail-fast \
  --test sync_e2e --test sync_kills --test package_tamper --test package_release_retention \
  --test package_release_media --test package_pin --test package_device_custody --test console_http \
  -- --test-threads=2 || status=1
# Live capture on the scaled stores: pieces appended to the clip's partial in S3 while filming,
# fragment records in PostgreSQL, the finished recording receipted without a byte sent twice.
FIELDCAP_TEST_SCALED=1 cargo test --workspace --test live_capture pieces_reach_the_server -- --test-threads=2 || status=1
# Every fuzz target for a few seconds over its committed corpus, so a parser regression on a
# known input fails here (long runs: scripts/fuzz.sh SECONDS).
bash scripts/fuzz.sh "${FIELDCAP_FUZZ_SECONDS:-5}" || status=1
bash scripts/bindings_test.sh || status=1
exit $status
