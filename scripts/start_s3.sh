#!/usr/bin/env bash
# Installs the moto S3 server (PyPI `moto[server]`) if missing, for the S3 blob store tests
# (server/tests/s3_store.rs): each test starts its own `moto_server` on a free port of
# 127.0.0.1 (testkit/src/s3.rs). Idempotent. With an argument PORT, also starts one server in
# the foreground on 127.0.0.1:PORT (for FIELDCAP_TEST_S3_ENDPOINT=http://127.0.0.1:PORT).
set -euo pipefail
if ! command -v moto_server >/dev/null 2>&1; then
    if ! python3 -m pip --version >/dev/null 2>&1; then
        apt-get update -qq && apt-get install -y -qq python3-pip
    fi
    # Debian's system Python refuses pip installs outside a venv unless told otherwise.
    python3 -m pip install --quiet 'moto[server]' 2>/dev/null \
        || python3 -m pip install --quiet --break-system-packages 'moto[server]'
    hash -r
fi
command -v moto_server >/dev/null 2>&1 || { echo "moto_server is not on PATH after installing moto[server]" >&2; exit 1; }
if [ $# -ge 1 ]; then
    exec moto_server -H 127.0.0.1 -p "$1"
fi
