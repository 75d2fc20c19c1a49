"""A long conversation behaves like a chat in a real browser (Debian's Chromium through
Playwright), at a phone's size and a desktop's, against this test's node served by Django's live
server: with some 80 messages from Alice (this node) and Bob (a node of his own in this
process), the page opens at the newest message with the composer pinned to the bottom of the
screen, and the composer stays there while one scrolls; a message arriving while one reads the
newest stays in view, one arriving while one reads older ones brings a "New messages" button
instead; Enter sends; a reply shows a quote of the message it answers, which leads to it;
reactions are one menu per message, and chips once given. Screenshots are saved under
/tmp/sereus-conversation/ to be looked at.

Live arrivals are drawn here the way the page's socket draws them (an item appended to the list):
this node's live server has no socket; the socket itself is tested in test_messaging_browser."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from django.conf import settings

from apps.messaging import selectors, services
from apps.messaging.models import Message
from tests.browser.test_pwa_browser import NEEDS_CHROMIUM
from tests.browser.test_undelivered_browser import (  # noqa: F401 - fixtures
    PHONE,
    _context,
    _looks_right,
    chromium,
    django_beside_playwright,
    session_cookie,
)
from tests.checklist.support import member_join
from tests.core.threads.conftest import node, thread_databases_allowed  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    NEEDS_CHROMIUM,
]

SHOTS = Path(tempfile.gettempdir()) / "sereus-conversation"
DESKTOP = {"width": 1280, "height": 800}
ROUNDS = 8  # of five messages from Bob and five from Alice: 80 in all, more than a page
BOBS_LAST = f"Bob, round {ROUNDS - 1}, message 4"
ORIGINAL = (
    "Could someone pick up the cake from the bakery on Main Street before four o'clock, "
    "because I will be stuck at work until six at the earliest\nand the second line"
)

# Draws a message as the live socket does (an out-of-band append to the list): a copy of the
# newest item with a new id and text.
ARRIVE = """(text) => {
  const list = document.getElementById("messages");
  const items = list.querySelectorAll(":scope > li.message:not(.mine)");
  const item = items[items.length - 1].cloneNode(true);
  item.id = "m-live-" + list.children.length;
  item.querySelector(".day")?.remove();
  item.querySelector(".quote")?.remove();
  item.querySelector(".body").textContent = text;
  list.appendChild(item);
}"""


IN_VIEW = """(selector) => {
  const box = document.querySelector(selector).getBoundingClientRect();
  const dock = document.getElementById("dock").getBoundingClientRect();
  return box.top >= 0 && box.bottom <= dock.top + 1 && box.height > 0;
}"""


def in_view(page, selector: str) -> bool:
    """Whether the element is wholly on the screen and not under the pinned composer."""
    return page.evaluate(IN_VIEW, selector)


def comes_into_view(page, selector: str) -> bool:
    """Whether the element is in view within a moment: a page that has just loaded scrolls to
    its newest message once what it loads has come (the next frame after its load event)."""
    page.wait_for_function(IN_VIEW, arg=selector, timeout=2000)
    return True


def composer_pinned(page, height: int) -> bool:
    box = page.locator("#compose").bounding_box()
    assert box is not None
    return box["y"] >= 0 and abs(box["y"] + box["height"] - height) <= 2


def newest(page) -> str:
    return "#messages > li.message:last-child .bubble"


@pytest.fixture
def family(node, tmp_path):  # noqa: F811
    """Alice's conversation with Bob, 80 messages long, the newest a reply of Bob's."""
    chat = services.conversation_create(name="Family", my_name="Alice")
    bob = member_join(chat, tmp_path, "Bob", "writer")
    for round_ in range(ROUNDS):
        for i in range(5):
            Message.objects.using(bob.alias).create(text=f"Bob, round {round_}, message {i}")
        bob.send()
        for i in range(5):
            text = ORIGINAL if (round_, i) == (ROUNDS - 1, 4) else f"Alice, round {round_}, {i}"
            services.message_send(thread=chat, text=text)
    bob.receive()
    original = selectors.messages(chat, limit=1)[0]
    assert original.text == ORIGINAL
    Message.objects.using(bob.alias).create(text="On my way to get it!", reply_to=original.id)
    bob.send()
    return chat


@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_a_long_conversation_behaves_like_a_chat(
    chromium,  # noqa: F811
    live_server,
    session_cookie,  # noqa: F811
    family,
    size: str,
) -> None:
    SHOTS.mkdir(exist_ok=True)
    viewport = PHONE if size == "phone" else DESKTOP
    width, height = viewport["width"], viewport["height"]
    context = _context(chromium, live_server, session_cookie, viewport)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{live_server.url}/node/messages/{family.id}/")
    page.screenshot(path=str(SHOTS / f"opened-{size}.png"))
    _looks_right(page, errors, width)

    # It opens at the newest message, the composer pinned under it.
    assert page.locator("#messages > li.message").count() == selectors.PAGE
    assert page.locator(newest(page)).inner_text().count("On my way to get it!") == 1
    assert comes_into_view(page, newest(page))
    assert composer_pinned(page, height)
    assert page.evaluate("() => window.scrollY") > 0

    # The reply quotes the message it answers: who wrote it and its first line, cut.
    quote = page.locator("#messages > li.message", has_text="On my way").locator(".quote")
    assert quote.locator("strong").inner_text() == "You"
    line = quote.locator(".line").inner_text()
    assert line.startswith("Could someone pick up the cake")
    assert line.endswith("…")
    assert 90 < len(line) <= 100
    assert "second line" not in line

    # Scrolling up to read, the composer stays pinned; the older messages are linked above.
    page.mouse.wheel(0, -2500)
    page.wait_for_function("() => window.scrollY < document.body.scrollHeight / 2")
    assert composer_pinned(page, height)
    assert not in_view(page, newest(page))
    page.screenshot(path=str(SHOTS / f"scrolled-{size}.png"))

    # A message arriving while one reads older ones: a button, not a jump.
    scrolled = page.evaluate("() => window.scrollY")
    page.evaluate(ARRIVE, "Are you still there?")
    jump = page.get_by_role("button", name="New messages ↓")
    jump.wait_for()
    assert page.evaluate("() => window.scrollY") == scrolled
    page.screenshot(path=str(SHOTS / f"new-messages-{size}.png"))
    jump.click()
    page.wait_for_function("() => document.getElementById('jump').hidden")
    assert comes_into_view(page, newest(page))

    # At the newest message, a message arriving stays in view.
    page.evaluate(ARRIVE, "Hello again")
    assert comes_into_view(page, newest(page))
    assert page.locator(newest(page)).inner_text().count("Hello again") == 1
    assert jump.is_hidden()

    # The quote leads to the message it answers.
    quote.click()
    assert page.url.endswith("#m-" + quote.get_attribute("href").rsplit("#m-", 1)[1])
    original = page.locator("#messages > li.message:target")
    assert "pick up the cake" in original.inner_text()
    assert original.is_visible()

    # One menu per message instead of six buttons; reacting makes a chip, pressing it again
    # takes it back.
    item = page.locator("#messages > li.message", has_text=BOBS_LAST)
    assert item.get_by_role("button", name="React 👍").is_hidden()
    item.locator("summary").click()
    assert item.get_by_role("button", name="React 👍").is_visible()
    assert item.get_by_role("link", name="reply", exact=True).is_visible()
    assert item.get_by_role("link", name="edit").count() == 0  # not mine
    _looks_right(page, errors, width)
    page.screenshot(path=str(SHOTS / f"menu-{size}.png"))
    reacted = "#" + item.get_attribute("id")
    with page.expect_navigation():
        item.get_by_role("button", name="React 👍").click()
    item = page.locator(reacted)
    chip = item.locator("button.chip")
    assert chip.inner_text() == "👍 1"
    assert chip.get_attribute("aria-pressed") == "true"
    assert comes_into_view(page, reacted + " .bubble")  # back at the message
    with page.expect_navigation():
        chip.click()
    item = page.locator("#messages > li.message", has_text=BOBS_LAST)
    assert item.locator("button.chip").count() == 0

    # Replying from the menu needs no reload; Enter sends (on a phone, the Send button).
    item.locator("summary").click()
    item.get_by_role("link", name="reply", exact=True).click()
    replying = page.locator("#replying")
    assert replying.is_visible()
    # Its author (named on screen only at the start of Bob's run of messages).
    bob = (item.locator("header strong").text_content() or "").strip()
    assert bob
    assert bob in replying.inner_text()
    assert BOBS_LAST in replying.inner_text()
    text = page.get_by_label("Message", exact=True)
    text.fill("Thanks Bob")
    with page.expect_navigation():
        if size == "phone":
            page.get_by_role("button", name="Send").click()
        else:
            text.press("Enter")
    sent = page.locator("#messages > li.message:last-child")
    assert "Thanks Bob" in sent.inner_text()
    assert sent.locator(".quote strong").inner_text() == bob
    page.screenshot(path=str(SHOTS / f"replied-{size}.png"))
    assert comes_into_view(page, newest(page))
    assert composer_pinned(page, height), page.locator("#compose").bounding_box()
    _looks_right(page, errors, width)
    page.screenshot(path=str(SHOTS / f"replied-{size}-full.png"), full_page=True)
    page.emulate_media(color_scheme="dark")
    _looks_right(page, errors, width)
    page.screenshot(path=str(SHOTS / f"dark-{size}.png"))
    context.close()


def test_shift_enter_is_a_new_line_and_a_long_paste_is_kept_whole(
    chromium,  # noqa: F811
    live_server,
    session_cookie,  # noqa: F811
    family,
) -> None:
    context = _context(chromium, live_server, session_cookie, DESKTOP)
    page = context.new_page()
    page.goto(f"{live_server.url}/node/messages/{family.id}/")
    text = page.get_by_label("Message", exact=True)
    text.press_sequentially("first line")
    text.press("Shift+Enter")
    text.press_sequentially("second line")
    assert text.input_value() == "first line\nsecond line"
    assert page.locator("#id_text").get_attribute("maxlength") is None

    # A paste over the limit is kept whole, and said at once; sending says it once more.
    long = "word " * 1824  # 9 120 characters
    text.fill(long)
    limit = page.locator("#compose-limit")
    assert limit.inner_text() == (
        "This message is 9\u00a0119 characters; the limit is 8\u00a0000."
        " Send the rest as a second message or attach it as a file."
    )
    with page.expect_navigation():
        page.get_by_role("button", name="Send").click()
    assert page.get_by_label("Message", exact=True).input_value() == long
    errors = page.locator("#compose .errorlist li:visible")
    assert errors.all_inner_texts() == [
        "This message is 9\u00a0119 characters; the limit is 8\u00a0000."
        " Send the rest as a second message or attach it as a file."
    ]
    assert comes_into_view(page, newest(page))
    page.screenshot(path=str(SHOTS / "too-long-desktop.png"))
    context.close()


def test_without_javascript_it_is_a_page_of_forms(
    chromium,  # noqa: F811
    live_server,
    session_cookie,  # noqa: F811
    family,
) -> None:
    context = chromium.new_context(viewport=PHONE, java_script_enabled=False)
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": session_cookie, "url": live_server.url}]
    )
    page = context.new_page()
    page.goto(f"{live_server.url}/node/messages/{family.id}/")
    # The browser's own file field shows what was chosen; the composer is still pinned.
    assert page.locator("#id_files").is_visible()
    assert composer_pinned(page, PHONE["height"])
    # Reply from the message's menu (a <details>, no script), send with the button.
    item = page.locator("#messages > li.message", has_text="On my way to get it!")
    item.locator("summary").click()
    with page.expect_navigation():
        item.get_by_role("link", name="reply", exact=True).click()
    assert "On my way to get it!" in page.locator("#replying").inner_text()
    page.get_by_label("Message", exact=True).fill("See you there")
    with page.expect_navigation():
        page.get_by_role("button", name="Send").click()
    sent = page.locator("#messages > li.message:last-child")
    assert "See you there" in sent.locator(".body").inner_text()
    assert "On my way to get it!" in sent.locator(".quote").inner_text()
    # Back under the newest message (the node's redirect names the conversation's end).
    assert composer_pinned(page, PHONE["height"])
    newest_box = page.locator(newest(page)).bounding_box()
    dock = page.locator("#dock").bounding_box()
    assert newest_box is not None
    assert dock is not None
    assert newest_box["y"] >= 0
    assert newest_box["y"] + newest_box["height"] <= dock["y"] + 1
    page.screenshot(path=str(SHOTS / "no-script-phone.png"))
    # A delete asks first, in the page.
    sent.locator("summary").click()
    with page.expect_navigation():
        sent.get_by_role("link", name="delete").click()
    with page.expect_navigation():
        page.get_by_role("button", name="Delete").click()
    assert page.locator("#messages").get_by_text("See you there").count() == 0
    context.close()
