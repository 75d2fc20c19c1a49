"""Keys, forks and invites under a hostile member (issue 9): split and partial rotations,
equivocation, and invites that outlive their creator's standing."""

from __future__ import annotations

import nacl.utils
import pytest

from apps.core.thread import codec, crypto, keys
from apps.core.thread import payloads as p
from apps.core.thread.lww import materialize
from apps.core.thread.op import KIND_KEYS
from apps.core.thread.store import MemoryStore
from apps.core.thread.writer import ThreadWriter, WriteError, redemption_request
from tests.core.thread.conftest import Party, auditor, forge, join, now_ms, rid, sync


@pytest.fixture
def thread(alice: Party) -> ThreadWriter:
    return ThreadWriter.create(master_secret=alice.master, device_key=alice.device, name="Club")


def members(thread: ThreadWriter, *parties: Party, role: str = "writer") -> list[ThreadWriter]:
    """The parties joined at ``role``, each caught up with the owner's log."""
    joined = [join(thread, party, role=role) for party in parties]
    for writer in joined:
        sync(thread.replica, writer.replica)
    return joined


def twin_of(writer: ThreadWriter, op, change: p.RowChange):
    """Another op signed by ``writer``'s device at ``op``'s place: an equivocation."""
    return forge(
        writer,
        kind="data",
        payload=p.data_doc([change]),
        seq=op.seq,
        prev=op.prev,
        deps=list(op.deps),
    )


def keys_payload(writer: ThreadWriter, seals_to: dict[bytes, bytes], secret: bytes) -> dict:
    """A keys op's payload for the writer's next epoch: ``secret`` is the real one (its check
    value is published), ``seals_to`` what each member's box really holds."""
    epoch = max(e.epoch for e in writer.replica.control.timeline.keys_events) + 1
    check = keys.EpochKeys.from_secret(writer.thread, epoch, secret).check(writer.thread)
    seals = {
        member: crypto.seal(member, codec.encode({"secret": inner, "old": []}))
        for member, inner in seals_to.items()
    }
    return {"epoch": epoch, "check": check, "seal": seals}


def test_a_split_rotation_gives_the_cheated_member_no_key_and_nobody_decides_differently(
    thread: ThreadWriter, alice: Party, bob: Party, carol: Party
):
    b, c = members(thread, bob, carol)
    real, fake = nacl.utils.random(32), nacl.utils.random(32)
    payload = keys_payload(thread, {thread.member: real, b.member: real, c.member: fake}, real)
    epoch = payload["epoch"]
    rotation = forge(thread, kind=KIND_KEYS, payload=payload, epoch=epoch, key=b"")
    thread.replica.ingest(rotation.raw)
    epoch_keys = keys.EpochKeys.from_secret(thread.thread, epoch, real)
    rename = forge(
        thread,
        kind="control",
        payload=p.control_doc(p.SetMeta(name="Renamed in the split epoch")),
        epoch=epoch,
        key=epoch_keys.control,
    )
    thread.replica.ingest(rename.raw)
    post = forge(
        thread,
        kind="data",
        payload=p.data_doc([p.RowChange("notes", rid(thread, "x"), p.UPSERT, {"t": "x"})]),
        epoch=epoch,
        key=epoch_keys.data,
    )
    thread.replica.ingest(post.raw)
    decided = {}
    for name, writer in (("bob", b), ("carol", c)):
        sync(thread.replica, writer.replica)
        decided[name] = [writer.replica.decision(op.hash).status for op in (rename, post)]
    assert decided["bob"] == ["accepted", "accepted"]
    # Carol never holds a key that does not match the published check: no key, not a
    # different one. Her replica refuses nothing the others accept.
    assert decided["carol"] == ["opaque", "opaque"]
    (bad,) = c.replica.keyring.bad_seals
    assert bad.keys_op == rotation.hash
    assert bad.device == thread.device  # who sent it
    assert c.replica.control.opaque  # and her node knows not to act on its member list


