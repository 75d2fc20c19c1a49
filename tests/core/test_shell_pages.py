"""The shell a person lives in: Home lists their threads with what is new and what waits for
them (unread first), a first-run path when there are none; opening a thread opens its app; its
People tab says what each role can do and keeps the technical view for those who manage it;
the node's status is on the Network page under Settings."""

from __future__ import annotations

import re
from html import unescape

import pytest
from django.test import Client
from django.urls import reverse

from apps.checklist import selectors as checklist_selectors
from apps.checklist import services as checklist
from apps.core import selectors as node_selectors
from apps.core import services as node_services
from apps.core.threads import services as threads
from apps.core.threads.registry import thread_database
from apps.messaging import services as messaging
from apps.messaging.models import Message
from tests.checklist.support import carols_checklist
from tests.core.threads.conftest import admit, exchange, node, other_node, thread_databases_allowed  # noqa: F401
from tests.support.cut_off import carols_conversation

HEX_ID = re.compile(r"\b[0-9a-f]{12,}\b")


@pytest.fixture
def browser(node) -> Client:  # noqa: F811
    user = node_services.owner_claim(
        token=node_services.claim_token_issue(), username="me", password="pw " * 6
    ).user
    client = Client()
    client.force_login(user)
    return client


def page(browser: Client, name: str, *args: str) -> str:
    response = browser.get(reverse(name, args=args))
    assert response.status_code == 200
    return response.content.decode()


def text_of(html: str) -> str:
    """What a person reads: no tags, no <details> (the technical view), no scripts."""
    innermost = re.compile(r"<details\b(?:(?!<details\b).)*?</details>", flags=re.S)
    while innermost.search(html):
        html = innermost.sub(" ", html)
    html = re.sub(r"<(script|style|head)\b.*?</\1>", " ", html, flags=re.S)
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def rows(html: str) -> list[str]:
    """The thread names on Home, in order."""
    return re.findall(r'<span class="row-title">([^<]*)</span>', html)


def test_home_without_threads_shows_the_first_run_path(browser):
    html = page(browser, "core:dashboard")
    said = text_of(html)
    for action in ("Start a conversation", "Invite someone", "Join with a link"):
        assert action in said
    assert reverse("core:thread_join") in html
    assert reverse("messaging:list") in html
    assert rows(html) == []


def test_home_lists_unread_conversations_first_with_a_preview(browser, tmp_path):
    busy = messaging.conversation_create(name="Busy")
    bob = other_node(tmp_path, busy.thread, "bob")
    admit(thread_database(busy.thread), bob, "writer")
    quiet = messaging.conversation_create(name="Quiet")
    Message.objects.using(bob.alias).create(text="first\nsecond line")
    Message.objects.using(bob.alias).create(text="are you there?")
    exchange(bob.database, thread_database(busy.thread))
    # Quiet has the newest message, but it is this member's own: nothing unread there.
    messaging.message_send(thread=quiet, text="a note to **myself** " + "long " * 30)

    html = page(browser, "core:dashboard")
    assert rows(html) == ["Busy", "Quiet"]
    said = text_of(html)
    assert "2 unread messages" in said
    assert ": are you there?" in said
    assert "You: a note to myself" in said
    assert "…" in said
    assert reverse("messaging:conversation", args=[busy.id]) in html

    messaging.conversation_read(thread=busy)
    html = page(browser, "core:dashboard")
    assert "unread" not in text_of(html)
    assert rows(html) == ["Quiet", "Busy"]  # now the newest first


def test_home_says_what_a_checklist_has_waiting_for_me(browser, tmp_path):
    carol = carols_checklist(tmp_path)
    thread = carol.thread
    carol.add("Buy paint")
    carol.add("Call the landlord")
    carol.send()
    item = next(i for i in checklist_selectors.items(thread) if i.text == "Buy paint")
    checklist.item_claim(thread=thread, item_id=item.id)

    html = page(browser, "core:dashboard")
    assert "1 checklist item for you to do" in text_of(html)
    assert reverse("checklist:checklist", args=[thread.id]) in html
    checklist.item_done(thread=thread, item_id=item.id)
    assert "for you to do" not in text_of(page(browser, "core:dashboard"))


