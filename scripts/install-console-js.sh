#!/usr/bin/env bash
# Build the officers' console key-file signer: install the pinned audited npm libraries into the
# ignored .nodes/npm-console/ folder and bundle treasury/api/console_js/keyfile.js with esbuild into
# .nodes/npm-console/keyfile.js, which the console serves at /console/static/keyfile.js (and the
# key-file core alone as .nodes/npm-console/keystore.mjs, for the node unit test).
# Idempotent: nothing is installed when the pinned versions are there, and the bundle is rebuilt
# only when its source is newer.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="$ROOT/.nodes/npm-console"
SOURCES="$ROOT/treasury/api/console_js"
BUNDLE="$DIR/keyfile.js"
CORE="$DIR/keystore.mjs"
PACKAGES=(
    "@noble/hashes@2.4.0"
    "@noble/curves@2.4.0"
    "@noble/ciphers@2.4.0"
    "esbuild@0.28.2"
)

installed() {
    # "<name>@<version>" is installed when its package.json says exactly that version.
    local spec="$1" name version
    name="${spec%@*}"
    version="${spec##*@}"
    [ -f "$DIR/node_modules/$name/package.json" ] \
        && grep -q "\"version\": \"$version\"" "$DIR/node_modules/$name/package.json"
}

missing=()
for spec in "${PACKAGES[@]}"; do
    installed "$spec" || missing+=("$spec")
done
if [ "${#missing[@]}" -eq 0 ]; then
    echo "console js: pinned packages are installed"
else
    command -v npm >/dev/null 2>&1 || { echo "error: npm is needed to build the console's key-file signer" >&2; exit 1; }
    echo "== Installing ${PACKAGES[*]} (npm) into $DIR"
    mkdir -p "$DIR"
    [ -f "$DIR/package.json" ] || echo '{"private": true, "type": "module"}' > "$DIR/package.json"
    npm install --silent --no-audit --no-fund --save-exact --prefix "$DIR" "${PACKAGES[@]}"
fi

stale="$(find "$SOURCES" "$0" -newer "$BUNDLE" -print -quit 2>/dev/null || echo missing)"
if [ -f "$BUNDLE" ] && [ -f "$CORE" ] && [ -z "$stale" ]; then
    echo "console js: $BUNDLE is up to date"
else
    echo "== Bundling $SOURCES"
    # NODE_PATH lets esbuild resolve the packages installed outside the source tree.
    NODE_PATH="$DIR/node_modules" "$DIR/node_modules/.bin/esbuild" "$SOURCES/keyfile.js" \
        --bundle --format=iife --target=es2020 --minify --legal-comments=eof \
        --outfile="$BUNDLE" --log-level=warning
    NODE_PATH="$DIR/node_modules" "$DIR/node_modules/.bin/esbuild" "$SOURCES/keystore.js" \
        --bundle --format=esm --platform=neutral --target=es2020 \
        --outfile="$CORE" --log-level=warning
    echo "console js: built $BUNDLE ($(wc -c <"$BUNDLE") bytes) and $CORE"
fi
