"""Two nodes' thread databases in one process, exchanging ops by hand: same tables in the end,
whatever the order and the duplicates; the log alone rebuilds them; refused ops change nothing."""

from __future__ import annotations

import os
import random
import uuid

import pytest
from django.db import connections, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.core.thread import payloads as p
from apps.core.threads.database import WriteRefused
from tests.core.thread.conftest import forge
from tests.core.threads.conftest import admit, dump, new_thread, other_node
from tests.replicated_app.models import Comment, Note

pytestmark = pytest.mark.django_db(transaction=True)

NOTE = "replicated_app_note"


def _log(database) -> list[bytes]:
    return [
        raw
        for (raw,) in database.raw().execute(
            "SELECT raw FROM sereus_ops WHERE place = 'log' ORDER BY n"
        )
    ]


def _deliver(source, target, rng: random.Random) -> None:
    """Everything ``source`` has, in a random order, in random batches, some twice."""
    raws = _log(source)
    raws += rng.sample(raws, k=len(raws) // 4)
    rng.shuffle(raws)
    while raws:
        size = rng.randint(1, 8)
        target.ingest(raws[:size])
        raws = raws[size:]


class Actor:
    """One node writing through the ORM on its own alias."""

    def __init__(self, alias: str, rng: random.Random) -> None:
        self.alias, self.rng = alias, rng

    def notes(self) -> list[Note]:
        return list(Note.objects.using(self.alias).order_by("id"))

    def act(self) -> None:
        rng, alias = self.rng, self.alias
        notes = self.notes()
        roll = rng.random()
        try:
            if roll < 0.35 or not notes:
                Note.objects.using(alias).create(
                    id=uuid.UUID(int=rng.getrandbits(128)), title=f"t{rng.randrange(99)}"
                )
            elif roll < 0.55:
                note = rng.choice(notes)
                note.title = f"e{rng.randrange(99)}"
                note.save(using=alias, update_fields=["title"])
            elif roll < 0.65:
                Note.objects.using(alias).filter(pk=rng.choice(notes).pk).update(
                    stars=rng.randrange(5), pinned=rng.random() < 0.5
                )
            elif roll < 0.75:
                rng.choice(notes).delete(using=alias)
            elif roll < 0.88:
                with transaction.atomic(using=alias):
                    note = rng.choice(notes)
                    for i in range(rng.randint(1, 3)):
                        Comment.objects.using(alias).create(
                            id=uuid.UUID(int=rng.getrandbits(128)), note=note, text=f"c{i}"
                        )
            else:
                Note.objects.using(alias).bulk_create(
                    [
                        Note(id=uuid.UUID(int=rng.getrandbits(128)), title=f"b{i}")
                        for i in range(rng.randint(2, 4))
                    ]
                )
        except WriteRefused:
            pass  # a writer editing another member's row: refused, rolled back, nothing kept


def two_writers(tmp_path_factory, folder_name: str, rng: random.Random):
    """A's thread with B admitted as a writer or an admin, and an actor on each; returns the
    folder, the run's name suffix, A, B and the actors."""
    # One folder for every example: the thread-schema template is built once, as on a node.
    folder = tmp_path_factory.getbasetemp() / folder_name
    folder.mkdir(exist_ok=True)
    run = uuid.uuid4().hex[:8]
    a = new_thread(folder, f"a{run}")
    b = other_node(folder, a.database.thread, f"b{run}")
    admit(a.database, b, rng.choice(["writer", "admin"]))
    return folder, run, a, b, [Actor(a.alias, rng), Actor(b.alias, rng)]


@settings(
    max_examples=int(os.environ.get("HYPOTHESIS_MAX", 200)),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(seed=st.integers(0, 2**32 - 1), rounds=st.integers(1, 3), steps=st.integers(1, 6))
def test_two_nodes_end_with_identical_tables(
    thread_databases_allowed, tmp_path_factory, seed, rounds, steps
):
    rng = random.Random(seed)
    _folder, _run, a, b, actors = two_writers(tmp_path_factory, "two-nodes", rng)
    for _ in range(rounds):
        for _ in range(steps):
            rng.choice(actors).act()
        _deliver(a.database, b.database, rng)
        _deliver(b.database, a.database, rng)
    for table in (NOTE, "replicated_app_comment"):
        assert dump(a.alias, table) == dump(b.alias, table)
    for database in (a.database, b.database):
        report = database.rebuild_check()
        assert report.matches, report.differences
    for node in (a, b):
        connections[node.alias].close()


def test_a_refused_op_changes_no_row(tdb, tmp_path):
    """A reader's device signs a valid insert and an edit of the owner's note: every row stays
    as it was, and the ops are kept in the log as refused."""
    reader = other_node(tmp_path, tdb.thread, "reader")
    admit(tdb, reader, "reader")
    owner_note = Note.objects.using(tdb.alias).create(title="owner's")
    before = dump(tdb.alias, NOTE)

    writer = reader.database.writer()
    hostile = [
        forge(
            writer,
            kind="data",
            payload=p.data_doc(
                [
                    p.RowChange(
                        NOTE,
                        uuid.uuid4().hex,
                        p.UPSERT,
                        {
                            "title": "reader's",
                            "body": "",
                            "pinned": 0,
                            "stars": 0,
                            "created": "2026-01-01 00:00:00",
                        },
                    )
                ]
            ),
        ),
    ]
    writer.replica.ingest_op(hostile[0])  # its own chain, as a hostile node would keep it
    hostile.append(
        forge(
            writer,
            kind="data",
            payload=p.data_doc(
                [p.RowChange(NOTE, owner_note.id.hex, p.UPSERT, {"title": "defaced"})]
            ),
        )
    )
    results = tdb.ingest([op.raw for op in hostile])
    assert [r.status for r in results] == ["refused", "refused"]
    assert all("reader may not" in r.reason for r in results)
    assert dump(tdb.alias, NOTE) == before
    assert tdb.rebuild_check().matches


def test_local_write_the_policy_refuses_rolls_back(tdb, tmp_path):
    reader = other_node(tmp_path, tdb.thread, "reader2")
    admit(tdb, reader, "reader")
    with pytest.raises(WriteRefused, match="reader may not insert"):
        Note.objects.using(reader.alias).create(title="not allowed")
    assert dump(reader.alias, NOTE) == []
    log = _log(reader.database)
    # Nothing of the refused write was kept: the reader's own log has no op of its device.
    device = bytes(reader.keys.device.verify_key)
    assert all(
        row[0] != device for row in reader.database.raw().execute("SELECT device FROM sereus_ops")
    )
    assert len(log) == len(_log(tdb))
