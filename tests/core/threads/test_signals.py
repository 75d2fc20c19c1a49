"""``ops_written`` fires once per committed transaction that added ops, never for a rollback or
for ops this node already had: it is what the p2p layer pushes on and the live UI listens to."""

from __future__ import annotations

import pytest
from django.db import transaction

from apps.core.threads.context import thread_context
from apps.core.threads.registry import thread_alias
from apps.core.threads.signals import ops_written
from tests.core.threads.conftest import exchange, other_node
from tests.replicated_app.models import Note

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def announced():
    seen: list[tuple[bytes, str]] = []

    def receiver(sender, thread, alias, **kwargs):
        seen.append((thread, alias))

    ops_written.connect(receiver)
    yield seen
    ops_written.disconnect(receiver)


def test_a_write_is_announced_after_commit(thread, tdb, announced):
    with thread_context(thread.thread):
        Note.objects.create(title="one")
        assert announced == [(thread.thread, thread_alias(thread.thread))]

        announced.clear()
        with transaction.atomic(using=thread_alias(thread.thread)):
            Note.objects.create(title="two")
            Note.objects.create(title="three")
            assert announced == []  # not before the commit
        assert len(announced) == 1


def test_a_rollback_or_a_read_is_not_announced(thread, tdb, announced):
    with thread_context(thread.thread):

        def doomed() -> None:
            with transaction.atomic(using=thread_alias(thread.thread)):
                Note.objects.create(title="never")
                raise RuntimeError

        with pytest.raises(RuntimeError):
            doomed()
        list(Note.objects.all())
        Note.objects.filter(title="nothing matches").update(title="x")
    assert announced == []
    with thread_context(thread.thread):
        Note.objects.create(title="after")
    assert len(announced) == 1  # a rolled back transaction leaves nothing behind to announce


def test_received_ops_are_announced_once(tmp_path, thread, tdb, announced):
    other = other_node(tmp_path, thread.thread, "copy")
    exchange(tdb, other.database)
    announced.clear()
    with thread_context(thread.thread):
        Note.objects.create(title="from here")
    announced.clear()
    exchange(tdb, other.database)
    assert [a for _t, a in announced] == [other.database.alias]
    announced.clear()
    exchange(tdb, other.database)  # nothing new
    assert announced == []


def test_the_signal_carries_the_state_of_the_thread_as_written(tmp_path, thread, tdb):
    """``state``: the writer's resolved control state (what receivers ask: the app), with no
    query; after a rollback, none (the process's copy is not trusted until read again)."""
    states: list[object] = []

    def receiver(sender, thread, alias, state=None, **kwargs):
        states.append(state)

    ops_written.connect(receiver)
    try:
        with thread_context(thread.thread):
            Note.objects.create(title="one")
        assert states[-1] is tdb.replica().control.state
        assert states[-1].app == tdb.replica().control.state.app
        tdb.invalidate()
        assert tdb.state_known() is None
        other = other_node(tmp_path, thread.thread, "copy")
        exchange(tdb, other.database)
        assert states[-1] is other.database.replica().control.state
    finally:
        ops_written.disconnect(receiver)
