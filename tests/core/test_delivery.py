"""Delivery (issue 15 §6): which of a thread's other member devices hold a row or an op, from the
version vectors they last said, named in words."""

from __future__ import annotations

import re
import time

import pytest

from apps.core.delivery_models import PeerVector
from apps.core.models import Thread
from apps.core.thread.keys import member_key
from apps.core.threads import delivery, services
from apps.core.threads.context import thread_context
from apps.core.threads.database import ThreadDatabase
from tests.core.threads.conftest import OtherNode, admit, exchange, other_node
from tests.replicated_app.models import Note

pytestmark = pytest.mark.django_db(transaction=True)

NOTES = Note._meta.db_table
ANN, BOB = b"\x0a" * 32, b"\x0b" * 32


def test_a_vector_covers_an_op_up_to_its_seq_of_that_device():
    assert delivery.covers({ANN: 3}, (ANN, 3))
    assert delivery.covers({ANN: 4, BOB: 1}, (ANN, 2))
    assert not delivery.covers({ANN: 2}, (ANN, 3))
    assert not delivery.covers({BOB: 9}, (ANN, 1))
    assert not delivery.covers({}, (ANN, 1))


def test_a_device_holds_a_row_when_it_holds_every_write_of_it_or_wrote_it():
    writes = [(ANN, 2), (BOB, 5)]
    assert delivery.holds(b"\x0c" * 32, {ANN: 2, BOB: 5}, writes)
    assert not delivery.holds(b"\x0c" * 32, {ANN: 2, BOB: 4}, writes)  # the later edit not yet
    assert not delivery.holds(b"\x0c" * 32, None, writes)  # never heard
    assert delivery.holds(BOB, {ANN: 2}, writes)  # its own write it holds anyway
    assert not delivery.holds(BOB, {}, writes)


@pytest.fixture
def bob(thread: Thread, tdb: ThreadDatabase, tmp_path) -> OtherNode:
    """Bob, a writer of the thread, with his own node and its copy of the log."""
    node = other_node(tmp_path, thread.thread, "bob")
    admit(tdb, node, "writer")
    services.index_refresh(thread=thread)
    return node


def device(node: OtherNode | ThreadDatabase) -> bytes:
    keys = node.keys if isinstance(node, OtherNode) else node.node
    return bytes(keys.device.verify_key)


def note_here(thread: Thread, title: str) -> Note:
    with thread_context(thread.thread):
        return Note.objects.create(title=title)


def op_of(tdb: ThreadDatabase, note: Note) -> tuple[bytes, int]:
    ((dev, seq),) = (
        tdb.raw()
        .execute("SELECT device, seq FROM sereus_rowevents WHERE pk = ?", (note.id.hex,))
        .fetchall()
    )
    return bytes(dev), seq


def heard(thread: Thread, node: OtherNode, vv: dict[bytes, int]) -> None:
    assert delivery.vectors_save([(thread.thread, device(node), vv)], time.time()) == 1


def test_a_row_is_delivered_once_the_other_device_says_it_holds_its_write(thread, tdb, bob):
    note = note_here(thread, "an offer")
    mine = op_of(tdb, note)
    (holder,) = delivery.row_delivery(thread, NOTES, note.id)
    assert (holder.device, holder.holds, holder.seen_at) == (device(bob), False, None)
    member = bytes(member_key(bob.keys.master_secret, thread.thread).verify_key)
    assert holder.member == member
    assert holder.name.endswith("'s device")
    assert not re.search(r"[0-9a-f]{12}", holder.name)
    assert holder.member_name in holder.name
    assert delivery.delivery_words([holder]) == f"Not yet on {holder.name}"

    heard(thread, bob, {mine[0]: mine[1] - 1})  # a session before the note was written
    (holder,) = delivery.row_delivery(thread, NOTES, note.id.hex)
    assert not holder.holds
    assert holder.seen_at is not None

    heard(thread, bob, {mine[0]: mine[1]})
    (holder,) = delivery.row_delivery(thread, NOTES, str(note.id))
    assert holder.holds
    assert delivery.delivered([holder])
    assert delivery.delivery_words([holder]) == f"Delivered to {holder.name}"
    assert PeerVector.objects.get().vv == {mine[0].hex(): mine[1]}  # written over, not added

    # An edit here is a new write of the row: not delivered until Bob's vector covers it too.
    with thread_context(thread.thread):
        Note.objects.filter(pk=note.pk).update(title="a better offer")
    assert [h.holds for h in delivery.row_delivery(thread, NOTES, note.id)] == [False]
    op_hash = tdb.raw().execute("SELECT hash FROM sereus_ops ORDER BY n DESC").fetchone()[0]
    assert [h.holds for h in delivery.op_delivery(thread, op_hash)] == [False]


def test_the_author_device_holds_its_own_row_and_ops_are_found_by_hash(thread, tdb, bob):
    Note.objects.using(bob.database.alias).create(title="Bob's bid")
    exchange(bob.database, tdb)
    (note,) = Note.objects.using(tdb.alias).all()
    author, seq = op_of(tdb, note)
    assert author == device(bob)
    (holder,) = delivery.row_delivery(thread, NOTES, note.id)
    assert holder.holds
    assert holder.seen_at is None
    op_hash = (
        tdb.raw()
        .execute("SELECT hash FROM sereus_ops WHERE device = ? AND seq = ?", (author, seq))
        .fetchone()[0]
    )
    assert [h.holds for h in delivery.op_delivery(thread, op_hash)] == [True]
    assert delivery.op_delivery(thread, b"\x00" * 32) == []


def test_several_rows_at_once_only_the_members_asked_and_unknown_rows(thread, tdb, bob):
    first, second = note_here(thread, "one"), note_here(thread, "two")
    heard(thread, bob, dict([op_of(tdb, first)]))
    found = delivery.rows_delivery(thread, NOTES, [first.id, second.id.hex, "not a row"])
    assert {pk: [h.holds for h in holders] for pk, holders in found.items()} == {
        first.id.hex: [True],
        second.id.hex: [False],
    }
    assert delivery.row_delivery(thread, NOTES, first.id, members=[b"\x01" * 32]) == []
    assert delivery.row_delivery(thread, "no_such_table", first.id) == []
    assert delivery.delivery_words([]) == "no other device to deliver to"


def test_vectors_of_threads_this_node_does_not_have_are_passed_over(thread, bob):
    assert delivery.vectors_save([(b"\x05" * 32, device(bob), {ANN: 1})]) == 0
    assert delivery.vectors_save([(thread.thread, device(bob), {ANN: 1})]) == 1
    assert PeerVector.objects.get().vv == {ANN.hex(): 1}
