"""Conversations filled while their node is stopped, run as
``manage.py shell -c "from tests.support.offline_messages import ...; ..."`` with the node's
settings (like ``tests.support.offline``): many messages quickly, for benchmarks."""

from __future__ import annotations

from apps.core.thread import payloads as p
from apps.core.thread.rowid import row_id_new
from apps.core.threads.coltypes import schema_of
from apps.core.threads.registry import thread_database

TABLE = "messaging_message"


def messages_bulk(
    thread_hex: str, count: int, per_transaction: int = 5000, prefix: str = "bulk"
) -> None:
    """``count`` messages by this node's member, one op each (as ``message_send`` writes them),
    many ops to a transaction: one commit per message would cost an fsync each."""
    database = thread_database(bytes.fromhex(thread_hex))
    member = database.member_public()
    assert member is not None, "this node is not a member of the thread"
    schema = schema_of({TABLE})  # the messaging schema version every op declares

    def batch(start: int, size: int):
        def write(writer):
            for i in range(start, start + size):
                # The id names its author, as every replica checks (apps.core.thread.rowid).
                message_id = row_id_new(member).hex
                cols = {"id": message_id, "text": f"{prefix} message {i}", "reply_to": None}
                change = p.RowChange(TABLE, message_id, p.UPSERT, cols)
                writer.write_data([change], schema=schema)

        return write

    for start in range(0, count, per_transaction):
        database.write(batch(start, min(per_transaction, count - start)))
