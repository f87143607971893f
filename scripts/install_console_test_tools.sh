#!/usr/bin/env bash
# Installs what the console's browser test (tests/tests/console_browser.rs driving
# tests/browser/console.mjs) needs on a fresh Debian machine, when missing (idempotent):
#   - Debian's headless Chromium (also installed by install_report_test_tools.sh),
#   - zbarimg (zbar-tools) to decode the enrolment QR code,
#   - ffmpeg to make the test videos (VP9 in MP4 with a burned-in frame number),
#   - faketime, to run a device's `fieldcap` with its clock minutes off (as on a phone set wrong),
#   - node and npm, and tests/browser's npm dependencies (playwright-core, an exact version
#     locked in package-lock.json) with `npm ci`. Playwright's own browser downloads are never
#     used: the script launches /usr/bin/chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v zbarimg >/dev/null 2>&1 || need_apt+=(zbar-tools)
command -v ffmpeg >/dev/null 2>&1 || need_apt+=(ffmpeg)
command -v faketime >/dev/null 2>&1 || need_apt+=(faketime)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi
# `npm ci` only when the installed playwright-core is not the locked one (or is missing).
want=$(node -e 'console.log(require("./tests/browser/package-lock.json").packages["node_modules/playwright-core"].version)')
have=$(node -e 'try { console.log(require("./tests/browser/node_modules/playwright-core/package.json").version) } catch { console.log("") }')
if [ "$want" != "$have" ]; then
  # No browser download: the test uses Debian's Chromium.
  (cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi
echo "console browser test tools: chromium $(command -v chromium), zbarimg $(command -v zbarimg), ffmpeg $(command -v ffmpeg), faketime $(command -v faketime), node $(node --version), playwright-core $want"
