#!/usr/bin/env bash
# Vendor htmx and its WebSocket extension into static/vendor/htmx/ from the npm registry.
#
# The node loads nothing from a CDN (CSP: script-src 'self'), so the files live in the repo. This
# script is the record of where they came from: run it to reproduce them byte for byte, or bump
# the versions below (and their integrity, from `npm view <pkg>@<version> dist.integrity`) to
# upgrade. htmx stays on 2.0.x: 4.x is a different API.
set -euo pipefail

HTMX_VERSION="2.0.11"
HTMX_INTEGRITY="sha512-Thx/WtpeOQqSrqBCw/A1cwGJGg4UrVa3+sW0GmrM3p4gJgO89ecH4qtbnyzDDWFvBTqjnIMCgELTNt636dtamA=="
HTMX_WS_VERSION="2.0.4"
HTMX_WS_INTEGRITY="sha512-LnOpFRL/2hInhdKl/9N0OJsb4GYQ5/teUdTHNZYY9ytYdxYEqjfLEe0MWgF3ODjfwGJRb4E95igAbU66te48ZA=="
# jsQR reads QR codes from camera frames (joining with an invite QR code in the PWA).
JSQR_VERSION="1.4.0"
JSQR_INTEGRITY="sha512-dxLob7q65Xg2DvstYkRpkYtmKm2sPJ9oFhrhmudT1dZvNFFTlroai3AWSpLey/w5vMcLBXRgOJsbXpdN9HzU/A=="

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/static/vendor/htmx"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# Download one package tarball and unpack it into $WORK/<name>/. `npm pack` itself checks the
# tarball against the registry's dist.integrity; we also compare with the pinned value, so a
# republished or tampered package cannot slip in under the same version number.
fetch() {
  local name="$1" version="$2" expected="$3" tarball actual
  tarball="$(cd "$WORK" && npm pack --silent "$name@$version")"
  actual="sha512-$(openssl dgst -sha512 -binary "$WORK/$tarball" | base64 | tr -d '\n')"
  if [[ "$actual" != "$expected" ]]; then
    echo "integrity mismatch for $name@$version:" >&2
    echo "  expected $expected" >&2
    echo "  got      $actual" >&2
    exit 1
  fi
  mkdir -p "$WORK/$name"
  tar -xzf "$WORK/$tarball" -C "$WORK/$name"
}

fetch htmx.org "$HTMX_VERSION" "$HTMX_INTEGRITY"
fetch htmx-ext-ws "$HTMX_WS_VERSION" "$HTMX_WS_INTEGRITY"
fetch jsqr "$JSQR_VERSION" "$JSQR_INTEGRITY"

mkdir -p "$DEST/ext"
install -m 0644 "$WORK/htmx.org/package/dist/htmx.min.js" "$DEST/htmx.min.js"
install -m 0644 "$WORK/htmx.org/package/LICENSE" "$DEST/LICENSE"
# The ws extension from its own package: htmx.org's dist/ext/ws.js is the unmaintained 1.x copy.
install -m 0644 "$WORK/htmx-ext-ws/package/dist/ws.js" "$DEST/ext/ws.js"
install -m 0644 "$WORK/htmx-ext-ws/package/LICENSE" "$DEST/ext/LICENSE"

cat > "$DEST/VERSIONS" <<VERSIONS
Vendored by scripts/vendor_js.sh from the npm registry; do not edit these files by hand.

htmx.org $HTMX_VERSION (0BSD)
  integrity: $HTMX_INTEGRITY
  files: htmx.min.js <- dist/htmx.min.js, LICENSE <- LICENSE

htmx-ext-ws $HTMX_WS_VERSION (0BSD)
  integrity: $HTMX_WS_INTEGRITY
  files: ext/ws.js <- dist/ws.js, ext/LICENSE <- LICENSE
VERSIONS

JSQR_DEST="$ROOT/static/vendor/jsqr"
mkdir -p "$JSQR_DEST"
install -m 0644 "$WORK/jsqr/package/dist/jsQR.js" "$JSQR_DEST/jsQR.js"
install -m 0644 "$WORK/jsqr/package/LICENSE" "$JSQR_DEST/LICENSE"
cat > "$JSQR_DEST/VERSIONS" <<VERSIONS
Vendored by scripts/vendor_js.sh from the npm registry; do not edit these files by hand.

jsqr $JSQR_VERSION (Apache-2.0)
  integrity: $JSQR_INTEGRITY
  files: jsQR.js <- dist/jsQR.js, LICENSE <- LICENSE
VERSIONS

echo "vendored htmx.org $HTMX_VERSION, htmx-ext-ws $HTMX_WS_VERSION and jsqr $JSQR_VERSION"
