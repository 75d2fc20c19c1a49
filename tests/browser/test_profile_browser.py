"""The profile in a real browser (Debian's Chromium through Playwright), at a phone's width and a
desktop's, against this test's node served by Django's live server: Alice fills in her profile
with a photo and a field of her own, is told in words why a bad link is refused, shares her name
and photo with her club and stops sharing the photo, then sees herself as the club sees her.
Every page is checked as a person sees it (no template syntax, no hex ids, no empty labels or
nameless buttons, every field labelled, nothing wider than the screen, nothing the CSP blocks).
Screenshots are saved under /tmp/sereus-identity/ to be looked at."""

from __future__ import annotations

import io
import re
import tempfile
from pathlib import Path

import pytest
from PIL import Image

from tests.browser.test_pwa_browser import NEEDS_CHROMIUM
from tests.browser.test_undelivered_browser import (  # noqa: F401 - fixtures
    DESKTOP,
    PHONE,
    _context,
    chromium,
    django_beside_playwright,
    session_cookie,
)
from tests.core.threads.conftest import node, thread_databases_allowed  # noqa: F401

pytestmark = [pytest.mark.browser, NEEDS_CHROMIUM]

SHOTS = Path(tempfile.gettempdir()) / "sereus-identity"
HEX_ID = re.compile(r"\b[0-9a-f]{8,}\b")


def click(page, locator) -> None:
    """Press a form's button and wait for the page it redirects to."""
    with page.expect_navigation():
        locator.click()


def looks_right(page, errors: list[str], width: int) -> None:
    text = page.locator("main").inner_text()
    for syntax in ("{{", "{%", "{#"):
        assert syntax not in text, text
    assert not HEX_ID.search(text), HEX_ID.search(text)
    for label in page.locator("main label").all():
        assert label.text_content().strip(), "an empty label"
    for button in page.locator("main button:visible").all():
        assert button.inner_text().strip() or button.get_attribute("aria-label"), "nameless"
    for field in page.locator("main input:not([type=hidden]), main select, main textarea").all():
        field_id = field.get_attribute("id")
        assert field_id
        assert page.locator(f"label[for='{field_id}']").count() == 1, field_id
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width
    assert not [e for e in errors if "Content Security Policy" in e], errors


def photo_file(tmp_path: Path) -> Path:
    path = tmp_path / "me.png"
    image = Image.new("RGB", (900, 600), (240, 170, 40))
    for x in range(300, 600):
        for y in range(150, 450, 3):
            image.putpixel((x, y), (30, 60, 160))
    out = io.BytesIO()
    image.save(out, format="PNG")
    path.write_bytes(out.getvalue())
    return path


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_a_profile_filled_shared_and_seen(
    chromium,  # noqa: F811
    live_server,
    session_cookie,  # noqa: F811
    tmp_path,
    size: str,
) -> None:
    from apps.identity.profile_duties import worker
    from apps.messaging import services as messaging

    assert worker is not None
    SHOTS.mkdir(exist_ok=True)
    viewport = PHONE if size == "phone" else {**DESKTOP, "height": 800}
    width = viewport["width"]
    club = messaging.conversation_create(name="Climbing club", my_name="Alice")
    context = _context(chromium, live_server, session_cookie, viewport)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    page.goto(f"{live_server.url}/node/profile/")
    looks_right(page, errors, width)
    page.screenshot(path=str(SHOTS / f"profile-empty-{size}.png"), full_page=True)

    page.get_by_label("Name", exact=True).fill("Alice Martin")
    page.get_by_label("Links").fill("alice.example")
    click(page, page.get_by_role("button", name="Save profile"))
    page.get_by_text("is not a web address").wait_for()
    looks_right(page, errors, width)
    page.screenshot(path=str(SHOTS / f"profile-refused-{size}.png"), full_page=True)

    page.get_by_label("Name", exact=True).fill("Alice Martin")
    page.get_by_label("Links").fill("https://alice.example")
    page.get_by_label("Birth date").fill("1990-04-23")
    page.get_by_label("Photo").set_input_files(str(photo_file(tmp_path)))
    page.get_by_label("A field of your own: its label").fill("Climbing grade")
    page.get_by_label("Its value").fill("7a")
    click(page, page.get_by_role("button", name="Save profile"))
    page.get_by_text("Your profile is saved").wait_for()
    assert page.get_by_role("img", name="Your photo").is_visible()
    looks_right(page, errors, width)

    sharing = page.get_by_role("region", name="Share with a conversation")
    sharing.get_by_label("Share with", exact=True).select_option(label="Climbing club")
    sharing.get_by_role("checkbox", name="Name", exact=True).check()
    sharing.get_by_role("checkbox", name="Photo", exact=True).check()
    click(page, page.get_by_role("button", name="Share", exact=True))
    page.get_by_text("Climbing club now sees your Name, Photo.").wait_for()
    assert page.get_by_text("A copy once shared stays with the people").first.is_visible()
    looks_right(page, errors, width)
    page.screenshot(path=str(SHOTS / f"profile-shared-{size}.png"), full_page=True)

    # A credential of the name alone, downloaded: the name's disclosure and nothing else.
    chosen = page.get_by_role("group", name="Fields in it")
    chosen.get_by_role("checkbox", name="Name", exact=True).check()
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the credential").click()
    saved = Path(download.value.path()).read_text()
    assert download.value.suggested_filename == "profile.sd-jwt"
    from apps.identity import formats

    _head, leaf, tail = saved.strip().split("~")
    assert tail == ""
    assert formats.disclosure_open(leaf)[1:] == ("name", "Alice Martin")

    click(page, page.get_by_role("button", name="Stop sharing your photo with Climbing club"))
    page.get_by_text("You no longer share your photo with Climbing club.").wait_for()
    looks_right(page, errors, width)

    page.goto(f"{live_server.url}/node/threads/{club.id}/profiles/")
    looks_right(page, errors, width)
    page.screenshot(path=str(SHOTS / f"people-{size}.png"), full_page=True)
    click(page, page.get_by_role("link", name=re.compile("^You · Alice Martin")))
    page.get_by_text("Alice Martin").wait_for()
    assert page.locator("main img").count() == 0  # the photo is no longer shared here
    looks_right(page, errors, width)
    page.screenshot(path=str(SHOTS / f"person-{size}.png"), full_page=True)
    context.close()
