#!/usr/bin/env bash
# Benchmark of the S3 blob store against the local one on the same machine: 1 GiB (or
# FIELDCAP_BENCH_MIB MiB) written as the tus endpoint writes (1 MiB writes, a sync every 64 MiB
# and at the end) and stored as an original; prints both times and the ratio. The S3 side is a
# moto server on 127.0.0.1 (installed by scripts/start_s3.sh) unless FIELDCAP_TEST_S3_ENDPOINT
# names another. Not part of scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/start_s3.sh
# The dev profile: dependencies (the SDK, sha2, the hashers) are built at opt-level 2 there.
nice -n 10 cargo build -p fieldcap-server --example bench_s3_blob
exec ./target/debug/examples/bench_s3_blob
