"""The Chats page as a chat app lists conversations (unread first, then the newest, each with its
newest message and time), and inviting someone to chat in one step (a conversation and a
single-use invite at the member role, then the link to pass on), as pages without JavaScript."""

from __future__ import annotations

import re
from html import unescape

import pytest
from django.test import Client
from django.urls import reverse

from apps.core import services as node_services
from apps.core.models import Thread
from apps.core.threads import services as threads
from apps.core.threads.qr import qr_svg
from apps.core.threads.registry import thread_database
from apps.messaging import services as messaging
from apps.messaging.models import Message
from tests.core.threads.conftest import admit, exchange, other_node

pytestmark = pytest.mark.django_db(transaction=True)

HEX_ID = re.compile(r"\b[0-9a-f]{12,}\b")
TEMPLATE_SYNTAX = re.compile(r"\{[{%#]|[}%#]\}")


@pytest.fixture
def browser(node) -> Client:
    """The owner's browser on a node with no conversation yet."""
    user = node_services.owner_claim(
        token=node_services.claim_token_issue(), username="me", password="pw " * 6
    ).user
    client = Client()
    client.force_login(user)
    return client


def main_of(html: str) -> str:
    return re.search(r"<main\b.*?</main>", html, flags=re.S).group(0)


def text_of(html: str) -> str:
    """What a person reads in the page's main part: no tags, no scripts."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", main_of(html), flags=re.S)
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def rows(html: str) -> list[str]:
    return re.findall(r'<span class="row-title">([^<]*)</span>', html)


def chats(browser: Client) -> str:
    response = browser.get(reverse("messaging:list"))
    assert response.status_code == 200
    return response.content.decode()


def readable(html: str) -> None:
    """Words a person reads: no template syntax, no hex ids."""
    said = text_of(html)
    assert not TEMPLATE_SYNTAX.search(said), TEMPLATE_SYNTAX.search(said)
    assert not HEX_ID.search(said), HEX_ID.search(said)


def test_no_chats_yet_says_what_to_do(browser):
    html = chats(browser)
    said = text_of(html)
    assert "<h1>Chats</h1>" in html
    assert "No chats yet" in said
    assert rows(html) == []
    assert reverse("messaging:invite") in html
    assert reverse("core:thread_join") in html
    # The start form is where Home's "Start a conversation" leads.
    assert 'id="start"' in html
    assert 'name="name"' in html
    readable(html)


def test_chats_unread_first_then_newest_with_the_newest_message(browser, tmp_path):
    empty = messaging.conversation_create(name="Empty")
    busy = messaging.conversation_create(name="Busy")
    bob = other_node(tmp_path, busy.thread, "bob")
    admit(thread_database(busy.thread), bob, "writer")
    quiet = messaging.conversation_create(name="Quiet")
    Message.objects.using(bob.alias).create(text="first")
    Message.objects.using(bob.alias).create(text="are **you** there?")
    exchange(bob.database, thread_database(busy.thread))
    # Quiet has the newest message, but it is this member's own: nothing unread there.
    messaging.message_send(thread=quiet, text="a note to *myself*\nand a second line")

    html = chats(browser)
    assert rows(html) == ["Busy", "Quiet", "Empty"]
    said = text_of(html)
    assert "You: a note to myself" in said
    assert "second line" not in said
    # Bob (unnamed: two words of his key) said it; the time, then how many are unread.
    assert re.search(r"Busy [a-z]+ [a-z]+: are you there\? \d\d:\d\d 2 unread messages", said)
    assert '<span class="badge">2<span class="visually-hidden"> unread messages</span>' in html
    assert "No messages yet" in said  # Empty
    # Times as a chat shows them: today's as HH:MM (never a date with seconds).
    assert len(re.findall(r'<time datetime="[^"]+">\d\d:\d\d</time>', html)) == 2
    for thread in (busy, quiet):
        assert reverse("messaging:conversation", args=[thread.id]) in html
    assert reverse("messaging:conversation", args=[empty.id]) in html
    readable(html)

    messaging.conversation_read(thread=busy)
    html = chats(browser)
    assert "unread" not in text_of(html)
    assert rows(html) == ["Quiet", "Busy", "Empty"]  # now the newest first


def test_a_new_chat_from_the_form_and_its_refusal_keeps_what_was_typed(browser):
    started = browser.post(reverse("messaging:list"), {"name": "Family"})
    family = Thread.objects.get(name="Family")
    # No fragment on the form's address: the browser would carry it into the conversation.
    assert started["Location"] == reverse("messaging:conversation", args=[family.id])
    assert not re.search(r'<form[^>]*action="[^"]*#', chats(browser))
    refused = browser.post(reverse("messaging:list"), {"name": "x" * 201, "my_name": "Mum"})
    assert refused.status_code == 400
    html = refused.content.decode()
    assert 'value="Mum"' in html
    assert "errorlist" in html
    # The refused form first, where it is seen, then the chats.
    assert html.index('id="start"') < html.index('class="row-title">Family<')
    assert list(Thread.objects.all()) == [family]


def test_home_first_run_invite_someone_leads_to_the_invite_form(browser):
    home = browser.get(reverse("core:dashboard")).content.decode()
    action = r'<a class="big-action" href="([^"]+)">(?:(?!</a>).)*Invite someone'
    link = re.search(action, home, flags=re.S)
    assert link.group(1) == reverse("messaging:invite")
    form = browser.get(link.group(1))
    assert form.status_code == 200
    html = form.content.decode()
    assert "Invite someone to chat" in html
    assert 'name="label"' in html
    assert 'name="name"' in html
    readable(html)


def test_inviting_someone_makes_a_conversation_and_an_invite_for_them(browser):
    made = browser.post(reverse("messaging:invite"), {"label": "  Sam  ", "name": ""})
    assert made.status_code == 302
    thread = Thread.objects.get()
    assert (thread.name, thread.app, thread.role) == ("Chat with Sam", "messaging", "owner")
    invite = thread.invites.get()
    assert (invite.label, invite.role, invite.uses, invite.status) == ("Sam", "writer", 1, "open")
    assert made["Location"] == reverse("messaging:invited", args=[thread.id, invite.invite_id])

    shown = browser.get(made["Location"])
    assert shown.status_code == 200
    assert shown["Cache-Control"] == "no-store"  # the page holds the invite's secret
    html = shown.content.decode()
    assert invite.link.startswith("sereus:invite/")
    assert f">{invite.link}</textarea>" in html
    assert qr_svg(invite.link) in html  # the QR code of this very link
    said = text_of(html)
    assert "Send Sam this invite" in said
    assert "It works once and expires in 7 days" in said
    assert reverse("messaging:conversation", args=[thread.id]) in html
    assert "Open the conversation" in said
    readable(html.replace(invite.link, "the link"))


def test_inviting_someone_with_a_name_for_the_conversation(browser):
    browser.post(reverse("messaging:invite"), {"label": "Sam", "name": "Book club"})
    thread = Thread.objects.get()
    assert thread.name == "Book club"
    assert thread.invites.get().label == "Sam"


@pytest.mark.parametrize(
    ("data", "error", "kept"),
    [
        ({"label": "", "name": "Book club"}, "Write their name.", 'value="Book club"'),
        ({"label": "   ", "name": ""}, "Write their name.", None),
        (
            {"label": "S" * 81, "name": "Book club"},
            "Their name has at most 80 characters; this one has 81.",
            'value="' + "S" * 81 + '"',
        ),
        (
            {"label": "Sam", "name": "b" * 201},
            "A conversation's name has at most 200 characters; this one has 201.",
            'value="' + "b" * 201 + '"',
        ),
        ({"label": "Sam\x07", "name": ""}, "Their name is plain text", None),
    ],
)
def test_inviting_someone_refuses_bad_names_in_plain_words(browser, data, error, kept):
    refused = browser.post(reverse("messaging:invite"), data)
    assert refused.status_code == 400
    html = refused.content.decode()
    assert error in unescape(html)
    if kept:
        assert kept in html
    assert "maxlength" not in html  # a long paste is told, not cut without a word
    assert not Thread.objects.exists()
    readable(html)


def test_an_invite_used_or_revoked_is_no_longer_offered(browser):
    browser.post(reverse("messaging:invite"), {"label": "Sam"})
    thread = Thread.objects.get()
    invite = thread.invites.get()
    threads.invite_revoke(thread=thread, invite_id=invite.invite_id)
    html = browser.get(reverse("messaging:invited", args=[thread.id, invite.invite_id]))
    html = html.content.decode()
    assert "This invite can no longer be used: it was revoked." in text_of(html)
    assert invite.link not in html
    assert reverse("core:thread_people", args=[thread.id]) in html
    missing = browser.get(reverse("messaging:invited", args=[thread.id, "ab" * 32]))
    assert missing.status_code == 404
