"""Data bodies opened ahead in the signature helper (``ahead``) give exactly the decisions and
rows of opening them in the applying thread; a payload opened ahead is used only when it is what
the replica's own opener would have found, so a wrong or planted one changes nothing."""

from __future__ import annotations

import nacl.signing
import nacl.utils

from apps.core.thread import ahead, codec, signatures
from apps.core.thread import payloads as p
from apps.core.thread.replica import Replica, verified, verified_ahead
from apps.core.thread.writer import ThreadWriter
from tests.core.thread.conftest import forge


def _writer() -> ThreadWriter:
    return ThreadWriter.create(
        master_secret=nacl.utils.random(32),
        device_key=nacl.signing.SigningKey.generate(),
        name="ahead",
    )


def _note(writer: ThreadWriter, i: int) -> None:
    writer.write_data([p.RowChange("notes", f"n{i}", p.UPSERT, {"text": f"note {i}", "n": i})])


def _outcome(replica: Replica) -> list[tuple[str, list[p.RowChange]]]:
    return [
        (replica.decision(op.hash).status, replica.store.changes(op.hash) or [])  # type: ignore[union-attr]
        for op in replica.admitted
    ]


def test_frames_opened_ahead_decide_and_change_rows_as_opened_here() -> None:
    writer = _writer()
    for i in range(3 * signatures.MIN_BATCH):
        _note(writer, i)
    # A bad body among good ones: it opens, but its payload is not a data payload.
    writer.replica.ingest_op(forge(writer, kind="data", payload={"rows": "nonsense"}))
    for i in range(3 * signatures.MIN_BATCH, 4 * signatures.MIN_BATCH):
        _note(writer, i)
    raws = [op.raw for op in writer.replica.admitted]
    frames = [raws[i : i + signatures.MIN_BATCH] for i in range(0, len(raws), signatures.MIN_BATCH)]

    here = Replica.for_members(writer.thread, [writer.member_key])
    for frame in frames:
        here.ingest_many(frame)

    ahead.opened_clear()
    opened = Replica.for_members(writer.thread, [writer.member_key])
    taken = []
    real_take = ahead.opened_take

    def take(op_hash: bytes):
        found = real_take(op_hash)
        taken.append(found is not None)
        return found

    ahead.opened_take = take  # type: ignore[assignment]
    try:
        for checked in verified_ahead(frames):
            opened.ingest_many(checked)
    finally:
        ahead.opened_take = real_take  # type: ignore[assignment]
    assert sum(taken) > len(raws) // 2  # most bodies were opened ahead
    assert _outcome(opened) == _outcome(here)
    statuses = [status for status, _ in _outcome(opened)]
    assert statuses.count("refused") == 1


def test_a_payload_planted_under_another_key_is_not_used() -> None:
    writer = _writer()
    for i in range(signatures.MIN_BATCH):
        _note(writer, i)
    raws = [op.raw for op in writer.replica.admitted]
    target = writer.replica.admitted[-1]
    ahead.opened_clear()
    planted = codec.encode(
        {
            "rows": [{"table": "notes", "pk": "n0", "action": p.UPSERT, "cols": {"text": "x"}}],
            "schema": {},
        }
    )
    ahead.opened_put([(target.hash, (b"k" * 32, planted))])
    replica = Replica.for_members(writer.thread, [writer.member_key])
    replica.ingest_many(raws)
    assert replica.decision(target.hash).status == "accepted"  # type: ignore[union-attr]
    last = signatures.MIN_BATCH - 1
    assert replica.store.changes(target.hash) == [
        p.RowChange("notes", f"n{last}", p.UPSERT, {"text": f"note {last}", "n": last})
    ]


def test_a_replica_without_the_key_leaves_ops_opaque_though_another_opened_them() -> None:
    """Keys are pooled by thread in the process: a replica of a member who holds no key of an
    epoch (another node in the same process) must not take a payload opened with it."""
    writer = _writer()
    for i in range(signatures.MIN_BATCH):
        _note(writer, i)
    raws = [op.raw for op in writer.replica.admitted]
    holder = Replica.for_members(writer.thread, [writer.member_key])
    holder.ingest_many(raws)  # notes this thread's keys for the helper
    assert ahead.keys_for(writer.thread)
    ahead.opened_clear()
    checked = verified(raws)
    outsider = Replica.for_members(writer.thread)  # no member key: reads nothing
    results = outsider.ingest_many(checked)
    assert {r.status for r in results if r.op is not None and r.op.kind == "data"} == {"opaque"}


def test_with_opening_ahead_off_the_helpers_only_check(monkeypatch) -> None:
    writer = _writer()
    for i in range(signatures.MIN_BATCH):
        _note(writer, i)
    raws = [op.raw for op in writer.replica.admitted]
    Replica.for_members(writer.thread, [writer.member_key]).ingest_many(raws)
    assert ahead.keys_for(writer.thread)
    monkeypatch.setattr(ahead, "OPEN_AHEAD", False)
    ahead.opened_clear()
    checked = verified(raws)
    assert len(checked.items) == len(raws)
    assert ahead._opened == {}
