"""The mirror's store: what it takes (signed, chained, of a thread it keeps), what it refuses,
what waits for its past, and the pages it serves (in causal order)."""

from __future__ import annotations

import nacl.signing
import pytest

from apps.cadre import mirror_store
from apps.cadre.models import MirrorOp, MirrorThread
from apps.core.thread.op import op_decode
from apps.core.threads import services
from apps.core.threads.registry import thread_database
from tests.cadre.test_mirror_support import (
    busy_thread,
    decoded,
    forged,
    log_of,
    mirror_rows,
    party_secret,
)


@pytest.fixture(autouse=True)
def _fresh_store():
    mirror_store.forget()
    yield
    mirror_store.forget()


@pytest.fixture
def kept(node):
    """A busy thread of this node, kept by the mirror for a party."""
    thread, other = busy_thread()
    mirror_rows(party_secret(), [thread])
    return thread, other


def _causal(raws: list[bytes]) -> bool:
    """Whether each op comes after its device's previous op and after every op it depends on."""
    seen: dict[bytes, int] = {}
    for op in decoded(raws):
        if seen.get(op.device, 0) != op.seq - 1:
            return False
        if any(seen.get(device, 0) < seq for device, seq in op.deps):
            return False
        seen[op.device] = op.seq
    return True


def test_a_log_is_kept_as_it_came_and_served_in_pages(kept) -> None:
    thread, _other = kept
    raws = log_of(thread)
    counts = mirror_store.ingest(thread.thread, raws)
    assert (counts.accepted, counts.total) == (len(raws), len(raws))
    replica = thread_database(thread.thread).replica()
    assert mirror_store.version_vector(thread.thread) == replica.version_vector()
    assert mirror_store.heads(thread.thread) == {
        device: (seq, replica.head_hashes[device])
        for device, seq in replica.version_vector().items()
    }
    # Pages of two ops, in the order they came, to the end.
    pages, after = [], 0
    while True:
        ops, after, done = mirror_store.ops_after(
            thread.thread, after, limit_ops=2, limit_bytes=1 << 20
        )
        pages.append(ops)
        if done:
            break
    assert [raw for page in pages for raw in page] == raws
    assert all(len(page) <= 2 for page in pages)
    # Again: nothing new.
    again = mirror_store.ingest(thread.thread, raws)
    assert (again.accepted, again.duplicate) == (0, len(raws))
    assert MirrorOp.objects.count() == len(raws)


def test_a_page_is_bounded_by_bytes_but_holds_one_op_at_least(kept) -> None:
    thread, _other = kept
    raws = log_of(thread)
    mirror_store.ingest(thread.thread, raws)
    ops, _next, done = mirror_store.ops_after(thread.thread, 0, limit_ops=100, limit_bytes=1)
    assert (ops, done) == (raws[:1], False)


