"""What enters a replica's log at all (issue 9): ops of devices not certified in their own past,
ops stamped far in the future, more devices than version vectors can carry, and ops a node would
write that its peers could not read."""

from __future__ import annotations

import nacl.signing
import pytest

from apps.core.thread import keys
from apps.core.thread import payloads as p
from apps.core.thread.control import MAX_MEMBER_DEVICES
from apps.core.thread.hlc import MAX_MILLIS, HybridClock, Stamp
from apps.core.thread.op import MAX_DEPS, op_seal
from apps.core.thread.replica import MAX_AHEAD_MS, Replica
from apps.core.thread.writer import ThreadWriter, WriteError
from tests.core.thread.conftest import Party, auditor, forge, join, now_ms, rid, sync


@pytest.fixture
def thread(alice: Party) -> ThreadWriter:
    return ThreadWriter.create(master_secret=alice.master, device_key=alice.device, name="Club")


def junk(thread: ThreadWriter, *, deps: list[tuple[bytes, int]], seq: int = 1, kind="data"):
    """An op signed by a throw-away key: valid bytes, signature and all."""
    key = nacl.signing.SigningKey.generate()
    return op_seal(
        key,
        thread=thread.thread,
        seq=seq,
        prev=None if seq == 1 else b"\x01" * 32,
        deps=deps,
        hlc=Stamp(now_ms(), 0),
        epoch=1,
        kind=kind,
        seal=lambda aad: b"\x00" * 40,
    )


def test_ops_of_throw_away_keys_never_enter_the_log_the_vector_or_anyones_deps(
    thread: ThreadWriter, bob: Party
):
    b = join(thread, bob, role="reader")
    heads = dict(thread.replica.heads)
    covering = [(d, s) for d, s in heads.items()]
    junks = [junk(thread, deps=covering) for _ in range(300)]
    junks += [junk(thread, deps=[]) for _ in range(100)]  # a past of nothing at all
    results = thread.replica.ingest_many([op.raw for op in junks])
    assert {r.status for r in results} == {"unknown"}
    assert thread.replica.heads == heads
    assert all(thread.replica.store.op_by_hash(op.hash) is None for op in junks)
    # The next honest op cites only certified devices: peers can always read its deps.
    honest = thread.write_data([p.RowChange("notes", rid(thread, "n"), p.UPSERT, {"t": "x"})])
    assert {d for d, _ in honest.deps} <= set(heads)
    assert b.replica.ingest(honest.raw).status in ("accepted", "opaque", "pending")


def test_an_op_of_a_stranger_waiting_for_a_made_up_past_is_bounded(thread: ThreadWriter):
    made_up = [(b"\x07" * 32, 5)]
    results = [thread.replica.ingest(junk(thread, deps=made_up).raw) for _ in range(50)]
    assert {r.status for r in results} == {"pending"}
    assert thread.replica.waiting == 50
    assert thread.replica.heads.keys() == {thread.device}


def test_a_new_device_certified_in_the_same_batch_is_admitted_with_it(
    thread: ThreadWriter, alice: Party, bob: Party
):
    b = join(thread, bob)
    fresh = auditor(thread.thread, alice, bob)
    first = b.write_data([p.RowChange("notes", rid(b, "1"), p.UPSERT, {"a": 1})])
    ops = [*thread.replica.admitted, first]
    results = fresh.ingest_many([op.raw for op in ops])
    assert [r.status for r in results] == ["accepted"] * len(ops)


def test_admission_depends_on_the_ops_past_not_on_what_else_a_replica_holds(
    thread: ThreadWriter, alice: Party, bob: Party, carol: Party, dave: Party
):
    """Bob (admin) admits Dave while the owner removes Bob, neither seeing the other. Dave's
    first op cites his admission. Whatever the order ops reach a replica, Dave's op enters the
    log (no honest op may depend on an op some replica turned away), decided the same."""
    b = join(thread, bob, role="admin")
    sync(thread.replica, b.replica)
    d = join(b, dave, role="writer")
    dave_op = d.write_data([p.RowChange("notes", rid(d, "1"), p.UPSERT, {"t": "hi"})])
    thread.remove_member(b.member)
    outcomes = set()
    for order in ("admission first", "removal first"):
        replica = auditor(thread.thread, alice, bob, carol, dave)
        first, second = (b.replica, thread.replica)
        if order == "removal first":
            first, second = second, first
        sync(first, replica)
        sync(second, replica)
        sync(d.replica, replica)
        assert replica.store.op(dave_op.id) is not None
        assert replica.waiting == 0
        outcomes.add((replica.snapshot(), replica.accepted_hashes()))
    assert len(outcomes) == 1


