"""A thread with ordered tables decides its data again after its replica reloads (a restart, a
rollback). That rebuild rewrites the app tables from the log; it must not be taken for this
node's own writes. It once was, when it ran inside a local write: the rebuilt rows of other
members were left pending and the node's next write carried them, refused as "may not update
others' rows" (seen as an intermittent 403 on adding a checklist item)."""

from __future__ import annotations

import pytest

from apps.checklist.models import Item
from apps.core.threads.registry import thread_database
from apps.messaging.models import Message
from apps.messaging.services import message_send
from tests.checklist.support import carols_checklist

pytestmark = pytest.mark.django_db(transaction=True)


def _pending(database) -> int:
    return database.raw().execute("SELECT count(*) FROM sereus_pending").fetchone()[0]


@pytest.mark.usefixtures("node")
def test_a_reload_inside_a_local_write_leaves_nothing_pending(tmp_path) -> None:
    carol = carols_checklist(tmp_path)
    Item.objects.using(carol.alias).create(text="Carol's item")
    carol.send()
    database = thread_database(carol.thread.thread)
    alias = database.alias

    for round_ in range(3):
        database.invalidate()  # as after a rollback: the next write reloads and redecides
        message_send(thread=carol.thread, text=f"message {round_} after a reload")
        assert _pending(database) == 0
    # Every write went through, and the other members' rows are as they wrote them.
    texts = set(Message.objects.using(alias).values_list("text", flat=True))
    assert {"Welcome to the book club!", "message 2 after a reload"} <= texts
    assert Item.objects.using(alias).get(text="Carol's item")
