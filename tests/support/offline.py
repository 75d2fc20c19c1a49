"""Things done to a node's data while its process is stopped, run as
``manage.py shell -c "from tests.support.offline import ...; ..."`` with the node's settings:
writing notes with no network (the node pushes them when it is back), and forging what a
hostile removed member would send."""

from __future__ import annotations

import time

from apps.core.thread import payloads as p
from apps.core.thread.rowid import row_id_new
from apps.core.threads import coltypes
from apps.core.threads.context import thread_context
from apps.core.threads.registry import thread_database
from tests.replicated_app.models import Note

NOTE = "replicated_app_note"


def notes_write(thread_hex: str, count: int, prefix: str = "offline") -> None:
    """``count`` notes, one transaction (one op) each."""
    with thread_context(bytes.fromhex(thread_hex)):
        for i in range(count):
            Note.objects.create(title=f"{prefix} {i}")


def late_note_forge(thread_hex: str) -> str:
    """A note signed by this node's device after it saw its removal, sealed with the last key
    it has: what a removed member's modified node could still send. Printed as hex."""
    from tests.core.thread.conftest import forge

    database = thread_database(bytes.fromhex(thread_hex))
    note_id = database.row_id_new().hex
    with database.lock:
        writer = database.writer()
        change = p.RowChange(
            table="replicated_app_note",
            pk=note_id,
            action=p.UPSERT,
            cols={
                "id": note_id,
                "title": "written after removal",
                "body": "",
                "pinned": False,
                "stars": 0,
                "created": time.strftime("%Y-%m-%d %H:%M:%S"),
            },
        )
        # The newest epoch it holds a key of (the writer itself would refuse: it is sealed to a
        # member who is gone, this very node's).
        replica = writer.replica
        events = replica.control.timeline.keys_events
        epoch = max(event.epoch for event in events)
        key = next(
            epoch_keys.data
            for event in events
            if event.epoch == epoch
            for epoch_keys in replica.keyring.by_keys_op.get(event.op.hash, ())
            if epoch_keys.data is not None
        )
        payload = p.data_doc([change], coltypes.schema_of({NOTE}))
        op = forge(writer, kind="data", payload=payload, epoch=epoch, key=key)
    return op.raw.hex()


def log_print(thread_hex: str) -> None:
    """Print the thread's version vector, one ``<device hex> <seq>`` per line."""
    database = thread_database(bytes.fromhex(thread_hex))
    with database.lock:
        vv = database.replica().version_vector()
    print("\n".join(f"{device.hex()} {seq}" for device, seq in sorted(vv.items())))


def notes_bulk(thread_hex: str, count: int, per_transaction: int = 5000) -> None:
    """``count`` notes, one op each, written many ops to a transaction: a big thread quickly
    (one commit per op costs an fsync; this is for building benchmark threads)."""
    from django.utils import timezone

    database = thread_database(bytes.fromhex(thread_hex))
    created = timezone.now().isoformat()
    schema = coltypes.schema_of({NOTE})

    def batch(start: int, size: int):
        def write(writer):
            for i in range(start, start + size):
                note_id = row_id_new(writer.member).hex
                cols = {"id": note_id, "title": f"bulk {i}", "body": "", "pinned": False}
                cols |= {"stars": 0, "created": created}
                writer.write_data([p.RowChange(NOTE, note_id, p.UPSERT, cols)], schema)

        return write

    for start in range(0, count, per_transaction):
        database.write(batch(start, min(per_transaction, count - start)))