def test_a_rotation_that_leaves_a_member_out_is_refused_everywhere(
    thread: ThreadWriter, alice: Party, bob: Party
):
    b = join(thread, bob)
    secret = nacl.utils.random(32)
    payload = keys_payload(thread, {thread.member: secret}, secret)
    partial = forge(thread, kind=KIND_KEYS, payload=payload, epoch=payload["epoch"], key=b"")
    fresh = auditor(thread.thread, alice, bob)
    sync(thread.replica, fresh)
    for replica in (thread.replica, fresh):
        replica.ingest(partial.raw)
        decision = replica.decision(partial.hash)
        assert decision.status == "refused"
        assert "not sealed to every member" in decision.reason
    # Writers keep using the full epoch: Bob reads what comes next.
    op = thread.write_data([p.RowChange("notes", rid(thread, "y"), p.UPSERT, {"t": "y"})])
    sync(thread.replica, b.replica)
    assert b.replica.decision(op.hash).status == "accepted"


def test_only_roles_the_policy_lets_rotate_start_an_epoch(thread: ThreadWriter, bob: Party):
    b = join(thread, bob, role="reader")
    sync(thread.replica, b.replica)
    secret = nacl.utils.random(32)
    payload = keys_payload(b, {thread.member: secret, b.member: secret}, secret)
    rotation = forge(b, kind=KIND_KEYS, payload=payload, epoch=payload["epoch"], key=b"")
    result = thread.replica.ingest(rotation.raw)
    assert result.status == "refused"
    assert "may not rotate" in result.reason
    with pytest.raises(WriteError, match="may not rotate"):
        b.rotate()


def test_after_a_member_leaves_a_writer_rotates_and_writes_on(
    thread: ThreadWriter, bob: Party, carol: Party
):
    b, c = members(thread, bob, carol)
    c.control(p.Leave())
    sync(c.replica, b.replica)
    op = b.write_data([p.RowChange("notes", rid(b, "after"), p.UPSERT, {"t": "still here"})])
    sync(b.replica, thread.replica)
    assert thread.replica.decision(op.hash).status == "accepted"
    newest = max(e.epoch for e in b.replica.control.timeline.keys_events)
    assert op.epoch == newest  # a new epoch Carol was not sealed


def test_a_fork_refuses_the_device_and_rebuilds_only_its_rows(
    thread: ThreadWriter, alice: Party, bob: Party, carol: Party
):
    b, c = members(thread, bob, carol)
    carols = c.write_data([p.RowChange("notes", rid(c, "c"), p.UPSERT, {"t": "carol's"})])
    one = b.write_data([p.RowChange("notes", rid(b, "b"), p.UPSERT, {"t": "one"})])
    two = twin_of(b, one, p.RowChange("notes", rid(b, "b"), p.UPSERT, {"t": "two"}))

    class Counting(MemoryStore):
        clears = 0

        def row_events_clear(self) -> None:
            Counting.clears += 1
            super().row_events_clear()

    replica = auditor(thread.thread, alice, bob, carol)
    replica.store = Counting()
    replica.reload()
    for writer in (thread, c):
        sync(writer.replica, replica)
    assert replica.ingest(carols.raw).status in ("accepted", "duplicate")
    assert replica.ingest(one.raw).status == "accepted"
    Counting.clears = 0
    result = replica.ingest(two.raw)
    assert result.status == "fork"
    assert not result.rebuilt
    assert Counting.clears == 0  # no rebuild of every table
    assert replica.decision(one.hash).status == "refused"
    rows = materialize(replica.accepted_data())["notes"]
    assert rid(b, "b") not in rows
    assert rows[rid(c, "c")]["t"] == "carol's"