@pytest.fixture
def dave() -> Party:
    return Party("dave")


def test_a_member_has_at_most_sixteen_devices(thread: ThreadWriter):
    for _ in range(MAX_MEMBER_DEVICES - 1):
        thread.certify_device(nacl.signing.SigningKey.generate())
    with pytest.raises(WriteError, match="at most 16 devices"):
        thread.certify_device(nacl.signing.SigningKey.generate())


def test_a_device_is_certified_only_with_its_own_proof(thread: ThreadWriter, bob: Party):
    b = join(thread, bob)
    victim = nacl.signing.SigningKey.generate()  # another node's key, not Bob's to claim
    device = bytes(victim.verify_key)
    squat = forge(
        b,
        kind="control",
        payload=p.control_doc(
            p.CertifyDevice(
                member=b.member,
                device=device,
                device_cert=keys.device_cert_sign(b.member_key, b.thread, device),
                device_proof=keys.device_proof_sign(b.member_key, b.thread, b.member),
            )
        ),
    )
    result = thread.replica.ingest(squat.raw)
    assert result.status == "refused"
    assert "prove" in result.reason


def test_a_revocation_cannot_be_replayed_against_a_later_certification(
    thread: ThreadWriter, alice: Party, bob: Party, carol: Party
):
    b = join(thread, bob)
    c = join(thread, carol)
    laptop = nacl.signing.SigningKey.generate()
    b.certify_device(laptop)
    revocation, *_ = b.revoke_device(bytes(laptop.verify_key))
    old_sig = b.replica.control.actions[revocation.hash].member_sig
    b.certify_device(laptop)  # the same laptop comes back
    sync(b.replica, thread.replica)
    sync(thread.replica, c.replica)
    replay = forge(
        c,
        kind="control",
        payload=p.control_doc(p.RevokeDevice(device=bytes(laptop.verify_key), member_sig=old_sig)),
    )
    result = thread.replica.ingest(replay.raw)
    assert result.status == "refused"
    assert "signature does not verify" in result.reason


def test_an_op_stamped_far_ahead_is_held_not_kept_and_taken_when_time_comes(
    thread: ThreadWriter, alice: Party, bob: Party
):
    b = join(thread, bob)
    future = Stamp(now_ms() + 24 * 3600 * 1000, 0)
    ahead = forge(
        b,
        kind="data",
        payload=p.data_doc([p.RowChange("notes", rid(b, "f"), p.UPSERT, {"t": "wins LWW?"})]),
        hlc=future,
    )
    replica = auditor(thread.thread, alice, bob)
    sync(thread.replica, replica)
    result = replica.ingest(ahead.raw)
    assert result.status == "held"
    assert "ahead of this node's clock" in result.reason
    assert replica.store.op_by_hash(ahead.hash) is None
    assert replica.max_hlc < future  # this node's clock is not dragged along
    # A replica whose clock got there takes it.
    later = Replica.for_members(
        thread.thread, [alice.member_key(thread.thread)], wall=lambda: future.millis
    )
    sync(thread.replica, later)
    assert later.ingest(ahead.raw).status == "accepted"
    # Within the bound, a fast clock is just a fast clock.
    near = forge(
        b,
        kind="data",
        payload=p.data_doc([p.RowChange("notes", rid(b, "g"), p.UPSERT, {"t": "soon"})]),
        hlc=Stamp(now_ms() + MAX_AHEAD_MS // 2, 0),
    )
    assert replica.ingest(near.raw).status == "accepted"


def test_the_clock_never_issues_a_stamp_peers_cannot_decode():
    clock = HybridClock(last=Stamp(MAX_MILLIS, 2**32 - 1), wall=lambda: 0)
    with pytest.raises(OverflowError):
        clock.tick()
    clock.observe(Stamp(MAX_MILLIS + 5, 0))  # a stamp past the range is never observed
    assert clock.last.millis <= MAX_MILLIS


def test_a_node_never_writes_an_op_its_peers_cannot_read(thread: ThreadWriter):
    for n in range(MAX_DEPS + 1):
        thread.replica.heads[n.to_bytes(32, "big")] = 1
    with pytest.raises(WriteError, match="peers cannot read"):
        thread.write_data([p.RowChange("notes", rid(thread, "x"), p.UPSERT, {"t": "x"})])
