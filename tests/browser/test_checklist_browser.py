"""The checklist in a real browser (Debian's Chromium through Playwright) at a phone's width and
a desktop's, against this test's node served by Django's live server: Alice adds a checklist to
her conversation from its page, adds items, claims, marks done and approves; Bob (an admin, on
a node of his own in this process) claims one item before her without her node knowing, so her
claim is turned over and the page says so in plain words; Bob's approval makes an item
"approved". Every page is checked as a person sees it (no template syntax, no hex ids, no empty
labels or nameless buttons, nothing wider than the screen, the current tab marked). Screenshots
are saved under /tmp/sereus-checklist/ to be looked at."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from apps.checklist import selectors
from apps.messaging import services as messaging
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
from tests.checklist.support import member_join
from tests.core.threads.conftest import node, thread_databases_allowed  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    NEEDS_CHROMIUM,
]

SHOTS = Path(tempfile.gettempdir()) / "sereus-checklist"
DESKTOP_800 = {**DESKTOP, "height": 800}


def item_of(page, text: str):
    return page.locator("li.item", has_text=text)


def click(page, locator) -> None:
    """Press a form's button and wait for the page it redirects to."""
    with page.expect_navigation():
        locator.click()


def checked(page, errors: list[str], width: int) -> None:
    _looks_right(page, errors, width)
    current = page.locator("nav.app-tabs a[aria-current='page']")
    assert current.count() == 1
    assert current.inner_text() == "Checklist"
    # Every form control has a label, and the page has its landmarks.
    for field in page.locator("main input:not([type=hidden]), main select").all():
        field_id = field.get_attribute("id")
        assert field_id
        assert page.locator(f"label[for='{field_id}']").count() == 1, field_id
    assert page.locator("main#main").count() == 1
    assert page.locator("nav[aria-label]").count() >= 2


@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_a_checklist_in_a_conversation(
    chromium,  # noqa: F811
    live_server,
    session_cookie,  # noqa: F811
    tmp_path,
    size: str,
) -> None:
    SHOTS.mkdir(exist_ok=True)
    viewport = PHONE if size == "phone" else DESKTOP_800
    width = viewport["width"]
    chat = messaging.conversation_create(name="Flat share", my_name="Alice")
    bob = member_join(chat, tmp_path, "Bob", "admin")
    context = _context(chromium, live_server, session_cookie, viewport)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    # From the conversation, Alice adds a checklist; she lands on its tab.
    page.goto(f"{live_server.url}/node/messages/{chat.id}/")
    click(page, page.get_by_role("button", name="add a checklist"))
    assert page.url.endswith(f"/node/threads/{chat.id}/checklist/")
    page.get_by_text("This thread has a checklist now").wait_for()
    tabs = page.get_by_role("navigation", name="What this thread holds")
    assert tabs.get_by_role("link", name="Conversation").is_visible()
    checked(page, errors, width)
    page.screenshot(path=str(SHOTS / f"empty-{size}.png"), full_page=True)

    for text, list_name in (
        ("Buy oat milk", "Shopping"),
        ("Clean the oven", ""),
        ("Pay the electricity bill", ""),
    ):
        page.get_by_label("Item", exact=True).fill(text)
        page.get_by_label("List", exact=True).fill(list_name)
        click(page, page.get_by_role("button", name="Add", exact=True))
    assert page.get_by_role("heading", name="Shopping").is_visible()
    assert page.get_by_role("heading", name="To do").is_visible()

    # Bob claims the milk on his node first; Alice's node has not heard of it.
    milk = next(i.id for i in selectors.items(chat) if i.text == "Buy oat milk")
    bob.receive()
    bob.claim(milk)
    click(page, item_of(page, "Buy oat milk").get_by_role("button", name="Claim"))
    assert item_of(page, "Buy oat milk").get_by_text("You have it").is_visible()
    # She takes the oven on and finishes it, and approves the bill.
    oven = item_of(page, "Clean the oven")
    click(page, oven.get_by_role("button", name="Claim"))
    click(page, item_of(page, "Clean the oven").get_by_role("button", name="Done"))
    assert item_of(page, "Clean the oven").get_by_text("done", exact=True).is_visible()
    bill = item_of(page, "Pay the electricity bill")
    click(page, bill.get_by_role("button", name="Approve"))
    bill = item_of(page, "Pay the electricity bill")
    assert bill.get_by_text("approved by you, one more admin needed").is_visible()

    # Bob's log arrives: his claim orders first and wins; his approval completes the bill's.
    bob.receive()
    bill_id = next(i.id for i in selectors.items(chat) if i.text == "Pay the electricity bill")
    bob.approve(bill_id)
    bob.send()
    page.reload()
    milk_item = item_of(page, "Buy oat milk")
    assert milk_item.get_by_text("Bob has it").is_visible()
    assert milk_item.get_by_text(
        "Your claim was refused: someone else claimed it first."
    ).is_visible()
    assert milk_item.get_by_role("button", name="Claim").count() == 0
    bill = item_of(page, "Pay the electricity bill")
    assert bill.locator(".badge.approved").inner_text() == "approved"
    checked(page, errors, width)
    page.screenshot(path=str(SHOTS / f"items-{size}.png"), full_page=True)

    # Closing the shopping list: its items keep their state, and only an approval is left.
    shopping = page.locator("section.checklist-list", has_text="Shopping")
    shopping.get_by_label("Close Shopping").select_option("")
    click(page, shopping.get_by_role("button", name="Close the list"))
    shopping = page.locator("section.checklist-list", has_text="Shopping")
    assert shopping.get_by_text("This list is closed").is_visible()
    assert [b.inner_text() for b in shopping.get_by_role("button").all()] == ["Approve"]
    checked(page, errors, width)
    page.screenshot(path=str(SHOTS / f"closed-{size}.png"), full_page=True)

    # Editing in place, then back to the list.
    oven = item_of(page, "Clean the oven")
    click(page, oven.get_by_role("link", name="Edit"))
    page.locator("li.item form").get_by_label("Item", exact=True).fill("Clean the oven and the hob")
    click(page, page.get_by_role("button", name="Save"))
    assert item_of(page, "Clean the oven and the hob").is_visible()
    checked(page, errors, width)
    context.close()
