"""What a local write transaction asks of SQLite: each statement is a cost on every commit, so
the ones a commit needs are pinned down here (the durability tests say the result is right)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import transaction

from apps.core.thread.store import Decision
from apps.core.threads import writes
from apps.core.threads.context import thread_context
from apps.core.threads.registry import thread_alias
from tests.replicated_app.models import Note

pytestmark = pytest.mark.django_db(transaction=True)


@contextmanager
def statements(tdb) -> Iterator[list[str]]:
    seen: list[str] = []
    connection = tdb.raw()
    connection.set_trace_callback(seen.append)
    try:
        yield seen
    finally:
        connection.set_trace_callback(None)


def test_a_single_row_write_admits_its_op_with_its_decision(thread, tdb):
    with thread_context(thread.thread):
        Note.objects.create(title="warm up")
        with statements(tdb) as seen:
            Note.objects.create(title="one")
    ops = [s for s in seen if "sereus_ops" in s and not s.startswith("SELECT")]
    assert len(ops) == 1, ops
    assert ops[0].startswith("INSERT INTO sereus_ops")  # decided in the same statement
    # The capture is kept in the connection's memory: no table is written and emptied.
    assert not [s for s in seen if "sereus_pending" in s]
    assert tdb.rebuild_check().matches


def test_a_transaction_that_wrote_nothing_does_not_look_for_changes(thread, tdb):
    with thread_context(thread.thread):
        Note.objects.create(title="one")
        with statements(tdb) as seen, transaction.atomic(using=thread_alias(thread.thread)):
            list(Note.objects.all())
    assert not [s for s in seen if "sereus_pending" in s]
    assert not tdb.wrapper.pending


def test_changes_captured_in_a_rolled_back_savepoint_pack_nothing(thread, tdb):
    alias = thread_alias(thread.thread)
    with thread_context(thread.thread):
        before = tdb.replica().store.log_size()
        with transaction.atomic(using=alias):
            try:
                with transaction.atomic(using=alias):
                    Note.objects.create(title="undone")
                    raise RuntimeError
            except RuntimeError:
                pass
        assert tdb.replica().store.log_size() == before
        Note.objects.create(title="kept")
        assert list(Note.objects.values_list("title", flat=True)) == ["kept"]
    assert tdb.rebuild_check().matches


def test_a_savepoint_rolled_back_drops_only_its_own_captured_changes(thread, tdb):
    """The capture is in memory: a rolled-back savepoint takes back its notes (an update and a
    delete here), and what came before and after it is packed, a delete with its values."""
    alias = thread_alias(thread.thread)
    with thread_context(thread.thread):
        kept, gone = Note.objects.create(title="kept"), Note.objects.create(title="gone")
        with transaction.atomic(using=alias):
            Note.objects.filter(pk=kept.pk).update(title="kept, edited")
            try:
                with transaction.atomic(using=alias):
                    Note.objects.filter(pk=kept.pk).update(stars=5)
                    Note.objects.filter(pk=gone.pk).delete()
                    raise RuntimeError
            except RuntimeError:
                pass
            Note.objects.filter(pk=gone.pk).delete()
    (newest,) = writes.writes_list(tdb, limit=1).writes
    changes = {(c.row, c.action): c.values for c in newest.changes}
    assert changes == {
        (kept.pk.hex, "update"): {"title": "kept, edited"},
        (gone.pk.hex, "delete"): {},
    }
    assert not tdb.wrapper.pending
    assert tdb.rebuild_check().matches


def test_the_same_decision_is_not_written_again(thread, tdb):
    with thread_context(thread.thread):
        Note.objects.create(title="one")
    replica = tdb.replica()
    op = next(iter(replica.store.admitted(data_only=True)))
    decision = replica.store.decision(op.hash)
    alias = thread_alias(thread.thread)
    with transaction.atomic(using=alias), statements(tdb) as seen:
        replica.store.decide(op, decision, None)
        replica.store.decide(op, Decision("refused", "test"), None)
        transaction.set_rollback(True, using=alias)  # a test of the statements only
    updates = [s for s in seen if s.startswith("UPDATE sereus_ops")]
    assert len(updates) == 1, updates
    assert "'refused'" in updates[0]
