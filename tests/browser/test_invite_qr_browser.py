"""Passing an invite on from a phone, in a real browser (Debian's Chromium through Playwright) at a
phone's size (390x844, three device pixels to a CSS pixel, as phones have) and a desktop's
(1280x800), against this test's node served by Django's live server.

The QR code is read the way a person's camera would: from a screenshot of the page, by a
maintained decoder (zxing-cpp), once on the new-invite card of the thread page and once on the
invite's own page; it must give the very link the page shows. The Copy button puts the link on
the clipboard; the list of open invites says who each is for, and revoking asks first.
Screenshots are saved under /tmp/sereus-invite-qr/ to be looked at."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import pytest
from django.conf import settings
from PIL import Image

from tests.browser.test_pwa_browser import NEEDS_CHROMIUM
from tests.browser.test_undelivered_browser import (  # noqa: F401 - fixtures
    _looks_right,
    chromium,
    django_beside_playwright,
    session_cookie,
)
from tests.core.threads.conftest import node, thread, thread_databases_allowed  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    NEEDS_CHROMIUM,
]

SHOTS = Path(tempfile.gettempdir()) / "sereus-invite-qr"
SIZES = {
    "phone": ({"width": 390, "height": 844}, 3),
    "desktop": ({"width": 1280, "height": 800}, 1),
}


def scanned(page, name: str) -> list[str]:
    """The texts of the QR codes a decoder finds in a screenshot of what the page shows (the
    QR code scrolled into view, as a person holds it up to a camera)."""
    import zxingcpp

    page.locator(".share-qr svg").scroll_into_view_if_needed()
    shot = page.screenshot()
    (SHOTS / f"{name}.png").write_bytes(shot)
    image = Image.open(io.BytesIO(shot)).convert("L")
    codes = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
    return [code.text for code in codes]


@pytest.mark.parametrize("size", SIZES)
def test_the_invite_qr_code_scans_and_the_link_copies(
    chromium,  # noqa: F811
    live_server,
    thread,  # noqa: F811
    session_cookie,  # noqa: F811
    size: str,
) -> None:
    SHOTS.mkdir(exist_ok=True)
    viewport, scale = SIZES[size]
    context = chromium.new_context(
        viewport=viewport, device_scale_factor=scale, service_workers="block"
    )
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": session_cookie, "url": live_server.url}]
    )
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{live_server.url}/node/threads/{thread.id}/people/")

    page.get_by_label("Who is it for?").fill("Sam")
    assert page.get_by_label("Role", exact=True).input_value() == "writer"  # not admin
    with page.expect_navigation():
        page.get_by_role("button", name="Create invite").click()

    card = page.locator("section.invite-new")
    link = card.get_by_label("The invite link").input_value()
    assert link.startswith("sereus:invite/")
    assert scanned(page, f"new-{size}") == [link]
    # The QR code fits the screen, and is large enough for a camera.
    box = card.locator(".share-qr svg").bounding_box()
    assert box is not None
    assert 200 <= box["width"] <= viewport["width"]
    assert box["height"] == box["width"]
    card.get_by_role("button", name="Copy link").click()
    card.get_by_text("Copied.").wait_for()
    assert page.evaluate("() => navigator.clipboard.readText()") == link
    # Share only where the browser has a share sheet.
    has_share = page.evaluate("() => typeof navigator.share === 'function'")
    assert card.get_by_role("button", name="Share…").is_visible() == has_share
    _looks_right(page, errors, viewport["width"])
    page.screenshot(path=str(SHOTS / f"created-{size}.png"), full_page=True)

    listed = page.locator("li.invite-line", has_text="Sam")
    assert "joins as writer (reads and writes) · for one person · expires in 1 day" in (
        listed.inner_text()
    )
    listed.get_by_role("link", name="Link and QR code").click()
    page.get_by_role("heading", name=f"Invite to {thread.name}").wait_for()
    assert page.get_by_label("The invite link").input_value() == link
    assert scanned(page, f"page-{size}") == [link]
    _looks_right(page, errors, viewport["width"])
    page.screenshot(path=str(SHOTS / f"invite-page-{size}.png"), full_page=True)

    # Revoking asks first.
    page.go_back()
    listed = page.locator("li.invite-line", has_text="Sam")
    revoke = listed.get_by_role("button", name="Revoke this invite")
    assert not revoke.is_visible()
    listed.get_by_text("Revoke…").click()
    assert "Revoke the invite for “Sam”?" in listed.inner_text()
    with page.expect_navigation():
        revoke.click()
    page.get_by_text("Invite revoked.").wait_for()
    assert page.locator("li.invite-line", has_text="Sam").count() == 0
    assert thread.invites.get(label="Sam").status == "revoked"
    context.close()
