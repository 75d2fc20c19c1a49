"""The checklist pages without JavaScript (forms that post and redirect), the conversation's
control that adds a checklist, the tabs, and the live socket that re-renders the lists."""

from __future__ import annotations

import re

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.test import Client
from django.urls import reverse

from apps.checklist import selectors, services
from apps.core.threads.services import thread_create
from apps.messaging import services as messaging
from apps.p2p.client import live_group
from tests.checklist.support import Member, carols_checklist
from tests.support.sockets import logged_in_cookies, socket

pytestmark = pytest.mark.django_db(transaction=True)

HEX_ID = re.compile(r"\b[0-9a-f]{32,}\b")


def page_of(thread) -> str:
    return reverse("checklist:checklist", args=[thread.id])


def visible(html: str) -> str:
    """The page's text as read (tags, attributes and the CSRF token out)."""
    main = html.split("<main", 1)[1].split("</main>", 1)[0]
    return re.sub(r"<[^>]+>", " ", main)


def test_a_conversation_gets_a_checklist_from_its_page_and_shows_it_as_a_tab(browser):
    chat = messaging.conversation_create(name="Flat share", my_name="Alice")
    conversation = browser.get(reverse("messaging:conversation", args=[chat.id])).content.decode()
    enable = reverse("checklist:enable", args=[chat.id])
    assert f'action="{enable}"' in conversation
    assert "add a checklist" in conversation
    done = browser.post(enable)
    assert (done.status_code, done["Location"]) == (302, page_of(chat))
    assert selectors.enabled(chat)
    page = browser.get(page_of(chat)).content.decode()
    assert '<nav class="app-tabs"' in page
    assert f'<a href="{page_of(chat)}" aria-current="page">Checklist</a>' in page
    assert "This thread has a checklist now" in page
    conversation = browser.get(reverse("messaging:conversation", args=[chat.id])).content.decode()
    assert f'action="{enable}"' not in conversation  # on already
    assert f'<a href="{page_of(chat)}">Checklist</a>' in conversation


def test_a_thread_without_the_checklist_offers_to_add_it(browser):
    thread = thread_create(name="Plain")
    page = browser.get(page_of(thread)).content.decode()
    assert "No checklist here yet" in page
    assert "Add a checklist" in page
    assert browser.get(reverse("checklist:checklist", args=["0" * 64])).status_code == 404
    # The owner's alone, like every page and the API.
    assert Client().get(page_of(thread)).status_code == 302
    assert Client().get(f"/api/v1/threads/{thread.id}/checklist/").status_code in (401, 403)


def test_add_claim_done_approve_and_close_through_the_page(browser):
    chat = messaging.conversation_create(name="Flat share", my_name="Alice")
    services.checklist_enable(thread=chat)
    added = browser.post(page_of(chat), {"text": "Buy milk", "list_name": "Shopping"})
    assert added.status_code == 302
    item = selectors.items(chat)[0]
    assert added["Location"] == page_of(chat) + f"#item-{item.id}"
    action = lambda name: reverse("checklist:action", args=[chat.id, item.id, name])  # noqa: E731
    for name in ("claim", "done", "approve"):
        assert browser.post(action(name)).status_code == 302
    page = browser.get(page_of(chat)).content.decode()
    text = visible(page)
    assert "Shopping" in text
    assert "Buy milk" in text
    assert "You have it" in text
    assert "approved by you, one more admin needed" in text
    assert not HEX_ID.search(text)
    assert "{{" not in text
    assert "{%" not in text
    assert f'ws-connect="/ws/checklist/{chat.id}/"' in page
    # Edit: the form shows in place (and the page is not live while it does).
    editing = browser.get(page_of(chat) + f"?edit={item.id}").content.decode()
    assert reverse("checklist:edit", args=[chat.id, item.id]) in editing
    assert "ws-connect" not in editing
    browser.post(reverse("checklist:edit", args=[chat.id, item.id]), {"text": "Buy oat milk"})
    assert selectors.item(chat, item.id).text == "Buy oat milk"
    closed = browser.post(reverse("checklist:close", args=[chat.id]), {"list_name": "Shopping"})
    assert closed.status_code == 302
    text = visible(browser.get(page_of(chat)).content.decode())
    assert "This list is closed" in text
    assert "Claim" not in text
    assert "Give back" not in text
    planned = browser.post(
        reverse("checklist:close", args=[chat.id]), {"list_name": "Chores", "when": "day"}
    )
    assert planned.status_code == 302


def test_a_refused_action_says_why_in_plain_words(browser, tmp_path):
    shared: Member = carols_checklist(tmp_path)
    pk = shared.add("Water the plants")
    shared.claim(pk)
    shared.send()
    thread = shared.thread
    claimed = browser.post(reverse("checklist:action", args=[thread.id, pk, "claim"]), follow=True)
    text = visible(claimed.content.decode())
    assert "Your claim was refused: someone else claimed it first." in text
    assert "Carol has it" in text
    # A writer sees no approve or close controls, and nothing of another's item to edit.
    assert "Approve" not in text
    assert "Close the list" not in text
    assert "Edit" not in text


def test_a_claim_turned_over_shows_on_the_page(browser, tmp_path):
    shared = carols_checklist(tmp_path)
    pk = shared.add("Take out the bins")
    shared.send()
    shared.claim(pk)
    browser.post(reverse("checklist:action", args=[shared.thread.id, pk, "claim"]))
    assert "You have it" in visible(browser.get(page_of(shared.thread)).content.decode())
    shared.send()
    text = visible(browser.get(page_of(shared.thread)).content.decode())
    assert "Carol has it" in text
    assert "Your claim was refused: someone else claimed it first." in text


@pytest.mark.anyio
async def test_the_open_page_is_re_rendered_when_the_thread_changes(owner_user):
    chat = await database_sync_to_async(messaging.conversation_create)(name="Flat share")
    await database_sync_to_async(services.checklist_enable)(thread=chat)
    cookies = await database_sync_to_async(logged_in_cookies)(owner_user)
    communicator = socket(f"/ws/checklist/{chat.id}/", cookies=cookies)
    assert (await communicator.connect())[0]
    first = await communicator.receive_from(timeout=5)
    assert first.startswith('<div id="checklist" hx-swap-oob="true">')
    await database_sync_to_async(services.item_add)(thread=chat, text="Live item")
    await get_channel_layer().group_send(live_group(chat.thread), {"type": "thread.changed"})
    while "Live item" not in (html := await communicator.receive_from(timeout=5)):
        pass
    assert "csrfmiddlewaretoken" in html  # its forms still post
    await communicator.disconnect()
    # Only for threads with the checklist on, and the owner only.
    plain = await database_sync_to_async(thread_create)(name="Plain")
    closed = socket(f"/ws/checklist/{plain.id}/", cookies=cookies)
    assert await closed.connect() == (False, 4404)
    anonymous = socket(f"/ws/checklist/{chat.id}/", cookies=None)
    assert await anonymous.connect() == (False, 4403)
