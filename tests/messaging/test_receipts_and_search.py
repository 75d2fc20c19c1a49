"""Read receipts (each member moves only their own, forward only; forged ones are refused),
unread counts on the conversation list and the dashboard, and full-text search."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from apps.core import services as node_services
from apps.core.thread import payloads as p
from apps.core.threads.database import WriteRefused
from apps.core.threads.names import fallback_name
from apps.core.threads.registry import thread_database
from apps.core.threads.services import ThreadServiceError
from apps.messaging import selectors, services, shown
from apps.messaging.models import Message, Receipt
from tests.core.thread.conftest import forge
from tests.core.threads.conftest import exchange, log_size


def _bob_says(bob, chat, text: str) -> None:
    Message.objects.using(bob.alias).create(text=text)
    exchange(bob.database, thread_database(chat.thread))


def test_unread_counts_others_messages_past_ones_receipt(chat, bob):
    services.message_send(thread=chat, text="mine do not count")
    assert selectors.unread(chat) == 0
    _bob_says(bob, chat, "one")
    _bob_says(bob, chat, "two")
    assert selectors.unread(chat) == 2
    assert services.conversation_read(thread=chat) is True
    assert selectors.unread(chat) == 0
    assert services.conversation_read(thread=chat) is False  # nothing new: no op
    _bob_says(bob, chat, "three")
    assert selectors.unread(chat) == 1


def test_receipts_only_move_forward_and_bad_cursors_are_refused(chat):
    services.message_send(thread=chat, text="a")
    services.message_send(thread=chat, text="b")
    newest, oldest = selectors.messages(chat)
    assert services.receipt_mark(thread=chat, up_to=newest.cursor) is True
    size = log_size(thread_database(chat.thread))
    assert services.receipt_mark(thread=chat, up_to=oldest.cursor) is False
    assert log_size(thread_database(chat.thread)) == size
    for bad in ("", "zz", "<script>", "0" * 200):
        with pytest.raises(ThreadServiceError, match="not a message cursor"):
            services.receipt_mark(thread=chat, up_to=bad)


def test_my_message_shows_who_read_it(chat, bob):
    message = services.message_send(thread=chat, text="seen?")
    exchange(thread_database(chat.thread), bob.database)
    (view,) = selectors.messages(chat)
    assert view.read_by == []
    Receipt.objects.using(bob.alias).create(read_up_to=view.cursor)
    exchange(bob.database, thread_database(chat.thread))
    (view,) = selectors.messages(chat)
    assert view.id == message.id.hex
    # Bob has no name yet: two words of his key, never the key itself.
    assert view.read_by == [fallback_name(bob.database.writer().member)]
    assert view.read_by[0] != "you"


def test_a_forged_receipt_cannot_speak_for_another_member(chat, bob):
    _bob_says(bob, chat, "hello")
    services.conversation_read(thread=chat)
    alices = selectors.receipts(chat)[chat.member_id]
    exchange(thread_database(chat.thread), bob.database)
    (row,) = Receipt.objects.using(bob.alias).all()
    # Bob's node refuses to move Alice's receipt...
    with pytest.raises(WriteRefused, match="may not update"):
        Receipt.objects.using(bob.alias).filter(pk=row.pk).update(read_up_to="0" * 88)
    # A receipt row Bob writes with garbage in it is his own, and counts as nothing read.
    bobs = bob.database.writer().member.hex()
    garbage = Receipt.objects.using(bob.alias).create(read_up_to="not a cursor")
    exchange(bob.database, thread_database(chat.thread))
    assert bobs not in selectors.receipts(chat)
    Receipt.objects.using(bob.alias).filter(pk=garbage.pk).update(read_up_to=alices)
    exchange(bob.database, thread_database(chat.thread))
    assert selectors.receipts(chat)[bobs] == alices
    # An op forged past Bob's own check (a node that skips it) is refused by Alice's node.
    change = p.RowChange("messaging_receipt", row.pk.hex, p.UPSERT, {"read_up_to": "0" * 88})
    forged = forge(bob.database.writer(), kind="data", payload=p.data_doc([change]))
    (result,) = thread_database(chat.thread).ingest([forged.raw])
    assert result.status == "refused"
    assert selectors.receipts(chat)[chat.member_id] == alices


def test_search_finds_words_and_prefixes_and_follows_edits_and_deletes(chat, bob):
    first = services.message_send(thread=chat, text="Dinner at the harbour on Friday")
    services.message_send(thread=chat, text="Bring the **tickets**")
    _bob_says(bob, chat, "Harbourside parking is full")
    assert [m.text for m in selectors.search(chat, "harbour friday")] == [
        "Dinner at the harbour on Friday"
    ]
    assert len(selectors.search(chat, "harb")) == 2  # the last word is a prefix
    assert [m.text for m in selectors.search(chat, "tickets")] == ["Bring the **tickets**"]
    services.message_edit(thread=chat, message_id=first.id, text="Lunch in town")
    assert selectors.search(chat, "dinner") == []
    assert [m.id for m in selectors.search(chat, "lunch")] == [first.id.hex]
    services.message_delete(thread=chat, message_id=first.id)
    assert selectors.search(chat, "lunch") == []


@pytest.mark.parametrize(
    "query", ['"', "AND OR NOT", "*", "a:b", "(", "NEAR(x y)", "", "   ", "😀"]
)
def test_search_takes_any_text_without_query_syntax_errors(chat, query):
    services.message_send(thread=chat, text="and or not near")
    assert isinstance(selectors.search(chat, query), list)


@pytest.mark.django_db(transaction=True)
def test_unread_badges_on_the_list_and_the_dashboard_clear_when_read(chat, bob):
    user = node_services.owner_claim(
        token=node_services.claim_token_issue(), username="alice", password="pw " * 6
    ).user
    browser = Client()
    browser.force_login(user)
    _bob_says(bob, chat, "psst")
    badge = '<span class="badge">1<span class="visually-hidden"> unread message</span>'
    assert badge in browser.get(reverse("messaging:list")).content.decode()
    dashboard = browser.get(reverse("core:dashboard")).content.decode()
    assert "1 unread message<" in dashboard  # Home says it in words
    assert reverse("messaging:conversation", args=[chat.id]) in dashboard
    assert browser.get(reverse("messaging:conversation", args=[chat.id])).status_code == 200
    assert "unread message" not in browser.get(reverse("core:dashboard")).content.decode()
    assert 'class="badge"' not in browser.get(reverse("messaging:list")).content.decode()
    page = browser.get(reverse("messaging:conversation", args=[chat.id]), {"q": "psst"})
    assert "1 message matching" in page.content.decode()
    assert "ws-connect" not in page.content.decode()  # a search is not replaced live
    api = f"/api/v1/threads/{chat.id}/"
    assert [m["text"] for m in browser.get(api + "messages/", {"q": "ps"}).json()] == ["psst"]
    newest = browser.get(api + "messages/").json()[0]["cursor"]
    put = browser.put(api + "receipt/", {"up_to": newest}, content_type="application/json")
    assert put.json() == {"written": False, "write": None}  # the page view already read it
    bad = browser.put(api + "receipt/", {"up_to": "nope"}, content_type="application/json")
    assert bad.status_code == 400


def test_a_readers_name_shows_once_at_the_newest_of_my_messages_they_read(chat, bob):
    services.message_send(thread=chat, text="first")
    services.message_send(thread=chat, text="second")
    exchange(thread_database(chat.thread), bob.database)
    newest, oldest = selectors.messages(chat)
    bob_name = fallback_name(bob.database.writer().member)

    def marks() -> dict[str, list[str]]:
        page = list(reversed(selectors.messages(chat)))  # oldest first, as the page shows them
        shown.annotate(chat, page)
        return {view.text: view.read_here for view in page}

    assert marks() == {"first": [], "second": []}
    Receipt.objects.using(bob.alias).create(read_up_to=oldest.cursor)
    exchange(bob.database, thread_database(chat.thread))
    assert marks() == {"first": [bob_name], "second": []}
    Receipt.objects.using(bob.alias).update(read_up_to=newest.cursor)
    exchange(bob.database, thread_database(chat.thread))
    # Both are read by Bob: his name moves to the newest, not under each message.
    assert marks() == {"first": [], "second": [bob_name]}
