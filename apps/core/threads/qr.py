"""The QR code of an invite link, as SVG for a page or the API."""

from __future__ import annotations

import segno


def qr_svg(link: str) -> str:
    """An SVG that scales to whatever box the page gives it: a viewBox and no fixed size (with a
    fixed size, CSS that shrinks it crops the code instead, and no camera can read it), the
    quiet zone around it, and its own white background (a page in dark mode has none)."""
    # segno's inline SVG holds no script or style attribute, so it passes the page's CSP.
    return segno.make(link, error="m").svg_inline(
        scale=1, border=4, omitsize=True, light="#fff", title="Invite QR code"
    )
