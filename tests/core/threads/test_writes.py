"""This node's own writes and what became of them (issue 9, defect 14): a member removed (or
demoted) while its node was cut off keeps writing, its node accepts every write, and once the
change arrives every replica refuses them; the author's node lists each one as refused, with the
reason and what it said. Two thread databases in this process stand for the two nodes."""

from __future__ import annotations

import os
import time

import pytest

from apps.core.thread.op import KIND_DATA
from apps.core.threads import writes
from apps.core.threads.database import ThreadDatabase
from tests.core.threads.conftest import OtherNode, admit, exchange, other_node
from tests.replicated_app.models import Note

NOTE = "replicated_app_note"


@pytest.fixture
def bob(tdb: ThreadDatabase, tmp_path) -> OtherNode:
    """A writer's node, with a note of its own that both nodes have."""
    bob = other_node(tmp_path, tdb.thread, "bob")
    admit(tdb, bob, "writer")
    Note.objects.using(bob.alias).create(title="Agenda")
    exchange(bob.database, tdb)
    return bob


def _member(node: OtherNode) -> bytes:
    return bytes(node.database.writer().member_key.verify_key)


def test_writes_of_a_member_removed_while_cut_off_are_refused_with_reason_and_contents(tdb, bob):
    agenda = Note.objects.using(bob.alias).get()
    # The owner removes Bob; Bob's node does not hear of it and goes on writing. Each write is
    # accepted by his node (it would be answered with 201).
    tdb.write(lambda writer: writer.remove_member(_member(bob)))
    late = Note.objects.using(bob.alias).create(title="Minutes", body="We agreed on Friday")
    Note.objects.using(bob.alias).filter(pk=agenda.pk).update(title="Agenda (final)")
    Note.objects.using(bob.alias).filter(pk=late.pk).delete()
    before = writes.writes_list(bob.database).writes
    assert [w.state for w in before] == ["accepted"] * 4

    exchange(tdb, bob.database)  # the removal reaches Bob's node

    refused = writes.writes_list(bob.database, state="refused").writes
    assert len(refused) == 3
    assert writes.writes_count(bob.database) == 3
    for write in refused:
        assert write.state == "refused"
        assert write.reason == "the author is not a member where this op stands"
        assert write.refusal == "not_member"
        assert "no longer a member" in write.reason_text
    deleted, updated, inserted = refused  # newest first
    (change,) = inserted.changes
    assert (change.table, change.row, change.action) == (NOTE, late.id.hex, "insert")
    assert change.values["body"] == "We agreed on Friday"
    (change,) = updated.changes
    assert (change.action, change.values) == ("update", {"title": "Agenda (final)"})
    (change,) = deleted.changes
    assert (change.row, change.action, change.values) == (late.id.hex, "delete", {})
    assert writes.write_summary(inserted) == "Added a note"
    # The note Bob wrote before his removal stays accepted, and nothing of the rest took effect.
    (kept,) = writes.writes_list(bob.database, state="accepted").writes
    assert kept.changes[0].values["title"] == "Agenda"
    assert [n.title for n in Note.objects.using(bob.alias).all()] == ["Agenda"]

    # The owner's node refuses them too when they arrive: refused everywhere, never applied.
    results = tdb.ingest(
        raw
        for (raw,) in bob.database.raw().execute(
            "SELECT raw FROM sereus_ops WHERE device = ? AND place = 'log' AND kind = ?",
            (bytes(bob.keys.device.verify_key), KIND_DATA),
        )
    )
    assert sorted(r.status for r in results) == ["duplicate", "refused", "refused", "refused"]
    assert [n.title for n in Note.objects.using(tdb.alias).all()] == ["Agenda"]
    # The owner's node has none of its own refused.
    assert writes.writes_count(tdb) == 0


def test_a_write_concurrent_with_a_demotion_is_refused_for_the_role(tdb, bob):
    tdb.write(lambda writer: writer.set_role(_member(bob), "reader"))
    Note.objects.using(bob.alias).create(title="Written as a writer")
    exchange(tdb, bob.database)
    (write,) = writes.writes_list(bob.database, state="refused").writes
    assert write.refusal == "role"
    assert write.reason.startswith("role reader may not insert")
    assert write.reason_text == writes.REFUSAL_TEXT["role"]


def test_pages_go_newest_first_by_state_and_cursor(tdb):
    for i in range(5):
        Note.objects.using(tdb.alias).create(title=f"note {i}")
    first = writes.writes_list(tdb, limit=2)
    assert [w.changes[0].values["title"] for w in first.writes] == ["note 4", "note 3"]
    second = writes.writes_list(tdb, limit=2, before=first.next)
    assert [w.changes[0].values["title"] for w in second.writes] == ["note 2", "note 1"]
    last = writes.writes_list(tdb, limit=2, before=second.next)
    assert [w.changes[0].values["title"] for w in last.writes] == ["note 0"]
    assert last.next is None
    assert all(w.state == "accepted" for w in first.writes + second.writes + last.writes)
    assert writes.writes_list(tdb, state="refused").writes == []
    assert writes.writes_list(tdb, state="waiting").writes == []
    with pytest.raises(ValueError, match="state must be one of"):
        writes.writes_list(tdb, state="lost")
    found = writes.write_find(tdb, first.writes[0].op)
    assert found == first.writes[0]
    assert writes.write_find(tdb, "00" * 32) is None
    assert writes.write_find(tdb, "not hex") is None


