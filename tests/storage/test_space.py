"""The storage thread: made once per party on first use, with the control thread it needs, and
written only through one transaction per op."""

from __future__ import annotations

import time

import pytest

from apps.cadre.control import control_thread
from apps.storage import space
from apps.storage.models import Retention, Snapshot

pytestmark = pytest.mark.django_db(transaction=True)


def test_storage_thread_is_made_once_with_the_control_thread(node) -> None:
    assert space.storage_thread() is None
    thread = space.storage_ensure()
    assert control_thread() is not None  # the standby key is certified there: the phrase restores
    assert space.storage_ensure().pk == thread.pk
    assert space.storage_thread().pk == thread.pk


def test_rows_are_written_in_the_storage_thread(node) -> None:
    thread = space.storage_ensure()

    def add() -> Snapshot:
        Retention.objects.create(keep_last=3)
        return Snapshot.objects.create(
            source="/home/alice", device="aa" * 32, started_ms=int(time.time() * 1000)
        )

    made = space.write(thread, add)
    found = Snapshot.objects.using(space.using(thread)).get(pk=made.pk)
    assert found.source == "/home/alice"
    assert Retention.objects.using(space.using(thread)).get().keep_last == 3
