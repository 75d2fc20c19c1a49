"""Making a link for several people on the thread page, in a real browser (Debian's Chromium
through Playwright) at a phone's width and a desktop's, against this test's node served by
Django's live server: the owner says how many people may use the link and gives it a label; the
page shows the new link once, and the list of invites says how many joined. Screenshots are
saved under /tmp/sereus-open-invites/ to be looked at."""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path

import pytest

from apps.core.thread.invite import invite_parse
from apps.core.threads import services
from tests.browser.test_pwa_browser import NEEDS_CHROMIUM
from tests.browser.test_undelivered_browser import (  # noqa: F401 - fixtures
    DESKTOP,
    PHONE,
    _context,
    _looks_right,
    chromium,
    django_beside_playwright,
    session_cookie,
)
from tests.core.threads.conftest import node, thread, thread_databases_allowed  # noqa: F401
from tests.core.threads.test_invites_open import newcomer

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    NEEDS_CHROMIUM,
]

SHOTS = Path(tempfile.gettempdir()) / "sereus-open-invites"


def thread_page(browser, live_server, session: str, thread_id: str, viewport: dict):
    """The owner's thread page in a context of its own, and the errors its pages log."""
    context = _context(browser, live_server, session, viewport)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{live_server.url}/node/threads/{thread_id}/people/")
    return context, page, errors


@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_a_link_for_up_to_25_people_with_a_label(
    chromium,  # noqa: F811
    live_server,
    thread,  # noqa: F811
    session_cookie,  # noqa: F811
    size: str,
) -> None:
    SHOTS.mkdir(exist_ok=True)
    viewport = PHONE if size == "phone" else DESKTOP
    context, page, errors = thread_page(chromium, live_server, session_cookie, thread.id, viewport)

    page.get_by_label("Role", exact=True).select_option("reader")
    who = page.get_by_role("group", name="How many people may use this link")
    assert who.get_by_role("radio", name="One person").is_checked()
    several = who.get_by_role("radio", name="Up to a number of people")
    several.check()
    page.get_by_label("Up to how many people").fill("25")
    page.get_by_label("Who is it for?").fill("shop followers")
    box = who.get_by_text("Anyone with the link").bounding_box()
    assert box is not None
    assert box["height"] >= 40  # a finger can hit each choice
    _looks_right(page, errors, viewport["width"])
    with page.expect_navigation():
        page.get_by_role("button", name="Create invite").click()

    card = page.locator("section.invite-new")
    card.get_by_text("up to 25 people can join with this link").wait_for()
    assert "shop followers" in card.inner_text()
    link = invite_parse(card.get_by_label("The invite link").input_value())
    assert link.thread == thread.thread
    listed = page.get_by_role("listitem").filter(has_text="shop followers")
    assert "joins as reader (reads only) · 25 of 25 places left" in listed.inner_text()
    page.screenshot(path=str(SHOTS / f"created-{size}.png"), full_page=True)

    # Two people join with it; the list says so (and the link is not shown again).
    record = thread.invites.get(label="shop followers")
    for _ in range(2):
        services.invite_admit(thread=thread, request=newcomer(link))
    page.reload()
    assert page.locator("section.invite-new").count() == 0
    listed = page.get_by_role("listitem").filter(has_text="shop followers")
    assert "joins as reader (reads only) · 23 of 25 places left" in listed.inner_text()
    _looks_right(page, errors, viewport["width"])
    page.screenshot(path=str(SHOTS / f"used-{size}.png"), full_page=True)
    listed.get_by_role("link", name="Link and QR code").click()
    page.get_by_text("23 of 25 places left").wait_for()
    _looks_right(page, errors, viewport["width"])
    record.refresh_from_db()
    assert (record.uses, record.used) == (25, 2)
    context.close()


def test_a_role_no_link_for_several_people_may_grant_is_refused_in_plain_words(
    chromium,  # noqa: F811
    live_server,
    thread,  # noqa: F811
    session_cookie,  # noqa: F811
) -> None:
    context, page, errors = thread_page(chromium, live_server, session_cookie, thread.id, PHONE)
    page.get_by_label("Role", exact=True).select_option("writer")
    page.get_by_role("radio", name="Anyone with the link").check()
    with page.expect_navigation():
        page.get_by_role("button", name="Create invite").click()
    page.get_by_text(
        "a link for more than one person cannot make anyone writer in this thread"
    ).wait_for()
    _looks_right(page, errors, PHONE["width"])
    page.screenshot(path=str(SHOTS / "refused-phone.png"), full_page=True)
    assert not thread.invites.exists()
    # Made from a script the same thread takes an invite for one writer, as before.
    services.invite_create(thread=thread, role="writer", expires_in=timedelta(hours=1))
    context.close()
