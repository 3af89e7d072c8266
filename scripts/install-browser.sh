#!/usr/bin/env bash
# Install Debian's Chromium for the browser tests (Playwright drives /usr/bin/chromium; it never
# downloads a browser of its own) and axe-core for their accessibility checks. Idempotent.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    echo "chromium: $(command -v chromium) is installed"
else
    if [ "$(id -u)" -ne 0 ]; then
        echo "error: chromium is not installed; run as root: apt-get update && apt-get install -y chromium" >&2
        exit 1
    fi
    echo "== Installing Debian's chromium (apt-get)"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
    command -v chromium >/dev/null 2>&1 || { echo "error: apt-get did not install chromium" >&2; exit 1; }
    echo "chromium: $(command -v chromium) installed"
fi

# axe-core, the accessibility engine the browser tests inject into every page, from npm, cached in
# the ignored .nodes/ folder like anvil. Idempotent: nothing happens when the pinned version is there.
AXE_VERSION=4.14.1
AXE_DIR="$(cd "$(dirname "$0")/.." && pwd)/.nodes/npm-axe"
if [ -f "$AXE_DIR/node_modules/axe-core/axe.min.js" ] \
    && grep -q "\"version\": \"$AXE_VERSION\"" "$AXE_DIR/node_modules/axe-core/package.json"; then
    echo "axe-core: $AXE_VERSION is installed"
else
    command -v npm >/dev/null 2>&1 || { echo "error: npm is needed to install axe-core" >&2; exit 1; }
    echo "== Installing axe-core $AXE_VERSION (npm) into $AXE_DIR"
    mkdir -p "$AXE_DIR"
    npm install --silent --no-audit --no-fund --prefix "$AXE_DIR" "axe-core@$AXE_VERSION"
    echo "axe-core: $AXE_VERSION installed"
fi
