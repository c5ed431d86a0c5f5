#!/usr/bin/env bash
# Headless Chromium for the report's browser test (the Python packages come from requirements.txt).
#
#   bash setup.sh
#
# Where Chromium and its driver are missing and apt-get is usable (root on Debian/Ubuntu), installs
# Debian's `chromium` and `chromium-driver` (no recommends); elsewhere prints one line saying the
# browser test (pytest -m browser) will be skipped and how to install them. CI runs it first.
set -euo pipefail
cd "$(dirname "$0")"

have_browser() {
    command -v chromedriver >/dev/null 2>&1 && { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; }
}

if have_browser; then
    :
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing chromium and chromium-driver (for the report's browser test)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
    have_browser || { echo "setup: chromium or chromedriver still missing after apt-get" >&2; exit 1; }
else
    echo "setup: no chromium/chromedriver and no root apt-get: the browser test will be skipped" \
         "(install them with: sudo apt-get install --no-install-recommends chromium chromium-driver)"
fi
