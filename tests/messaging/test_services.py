"""Conversations through the services, with other nodes of the thread in this process: who wrote
a message comes from the signed op, only its author may change it (on every replica), and bad
input is refused with nothing written."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from apps.core.thread import payloads as p
from apps.core.thread.rowid import row_id_for
from apps.core.threads.database import WriteRefused
from apps.core.threads.services import ThreadServiceError
from apps.messaging import selectors, services
from apps.messaging.models import MAX_TEXT, Message, Profile, Reaction
from tests.core.thread.conftest import forge
from tests.core.threads.conftest import admit, exchange, log_size, other_node

MESSAGE = "messaging_message"


def _page(chat):
    return selectors.messages(chat)


@pytest.fixture
def bob(chat_db, tmp_path):
    """Another member's node (a writer) that has the whole log and told its name."""
    bob = other_node(tmp_path, chat_db.thread, "bob")
    admit(chat_db, bob, "writer")
    bob.database.write(lambda writer: writer.set_name("Bob"))
    exchange(bob.database, chat_db)
    return bob


def test_a_message_sent_is_listed_newest_first_as_mine(chat):
    first = services.message_send(thread=chat, text="first")
    second = services.message_send(thread=chat, text="*second*", reply_to=first.id.hex)
    page = _page(chat)
    assert [m.id for m in page] == [second.id.hex, first.id.hex]
    newest = page[0]
    assert newest.mine
    assert newest.author == chat.member_id
    assert newest.author_name == "Alice"
    assert newest.html == "<p><em>second</em></p>\n"
    assert newest.reply_to == first.id.hex
    assert abs((datetime.now(UTC) - newest.created_at).total_seconds()) < 60
    assert newest.edited_at is None


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "invalid"),
        ("   \n ", "invalid"),
        ("x" * (MAX_TEXT + 1), "invalid"),
        ("a\x00b", "invalid"),
    ],
)
def test_bad_text_is_refused_and_nothing_is_written(chat, chat_db, text, code):
    before = log_size(chat_db)
    with pytest.raises(ThreadServiceError) as refused:
        services.message_send(thread=chat, text=text)
    assert refused.value.code == code
    assert log_size(chat_db) == before


def test_a_reply_to_a_message_that_is_not_there_is_refused(chat, chat_db):
    before = log_size(chat_db)
    with pytest.raises(ThreadServiceError, match="no such message") as refused:
        services.message_send(thread=chat, text="hm", reply_to=uuid.uuid4().hex)
    assert refused.value.code == "not_found"
    with pytest.raises(ThreadServiceError, match="not a UUID"):
        services.message_send(thread=chat, text="hm", reply_to="nope")
    assert log_size(chat_db) == before


def test_a_client_chosen_id_sent_twice_posts_once(chat, chat_db):
    chosen = uuid.uuid4()
    first = services.message_send(thread=chat, text="queued offline", id=chosen)
    size = log_size(chat_db)
    again = services.message_send(thread=chat, text="queued offline", id=chosen)
    # The client's id seeds the row's id, which names its author (rowid): the same each time.
    assert again.id == first.id == row_id_for(bytes.fromhex(chat.member_id), chosen.bytes)
    assert log_size(chat_db) == size
    assert [m.id for m in _page(chat)] == [first.id.hex]


def test_editing_ones_own_message_keeps_its_place_and_marks_it_edited(chat, chat_db):
    message = services.message_send(thread=chat, text="helo")
    services.message_send(thread=chat, text="later")
    services.message_edit(thread=chat, message_id=message.id.hex, text="hello")
    page = _page(chat)
    assert [m.text for m in page] == ["later", "hello"]
    assert page[1].edited_at is not None
    assert page[1].edited_at >= page[1].created_at
    size = log_size(chat_db)
    services.message_edit(thread=chat, message_id=message.id.hex, text="hello")
    assert log_size(chat_db) == size  # nothing changed: no op


def test_messages_from_another_member_show_their_name_and_are_not_mine(chat, chat_db, bob):
    Message.objects.using(bob.alias).create(text="hi Alice")
    exchange(bob.database, chat_db)
    (message,) = _page(chat)
    assert message.text == "hi Alice"
    assert message.author_name == "Bob"
    assert not message.mine