def test_an_honest_op_citing_either_branch_of_a_fork_is_taken_everywhere(
    thread: ThreadWriter, alice: Party, bob: Party, carol: Party
):
    b, c = members(thread, bob, carol)
    branch_a = b.write_data([p.RowChange("notes", rid(b, "b"), p.UPSERT, {"t": "a"})])
    branch_b = twin_of(b, branch_a, p.RowChange("notes", rid(b, "b"), p.UPSERT, {"t": "b"}))
    thread.replica.ingest(branch_a.raw)
    c.replica.ingest(branch_b.raw)
    on_a = thread.write_data([p.RowChange("notes", rid(thread, "a"), p.UPSERT, {"t": "saw a"})])
    on_b = c.write_data([p.RowChange("notes", rid(c, "b"), p.UPSERT, {"t": "saw b"})])
    sync(c.replica, thread.replica)
    sync(thread.replica, c.replica)
    for replica in (thread.replica, c.replica):
        assert replica.forks == {b.device: branch_a.seq}
        assert replica.decision(on_a.hash).status == "accepted"
        assert replica.decision(on_b.hash).status == "accepted"
        assert replica.waiting == 0
    assert materialize(thread.replica.accepted_data()) == materialize(c.replica.accepted_data())


def test_a_removed_members_invites_lose_their_force(
    thread: ThreadWriter, alice: Party, bob: Party, carol: Party, dave: Party
):
    b, c = members(thread, bob, carol, role="admin")
    invite = b.invite_create(role="writer", expiry=now_ms() + 3_600_000, inviter="peer")
    sync(b.replica, c.replica)
    sync(b.replica, thread.replica)  # the owner sees the invite, then removes its creator
    # Carol admits with Bob's invite, not having seen that the owner removed Bob meanwhile.
    redeem, _rotation = c.admit(
        redemption_request(invite, master_secret=dave.master, device_key=dave.device)
    )
    removal, _ = thread.remove_member(b.member)
    outcomes = set()
    for order in ((c.replica, thread.replica), (thread.replica, c.replica)):
        replica = auditor(thread.thread, alice, bob, carol, dave)
        for source in order:
            sync(source, replica)
        decision = replica.decision(redeem.hash)
        assert decision.status == "refused"
        assert "lost its force" in decision.reason
        assert dave.member(thread.thread) not in replica.snapshot().roles
        outcomes.add(replica.snapshot())
    assert len(outcomes) == 1
    # After seeing the removal, nobody can use the invite either.
    sync(thread.replica, c.replica)
    other = Party("erin")
    with pytest.raises(WriteError):
        c.admit(redemption_request(invite, master_secret=other.master, device_key=other.device))
    assert removal.hash in {op.hash for op in c.replica.admitted}


@pytest.fixture
def dave() -> Party:
    return Party("dave")


def test_a_body_opened_with_one_epochs_key_is_not_remembered_for_another(thread: ThreadWriter):
    # Concurrent rotations can share an epoch number, and which of them count for an op can
    # change once the control order is known (one refused after all): a body that only the
    # key of the refused one opens must not stay open through the other (``python -m bench
    # adversary`` found replicas accepting and refusing the same op that way).
    replica = thread.replica
    op = thread.write_data([p.RowChange("notes", rid(thread, "a"), p.UPSERT, {"text": "hi"})])
    (real,) = [e for e in replica.control.timeline.keys_events if e.epoch == op.epoch]
    other_keys = keys.EpochKeys.from_secret(thread.thread, op.epoch, nacl.utils.random(32))
    other_op = next(o for o in replica.admitted if o.hash not in (real.op.hash, op.hash))
    other = type(real)(other_op, op.epoch, other_keys.check(thread.thread), real.sealed)
    replica.keyring.by_keys_op[other_op.hash] = [other_keys]
    opener = replica.opener
    opener._data.clear()
    assert isinstance(opener.data(op, [other, real]), p.DataPayload)
    decision = opener.data(op, [other])
    assert decision.status == "refused"
    assert decision.reason == f"the body does not open with the key of epoch {op.epoch}"
    # And with a candidate whose key this node lacks, nothing is decided yet.
    del replica.keyring.by_keys_op[other_op.hash]
    assert opener.data(op, [other]).status == "opaque"
