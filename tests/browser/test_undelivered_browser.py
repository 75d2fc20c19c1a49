"""Writes the conversation refused, as their author sees them in a real browser (Debian's
Chromium through Playwright, at a phone's width and a desktop's), against this test's node
served by Django's live server: Bob, removed by Carol while his node was cut off, sends a
message from the page; once the removal arrives, his page shows it as not accepted, why, and
his text, which he can copy; the thread page counts it and links to the list of his writes.
Screenshots are saved under /tmp/sereus-undelivered/ to be looked at."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from apps.core import services as node_services
from apps.messaging import undelivered
from tests.browser.test_pwa_browser import CHROMIUM, CHROMIUM_ARGS
from tests.core.threads.conftest import node, thread_databases_allowed  # noqa: F401
from tests.support.cut_off import Conversation, carol_removes_bob, carols_conversation

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="Debian's chromium is not installed (make test installs it)"
    ),
]

SHOTS = Path(tempfile.gettempdir()) / "sereus-undelivered"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
TEXT = "Shall we read Middlemarch next? I can bring two copies."
HEX_ID = re.compile(r"\b[0-9a-f]{32,}\b")


@pytest.fixture(autouse=True)
def django_beside_playwright(monkeypatch) -> None:
    """Playwright's sync API keeps an event loop in this thread (it runs it only while a call
    waits), which Django takes for async code calling the database. Here the test's own calls
    run between Playwright's, never inside its loop."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def conversation(node, tmp_path) -> Conversation:  # noqa: F811
    return carols_conversation(tmp_path)


@pytest.fixture
def session_cookie(node) -> str:  # noqa: F811
    token = node_services.claim_token_issue()
    user = node_services.owner_claim(token=token, username="bob", password="pw " * 6).user
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


@pytest.fixture
def chromium() -> Iterator:
    from playwright.sync_api import sync_playwright

    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")  # never its own browser
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


def _context(chromium, live_server, session: str, viewport: dict):
    context = chromium.new_context(viewport=viewport, service_workers="block")
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}]
    )
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    return context


def _looks_right(page, errors: list[str], width: int) -> None:
    """What every page must be as a person sees it: no template syntax, no hex ids, no empty
    labels or nameless buttons, nothing wider than the screen, nothing blocked by the CSP."""
    text = page.locator("main").inner_text()
    for syntax in ("{{", "{%", "{#"):
        assert syntax not in text, text
    assert not HEX_ID.search(text), HEX_ID.search(text)
    for label in page.locator("main label").all():
        assert label.inner_text().strip(), "an empty label"
    for button in page.locator("main button:visible").all():
        assert button.inner_text().strip() or button.get_attribute("aria-label"), "nameless"
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width
    assert not [e for e in errors if "Content Security Policy" in e], errors


def test_a_message_sent_while_cut_off_shows_as_not_accepted_with_its_text(
    chromium, live_server, conversation, session_cookie
) -> None:
    SHOTS.mkdir(exist_ok=True)
    chat = conversation.thread
    url = f"{live_server.url}/node/messages/{chat.id}/"
    carol_removes_bob(conversation)

    # Bob, cut off, writes from his conversation page: his node takes it and shows it sent.
    context = _context(chromium, live_server, session_cookie, DESKTOP)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(url)
    page.get_by_label("Message", exact=True).fill(TEXT)
    with page.expect_navigation():
        page.get_by_role("button", name="Send").click()
    assert page.locator("#messages").get_by_text(TEXT).count() == 1
    assert page.get_by_role("region", name="Not accepted by the conversation").count() == 0
    # And he corrects his earlier message: also taken.
    hello = page.locator("li.message.mine", has_text="glad to be here")
    hello.locator("summary").click()  # the message's menu
    with page.expect_navigation():
        hello.get_by_role("link", name="edit").click()
    hello.get_by_label("Message").fill("Hello Carol, so glad to be here!")
    with page.expect_navigation():
        hello.get_by_role("button", name="Save").click()
    assert page.locator("#messages").get_by_text("so glad to be here").count() == 1

    # Carol's log arrives: the removal makes his message refused everywhere.
    conversation.receive_from_carol()
    page.reload()
    assert page.locator("#messages").get_by_text(TEXT).count() == 0
    assert page.locator("#messages").get_by_text("so glad").count() == 0
    assert page.locator("#messages").get_by_text("Hello Carol, glad to be here").count() == 1
    section = page.get_by_role("region", name="Not accepted by the conversation")
    section.wait_for()
    item = section.get_by_role("listitem", name="Your message")
    assert item.count() == 1
    assert item.get_by_text("Not accepted by the conversation", exact=True).is_visible()
    assert item.get_by_text(undelivered.REMOVED).is_visible()
    written = item.get_by_label("What you wrote")
    assert written.input_value() == TEXT
    assert written.get_attribute("readonly") is not None
    edit = section.get_by_role("listitem", name="Your edit")
    assert edit.get_by_label("The new text you wrote").input_value() == (
        "Hello Carol, so glad to be here!"
    )
    assert edit.get_by_text("The message still reads:").is_visible()
    item.get_by_role("button", name="Copy text").click()
    item.get_by_role("status").filter(has_text="Copied.").wait_for()
    assert page.evaluate("() => navigator.clipboard.readText()") == TEXT
    _looks_right(page, errors, DESKTOP["width"])
    section.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "conversation-desktop.png"), full_page=True)

    # The thread page counts it and links to the list of his writes.
    page.get_by_role("link", name="members and invites").click()
    # The message, and the read receipts the page wrote when it showed it: refused alike.
    refused = re.compile(r"^\d+ changes you wrote were not accepted by the thread$")
    notice = page.get_by_role("link", name=refused)
    _looks_right(page, errors, DESKTOP["width"])
    page.screenshot(path=str(SHOTS / "thread-desktop.png"), full_page=True)
    notice.click()
    page.wait_for_url("**/writes/?state=refused")
    message = page.locator("ol.writes li").filter(has_text="Added a message")
    assert message.count() == 1
    assert "Not accepted by the thread." in message.inner_text()
    assert page.get_by_role("navigation", name="Show").get_by_role("link", name="Not accepted")
    _looks_right(page, errors, DESKTOP["width"])
    page.screenshot(path=str(SHOTS / "writes-desktop.png"), full_page=True)
    context.close()

    # The same at a phone's width.
    context = _context(chromium, live_server, session_cookie, PHONE)
    page = context.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(url)
    section = page.get_by_role("region", name="Not accepted by the conversation")
    assert section.get_by_label("What you wrote").input_value() == TEXT
    copy = section.get_by_role("listitem", name="Your message").get_by_role("button")
    box = copy.bounding_box()
    assert box is not None
    assert box["height"] >= 40  # a finger can hit it
    _looks_right(page, errors, PHONE["width"])
    page.screenshot(path=str(SHOTS / "conversation-phone.png"), full_page=True)
    page.goto(f"{live_server.url}/node/threads/{chat.id}/writes/?state=refused")
    _looks_right(page, errors, PHONE["width"])
    page.screenshot(path=str(SHOTS / "writes-phone.png"), full_page=True)
    context.close()