def test_nobody_changes_another_members_message_here_or_on_any_replica(chat, chat_db, bob):
    Message.objects.using(bob.alias).create(text="Bob's words")
    exchange(bob.database, chat_db)
    (message,) = _page(chat)
    for change in (services.message_edit, services.message_delete):
        kwargs = {"text": "Alice's words"} if change is services.message_edit else {}
        with pytest.raises(ThreadServiceError, match="only change your own") as refused:
            change(thread=chat, message_id=message.id, **kwargs)
        assert refused.value.code == "forbidden"
    # Past the service, the thread's own rule refuses the write on this node...
    with pytest.raises(WriteRefused, match="may not update"):
        Message.objects.using(chat_db.alias).filter(pk=message.id).update(text="defaced")
    # ...and an op forged by a certified device that skips its own checks is refused by others.
    services.message_send(thread=chat, text="Alice's words")
    exchange(chat_db, bob.database)
    mine = next(m for m in _page(chat) if m.mine)
    writer = bob.database.writer()
    change = p.RowChange(MESSAGE, mine.id, p.UPSERT, {"text": "defaced by Bob"})
    forged = forge(writer, kind="data", payload=p.data_doc([change]))
    (result,) = chat_db.ingest([forged.raw])
    assert result.status == "refused"
    assert "may not update" in result.reason
    assert {m.text for m in _page(chat)} == {"Bob's words", "Alice's words"}


def test_a_reader_reads_but_cannot_post(chat, chat_db, tmp_path):
    carol = other_node(tmp_path, chat_db.thread, "carol")
    admit(chat_db, carol, "reader")
    with pytest.raises(WriteRefused, match="reader may not insert"):
        Message.objects.using(carol.alias).create(text="let me in")
    carol.database.write(lambda writer: writer.set_name("Carol"))  # saying who one is is allowed


def test_deleting_ones_own_message_removes_it_everywhere(chat, chat_db, bob):
    message = services.message_send(thread=chat, text="oops")
    exchange(chat_db, bob.database)
    assert Message.objects.using(bob.alias).filter(pk=message.id).exists()
    services.message_delete(thread=chat, message_id=message.id)
    exchange(chat_db, bob.database)
    assert _page(chat) == []
    assert not Message.objects.using(bob.alias).filter(pk=message.id).exists()


def test_a_reaction_toggles_and_counts_one_per_member(chat, chat_db, bob):
    message = services.message_send(thread=chat, text="lunch?")
    exchange(chat_db, bob.database)
    assert services.reaction_toggle(thread=chat, message_id=message.id, emoji="👍") is True
    Reaction.objects.using(bob.alias).create(message=message.id, emoji="👍")
    Reaction.objects.using(bob.alias).create(message=message.id, emoji="👍")  # twice: one vote
    exchange(bob.database, chat_db)
    (reaction,) = _page(chat)[0].reactions
    assert (reaction.emoji, reaction.count, reaction.mine) == ("👍", 2, True)
    assert services.reaction_toggle(thread=chat, message_id=message.id, emoji="👍") is False
    (reaction,) = _page(chat)[0].reactions
    assert (reaction.count, reaction.mine) == (1, False)
    with pytest.raises(ThreadServiceError, match="a reaction is one of"):
        services.reaction_toggle(thread=chat, message_id=message.id, emoji="<b>")


def test_ones_name_in_a_conversation_is_ones_name_in_its_thread(chat, chat_db, bob):
    services.profile_set(thread=chat, name="Alice B.")
    assert selectors.member_names(chat)[chat.member_id] == "Alice B."
    exchange(chat_db, bob.database)
    names = bob.database.replica().control.state.names
    assert names[bytes.fromhex(chat.member_id)] == "Alice B."
    assert not Profile.objects.using(chat_db.alias).exists()  # the old table is not written
    with pytest.raises(ThreadServiceError, match="1 to 80"):
        services.profile_set(thread=chat, name=" ")


def test_pages_follow_the_cursor_without_gaps_or_repeats(chat):
    sent = [services.message_send(thread=chat, text=f"m{i}").id.hex for i in range(7)]
    first = selectors.messages(chat, limit=3)
    second = selectors.messages(chat, before=first[-1].cursor, limit=3)
    third = selectors.messages(chat, before=second[-1].cursor, limit=3)
    seen = [m.id for m in first + second + third]
    assert seen == list(reversed(sent))
