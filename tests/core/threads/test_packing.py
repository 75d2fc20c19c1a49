"""A transaction's rows into ops: ids bound to their author at insert, ops cut within their byte
budget, and a new row whose id names someone else refused in plain words."""

from __future__ import annotations

import gc
import uuid

import pytest
from django.db import transaction

from apps.core.thread import codec, rowid
from apps.core.thread import payloads as p
from apps.core.threads import packing
from apps.core.threads.database import GC_PAUSE_ROWS
from apps.core.threads.errors import WriteRefused
from tests.core.threads.conftest import log_since, log_size
from tests.replicated_app.models import Note

pytestmark = pytest.mark.django_db(transaction=True)


def test_bulk_create_outside_a_thread_context_binds_every_id_to_this_node(thread, tdb):
    """``.using(alias)`` with no current thread: the model's default ids are provisional, and
    the insert binds each one (on the object too) to this node's member of the thread."""
    mine = rowid.member_tag(tdb.member_public())
    own = rowid.row_id_for(tdb.member_public(), b"chosen")
    notes = [Note(title=f"n{i}") for i in range(3)] + [Note(id=own, title="chosen")]
    assert all(getattr(note.id, "provisional", False) for note in notes[:3])
    before = log_size(tdb)
    with transaction.atomic(using=tdb.alias):
        Note.objects.using(tdb.alias).bulk_create(notes)
    ((op, changes),) = log_since(tdb, before)
    assert tdb.replica().decision(op.hash).status == "accepted"
    assert notes[3].id == own
    assert all(rowid.row_tag(note.id.hex) == mine for note in notes)
    assert [c.pk for c in changes] == [note.id.hex for note in notes]
    stored = set(Note.objects.using(tdb.alias).values_list("id", flat=True))
    assert stored == {note.id for note in notes}


def test_a_new_row_with_another_members_id_is_refused_in_words(thread, tdb):
    other = rowid.row_id_for(b"\x07" * 32, b"not mine")
    with pytest.raises(WriteRefused, match="a new row's id must name its author"):
        Note.objects.using(tdb.alias).create(id=other, title="theirs")
    assert not Note.objects.using(tdb.alias).exists()


VALUES = [
    "",
    "plain",
    "é" * 50,
    "𝄞" * 40,  # 4 bytes a character in UTF-8
    b"",
    b"\xff" * 300,
    0,
    -1,
    2**63 - 1,
    -(2**63),
    2**64 - 1,
    1.5,
    -0.1,
    float("1e300"),
    True,
    False,
    None,
]


@pytest.mark.parametrize("pk", ["a" * 32, 7, 2**63 - 1, b"\x01" * 16])
def test_the_size_estimate_is_never_below_the_encoded_size(pk):
    """``chunks`` keeps an op within its byte budget by these estimates, without encoding."""
    cols = {f"column_{i}_{'x' * i}": value for i, value in enumerate(VALUES)}
    for change in [
        p.RowChange("replicated_app_note", pk, p.UPSERT, cols),
        p.RowChange("t", pk, p.UPSERT, {"c": "x"}),
        p.RowChange("t", pk, p.UPSERT, {f"c{i}": -(2**63) for i in range(40)}),
        p.RowChange("t", pk, p.UPSERT, {f"c{i}": 1e300 for i in range(40)}),
        p.RowChange("replicated_app_note", pk, p.DELETE, {}),
        *(p.RowChange("n", pk, p.UPSERT, {name: value}) for name, value in cols.items()),
    ]:
        encoded = codec.encode(p.data_doc([change])["rows"][0])
        assert packing._size_estimate(change) >= len(encoded), change


def test_chunks_cut_at_the_byte_budget(monkeypatch):
    changes = [
        p.RowChange("replicated_app_note", uuid.uuid4().hex, p.UPSERT, {"title": "é" * 100})
        for _ in range(50)
    ]
    monkeypatch.setattr(packing, "BYTES_PER_OP", 2_000)
    chunks = list(packing.chunks(changes))
    assert len(chunks) > 1
    assert [c for chunk in chunks for c in chunk] == changes
    for chunk in chunks:
        assert len(codec.encode(p.data_doc(chunk))) <= 2_000


def test_a_big_transaction_leaves_the_collector_on_written_or_refused(thread, tdb):
    """A large transaction is packed with the cyclic collector paused: it must be on again
    afterwards, also when the write is refused half-way."""
    assert gc.isenabled()
    rows = GC_PAUSE_ROWS + 10
    with transaction.atomic(using=tdb.alias):
        Note.objects.using(tdb.alias).bulk_create([Note(title=f"n{i}") for i in range(rows)])
    assert gc.isenabled()
    assert Note.objects.using(tdb.alias).count() == rows

    other = rowid.row_id_for(b"\x07" * 32, b"not mine")
    notes = [Note(title=f"m{i}") for i in range(rows)] + [Note(id=other, title="theirs")]
    with pytest.raises(WriteRefused), transaction.atomic(using=tdb.alias):
        Note.objects.using(tdb.alias).bulk_create(notes)
    assert gc.isenabled()
    assert Note.objects.using(tdb.alias).count() == rows
