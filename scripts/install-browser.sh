#!/usr/bin/env bash
# Install Debian's Chromium for the browser tests (Playwright drives /usr/bin/chromium; it never
# downloads a browser of its own). Idempotent: does nothing when chromium is already on PATH.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    echo "chromium: $(command -v chromium) is installed"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "error: chromium is not installed; run as root: apt-get update && apt-get install -y chromium" >&2
    exit 1
fi

echo "== Installing Debian's chromium (apt-get)"
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
command -v chromium >/dev/null 2>&1 || { echo "error: apt-get did not install chromium" >&2; exit 1; }
echo "chromium: $(command -v chromium) installed"
