#!/usr/bin/env bash
# Installs headless Chromium for the report rendering tests (tests/tests/package_report.rs).
# Debian package `chromium`; the tests skip with a message when it is absent.
set -euo pipefail
command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