def test_opening_a_thread_opens_its_app_and_people_is_a_tab(browser):
    chat = messaging.conversation_create(name="Family")
    response = browser.get(reverse("core:thread", args=[chat.id]))
    assert response.status_code == 302
    assert response["Location"] == reverse("messaging:conversation", args=[chat.id])
    plain = threads.thread_create(name="Plain")
    response = browser.get(reverse("core:thread", args=[plain.id]))
    assert response["Location"] == reverse("core:thread_people", args=[plain.id])

    html = page(browser, "core:thread_people", chat.id)
    tabs = re.findall(r'<nav class="app-tabs".*?</nav>', html, flags=re.S)[0]
    assert re.findall(r">([^<>]+)</a>", tabs) == ["Conversation", "People"]
    assert 'aria-current="page">People' in tabs


def test_people_tab_says_what_roles_can_do_and_keeps_details_for_owners(browser):
    chat = messaging.conversation_create(name="Family")
    html = page(browser, "core:thread_people", chat.id)
    said = text_of(html)
    # Each app says what its roles do in it; the core adds inviting and managing.
    posts = "post, react and send files, and edit or delete their own messages"
    assert (
        f"Admin Can {posts}; can invite people as admin, writer or reader; can manage members."
        in said
    )
    assert f"Writer Can {posts}." in said
    assert "Reader Can read the conversation." in said
    assert "You own this thread, so you cannot leave it." in said
    assert "Technical details" in html
    assert chat.id in html
    assert not HEX_ID.search(said), HEX_ID.search(said)


def test_roles_in_words_come_from_each_app_of_the_thread(browser):
    from apps.core.threads.thread_apps import app_enable

    chat = messaging.conversation_create(name="Flat")
    app_enable(thread=chat, app="checklist")
    chat.refresh_from_db()
    said = text_of(page(browser, "core:thread_people", chat.id))
    roles = said.split("What each role can do here", 1)[1]
    writer = roles.split("Writer", 1)[1].split("Reader", 1)[0]
    assert "can add checklist items, take them on and mark their own done" in writer
    # The checklist's table rights let a writer delete any item only where its validator
    # allows: the words must not promise more.
    assert "delete what others posted" not in said


def test_a_writer_sees_no_technical_details_and_can_leave(browser, tmp_path):
    conversation = carols_conversation(tmp_path)
    thread = conversation.thread
    html = page(browser, "core:thread_people", thread.id)
    # The thread's sync, devices and op log are for those who manage it.
    for technical in ('id="thread-sync"', 'id="thread-activity"'):
        assert technical not in html
    assert thread.id not in re.sub(r"<[^>]+>", " ", html)  # only in links
    assert reverse("core:thread_leave", args=[thread.id]) in html
    assert "Leave Book club" in text_of(html)


def test_settings_links_to_the_network_page_which_keeps_ids_in_details(browser):
    settings_html = page(browser, "core:settings")
    assert reverse("core:network") in settings_html
    assert reverse("core:logout") in settings_html
    html = page(browser, "core:network")
    said = text_of(html)
    assert "Checking…" in said  # the live status fills in over the socket
    peer_id = node_selectors.node_info().peer_id
    assert peer_id in html
    assert peer_id not in said
    assert "Web address" in said


def test_main_navigation_is_five_places_in_words(browser):
    html = page(browser, "core:dashboard")
    nav = re.findall(r'<ul class="nav-links">.*?</ul>', html, flags=re.S)[0]
    assert re.findall(r">([^<>]+)</a>", nav) == ["Home", "Chats", "Feed", "Threads", "Settings"]
    assert 'aria-current="page">Home' in nav


def test_home_asks_an_admin_to_approve_done_work(browser):
    chat = messaging.conversation_create(name="Flat share")
    checklist.checklist_enable(thread=chat)
    item = checklist.item_add(thread=chat, text="Pay the bill")
    checklist.item_claim(thread=chat, item_id=item.id)
    checklist.item_done(thread=chat, item_id=item.id)
    said = text_of(page(browser, "core:dashboard"))
    assert "1 checklist item to approve" in said
    assert "for you to do" not in said  # done: nothing left to do
    checklist.item_approve(thread=chat, item_id=item.id)
    assert "to approve" not in text_of(page(browser, "core:dashboard"))  # approved by me