def test_the_write_a_request_made_is_found_by_its_row(tdb):
    head = writes.writes_head(tdb)
    note = Note.objects.using(tdb.alias).create(title="mine")
    Note.objects.using(tdb.alias).create(title="another request's, meanwhile")
    write = writes.write_of_row(tdb, table=NOTE, pk=note.id.hex, after=head)
    assert write is not None
    assert write.changes[0].values["title"] == "mine"
    # A request that wrote nothing (the same id sent again) gets the write that made the row.
    again = writes.write_of_row(tdb, table=NOTE, pk=note.id.hex, after=writes.writes_head(tdb))
    assert again == write
    head = writes.writes_head(tdb)
    Note.objects.using(tdb.alias).filter(pk=note.pk).update(title="edited")
    edit = writes.write_of_row(tdb, table=NOTE, pk=note.id.hex, after=head)
    assert edit.changes[0].action == "update"
    assert writes.write_of_row(tdb, table=NOTE, pk=note.id.hex, after=head, first=True) == edit
    assert writes.write_of_row(tdb, table=NOTE, pk=note.id.hex, after=edit.seq, first=True) == (
        write
    )
    assert writes.write_of_row(tdb, table=NOTE, pk="0" * 32, after=0) is None


def test_another_members_row_is_not_this_nodes_write(tdb, bob):
    theirs = Note.objects.using(tdb.alias).get()
    assert writes.write_of_row(tdb, table=NOTE, pk=theirs.id.hex, after=0, first=True) is None


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        ("the author is not a member where this op stands", "not_member"),
        ("the device is not certified for a member in the op's past", "not_admitted"),
        ("the device equivocated (signed two different ops at one place)", "equivocated"),
        ("epoch 2 is older than epoch 3 it has seen", "old_key"),
        ("no usable key epoch 4 in the op's causal past", "old_key"),
        ("role writer may not update others' rows of messaging_message", "not_owner"),
        ("role reader may not insert own rows of messaging_message", "role"),
        ("messaging_message 'ab12': delete of a missing row", "gone"),
        ("the body does not open with the key of epoch 2", "unreadable"),
        ("data payload: data rows: expected 1 to 10000 row changes", "unreadable"),
        ("its clock stamp is not after the device's previous op", "inconsistent"),
        ("replicated_app_note: unknown columns ['x']", "invalid"),
        ("something the core says in a later version", "other"),
    ],
)
def test_refusals_are_sorted_into_kinds_a_page_can_put_in_words(reason, kind):
    assert writes.refusal_kind(reason) == kind
    assert writes.REFUSAL_TEXT[kind]


def test_finding_refused_writes_stays_cheap_in_a_log_of_100_000_ops(tdb, bob):
    """The refused writes and their count in a thread where this node wrote 100 000 ops. The
    ops are copies of one real op under new slots (the queries read the log's index and decode
    only the page), with one real refusal at the oldest end: the worst case, a whole scan."""
    tdb.write(lambda writer: writer.remove_member(_member(bob)))
    Note.objects.using(bob.alias).create(title="refused")
    exchange(tdb, bob.database)
    database = bob.database
    device = bytes(bob.keys.device.verify_key)
    connection = database.raw()
    (raw,) = connection.execute(
        "SELECT raw FROM sereus_ops WHERE device = ? AND status = 'accepted' AND kind = ?",
        (device, KIND_DATA),
    ).fetchone()
    connection.execute("BEGIN")
    connection.executemany(
        "INSERT INTO sereus_ops(hash, device, seq, kind, raw, place, status) "
        "VALUES (?, ?, ?, ?, ?, 'log', 'accepted')",
        ((os.urandom(32), device, 1000 + i, KIND_DATA, raw) for i in range(100_000)),
    )
    connection.execute("COMMIT")
    writes.writes_count(database)  # the replica catches up with the grown log once
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        page = writes.writes_list(database, state="refused")
        count = writes.writes_count(database)
        newest = writes.writes_list(database, limit=writes.PAGE)
        timings.append(time.perf_counter() - started)
    assert [w.changes[0].values["title"] for w in page.writes] == ["refused"]
    assert count == 1
    assert len(newest.writes) == writes.PAGE
    print(f"refused page + count + newest page, 100 000 own ops: {min(timings) * 1000:.0f} ms")
    # Decoding and opening every op instead would take seconds; a shared, loaded machine takes
    # 0.1-0.25 s for the three.
    assert min(timings) < 1.0