def test_what_a_peer_lacks_comes_by_its_vector_in_causal_order(kept) -> None:
    thread, _other = kept
    raws = log_of(thread)
    mirror_store.ingest(thread.thread, raws)
    half = decoded(raws[: len(raws) // 2])
    vv: dict[bytes, int] = {}
    for op in half:
        vv[op.device] = op.seq
    missing, cursor = mirror_store.ops_missing(
        thread.thread, vv, limit_ops=1000, limit_bytes=1 << 20
    )
    assert missing == raws[len(raws) // 2 :]
    assert cursor == mirror_store.version_vector(thread.thread)
    first, _cursor = mirror_store.ops_missing(thread.thread, {}, limit_ops=3, limit_bytes=1 << 20)
    assert first == raws[:3]


def test_ops_out_of_order_wait_for_their_past_then_are_taken(kept) -> None:
    thread, _other = kept
    raws = log_of(thread)
    late, early = raws[: len(raws) // 2], raws[len(raws) // 2 :]
    counts = mirror_store.ingest(thread.thread, list(reversed(early)))
    assert (counts.accepted, counts.held) == (0, len(early))
    assert MirrorOp.objects.count() == 0
    counts = mirror_store.ingest(thread.thread, late)
    assert counts.accepted == len(raws)
    stored, _next, _done = mirror_store.ops_after(
        thread.thread, 0, limit_ops=1000, limit_bytes=1 << 30
    )
    assert sorted(stored) == sorted(raws)
    assert _causal(stored)  # the log order served is causal, whatever order they came in


def test_an_op_whose_dependency_is_missing_waits(kept) -> None:
    thread, other = kept
    raws = log_of(thread)
    ops = decoded(raws)
    # The second device's first op depends on ops of the first device.
    first_of_other = next(i for i, op in enumerate(ops) if op.device == bytes(other.verify_key))
    assert ops[first_of_other].deps
    counts = mirror_store.ingest(thread.thread, [raws[first_of_other]])
    assert counts.held == 1
    counts = mirror_store.ingest(thread.thread, raws[:first_of_other])
    assert counts.accepted == first_of_other + 1


def test_a_forged_signature_garbage_and_foreign_ops_are_refused(kept, node) -> None:
    thread, _other = kept
    raws = log_of(thread)
    tampered = bytearray(raws[0])
    tampered[-10] ^= 1  # a byte of the thread id (the last field): the signature fails
    elsewhere, _ = busy_thread("Elsewhere", renames=0)
    counts = mirror_store.ingest(
        thread.thread, [bytes(tampered), b"\xa1\x61v\x02", b"not cbor", *log_of(elsewhere)[:1]]
    )
    assert (counts.malformed, counts.foreign, counts.accepted) == (3, 1, 0)
    # A thread the mirror does not keep: nothing of it is taken.
    counts = mirror_store.ingest(elsewhere.thread, log_of(elsewhere))
    assert (counts.foreign, MirrorOp.objects.count()) == (len(log_of(elsewhere)), 0)


def test_a_broken_chain_is_refused_and_a_fork_keeps_the_first(kept, node) -> None:
    thread, _other = kept
    raws = log_of(thread)
    mirror_store.ingest(thread.thread, raws)
    me = node.device
    mine = [op for op in decoded(raws) if op.device == bytes(me.verify_key)]
    head = mine[-1]
    # Chained to an op the mirror does not hold: refused (it can never come: another op is
    # at that place).
    broken = forged(me, thread.thread, head.seq + 1, b"\x01" * 32)
    # A second op at a taken place, chained right: a fork.
    fork = forged(me, thread.thread, head.seq, head.prev)
    counts = mirror_store.ingest(thread.thread, [broken.raw, fork.raw])
    assert (counts.refused, counts.accepted) == (2, 0)
    assert mirror_store.heads(thread.thread)[head.device] == (head.seq, head.hash)
    assert not MirrorOp.objects.filter(hash=fork.hash).exists()
    # The fork is said in the mirror's vector from now on (at the earliest place seen).
    assert mirror_store.forks(thread.thread) == {head.device: head.seq}
    # The honest next op still goes on the first branch.
    after = forged(me, thread.thread, head.seq + 1, head.hash)
    assert mirror_store.ingest(thread.thread, [after.raw]).accepted == 1


def test_other_members_devices_pass_on_only_ops_of_devices_known_here(kept) -> None:
    thread, _other = kept
    raws = log_of(thread)
    mirror_store.ingest(thread.thread, raws)
    stranger = nacl.signing.SigningKey.generate()
    op = forged(stranger, thread.thread, 1, None)
    counts = mirror_store.ingest(thread.thread, [op.raw], trusted=False)
    assert (counts.dropped, counts.accepted) == (1, 0)
    # Once the party lists it on the roster, it is a device of the thread.
    MirrorThread.objects.filter(pk=thread.id).update(
        roster=[{"device": bytes(stranger.verify_key).hex(), "addrs": []}]
    )
    assert mirror_store.ingest(thread.thread, [op.raw], trusted=False).accepted == 1
    # A device the mirror holds ops of is known too.
    known = op_decode(raws[-1])
    assert known.device in mirror_store.version_vector(thread.thread)


def test_the_ops_waiting_are_bounded(kept, node, monkeypatch) -> None:
    thread, _other = kept
    monkeypatch.setattr(mirror_store, "MAX_HELD_OPS", 5)
    me = node.device
    ahead = [forged(me, thread.thread, seq, b"\x02" * 32).raw for seq in range(100, 120)]
    mirror_store.ingest(thread.thread, ahead)
    assert len(mirror_store._held) == 5


def test_the_status_lists_each_thread_kept(kept) -> None:
    thread, _other = kept
    raws = log_of(thread)
    mirror_store.ingest(thread.thread, raws)
    empty = services.thread_create(name="Empty")
    MirrorThread.objects.create(thread_id=empty.id, party=MirrorThread.objects.get().party)
    rows = {row["thread"]: row for row in mirror_store.status()}
    assert rows[thread.id]["ops"] == len(raws)
    assert rows[thread.id]["last_received"] is not None
    assert (rows[empty.id]["ops"], rows[empty.id]["last_received"]) == (0, None)
