"""Thread life cycles on real replicas: invites, roles, removal, keys, forks, replay, backdating."""

from __future__ import annotations

import random

import pytest

from apps.core.thread import codec, crypto
from apps.core.thread import payloads as p
from apps.core.thread.invite import InviteError, invite_parse
from apps.core.thread.replica import Replica
from apps.core.thread.writer import ThreadWriter, WriteError, redemption_request
from tests.core.thread.conftest import Party, auditor, forge, join, now_ms, rid, sync


def note(writer: ThreadWriter, name: str, text: str = "hello") -> p.RowChange:
    """A note of ``writer``'s own (its row id names it)."""
    return p.RowChange("notes", rid(writer, name), p.UPSERT, {"text": text})


@pytest.fixture
def thread(alice: Party) -> ThreadWriter:
    return ThreadWriter.create(
        master_secret=alice.master, device_key=alice.device, name="Book club"
    )


def test_creation_makes_the_creator_owner_with_one_key_epoch(thread: ThreadWriter, alice: Party):
    snap = thread.replica.snapshot()
    assert snap.created
    assert snap.name == "Book club"
    assert snap.owner == alice.member(thread.thread)
    assert snap.roles == {alice.member(thread.thread): "owner"}
    assert snap.current_epoch == 1
    # Anyone holding the log (with the keys) reaches the same state.
    fresh = auditor(thread.thread, alice)
    sync(thread.replica, fresh)
    assert fresh.snapshot() == snap


def test_member_keys_are_unlinkable_across_threads(alice: Party):
    one = ThreadWriter.create(master_secret=alice.master, device_key=alice.device, name="a")
    two = ThreadWriter.create(master_secret=alice.master, device_key=alice.device, name="b")
    assert one.member != two.member
    assert one.member == alice.member(one.thread)


def test_invite_link_admits_once(thread: ThreadWriter, alice: Party, bob: Party, carol: Party):
    invite = thread.invite_create(role="writer", expiry=now_ms() + 60_000, inviter="peer-a")
    parsed = invite_parse(invite.link())
    assert parsed == invite
    thread.admit(redemption_request(parsed, master_secret=bob.master, device_key=bob.device))
    assert thread.replica.snapshot().roles[bob.member(thread.thread)] == "writer"
    # The same link a second time (another person, or the same one) is refused.
    with pytest.raises(WriteError, match="already used"):
        thread.admit(
            redemption_request(parsed, master_secret=carol.master, device_key=carol.device)
        )
    assert carol.member(thread.thread) not in thread.replica.snapshot().roles


def test_revoked_and_expired_invites_are_refused(thread: ThreadWriter, bob: Party, carol: Party):
    revoked = thread.invite_create(role="writer", expiry=now_ms() + 60_000, inviter="p")
    thread.control(p.RevokeInvite(invite=revoked.public_key))
    with pytest.raises(WriteError, match="revoked"):
        thread.admit(redemption_request(revoked, master_secret=bob.master, device_key=bob.device))
    expired = thread.invite_create(role="writer", expiry=now_ms() - 1, inviter="p")
    with pytest.raises(InviteError, match="expired"):
        expired.check_fresh(now_ms())
    with pytest.raises(WriteError, match="expired"):
        thread.admit(
            redemption_request(expired, master_secret=carol.master, device_key=carol.device)
        )


def test_invite_from_another_thread_is_refused(thread: ThreadWriter, alice: Party, bob: Party):
    other = ThreadWriter.create(master_secret=alice.master, device_key=alice.device, name="other")
    foreign = other.invite_create(role="writer", expiry=now_ms() + 60_000, inviter="p")
    request = redemption_request(foreign, master_secret=bob.master, device_key=bob.device)
    # Even replaying the invite key itself in this thread: the proof names the other thread.
    thread.control(
        p.CreateInvite(invite=foreign.public_key, role="writer", expiry=now_ms() + 9_000_000)
    )
    with pytest.raises(WriteError, match=r"proof does not verify|certificate"):
        thread.admit(request)


def test_ops_of_one_thread_are_refused_in_another(thread: ThreadWriter, alice: Party):
    other = ThreadWriter.create(master_secret=alice.master, device_key=alice.device, name="other")
    op = other.write_data([note(other, "x")])
    assert thread.replica.ingest(op.raw).status == "foreign"
    # Re-signed with the other thread's id swapped in, the signature no longer matches.
    doc = codec.decode(op.raw, max_size=1 << 20)
    doc["thread"] = thread.thread
    assert thread.replica.ingest(codec.encode(doc)).status == "malformed"


def test_nobody_grants_above_their_own_role(thread: ThreadWriter, bob: Party, carol: Party):
    b = join(thread, bob, role="admin")
    c = join(thread, carol, role="writer")
    sync(thread.replica, b.replica)
    with pytest.raises(WriteError, match="ownership changes only by transfer"):
        b.set_role(c.member, "owner")
    with pytest.raises(WriteError, match="may not invite"):
        c.invite_create(role="admin", expiry=now_ms() + 60_000, inviter="p")
    # An admin cannot demote or remove another admin (no strictly higher rank)...
    b.set_role(c.member, "admin")
    sync(b.replica, thread.replica)
    sync(thread.replica, c.replica)
    with pytest.raises(WriteError, match="above their own or of a member not below"):
        c.set_role(b.member, "reader")
    # ...the owner can.
    thread.set_role(b.member, "reader")
    assert thread.replica.snapshot().roles[b.member] == "reader"


def test_exactly_one_owner_after_transfer(thread: ThreadWriter, alice: Party, bob: Party):
    b = join(thread, bob, role="admin")
    thread.control(p.TransferOwner(member=b.member))
    snap = thread.replica.snapshot()
    assert snap.owner == b.member
    assert [m for m, r in snap.members if r == "owner"] == [b.member]
    assert snap.roles[thread.member] == "admin"
    with pytest.raises(WriteError, match="only the owner"):
        thread.control(p.TransferOwner(member=thread.member))


def test_concurrent_transfers_from_two_owner_devices_leave_one_owner(
    thread: ThreadWriter, alice: Party, bob: Party, carol: Party
):
    b = join(thread, bob, role="admin")
    c = join(thread, carol, role="admin")
    # The owner's second device, certified by the owner's member key.
    second_device = Party("alice-laptop").device
    laptop_replica = Replica.for_members(thread.thread)
    thread.certify_device(second_device)
    sync(thread.replica, laptop_replica)
    laptop = ThreadWriter.for_member(
        laptop_replica, master_secret=alice.master, device_key=second_device
    )
    one = thread.control(p.TransferOwner(member=b.member))
    two = laptop.control(p.TransferOwner(member=c.member))
    results = []
    for order in ([one, two], [two, one]):
        fresh = auditor(thread.thread, alice, bob, carol)
        sync(thread.replica, fresh)
        sync(laptop.replica, fresh)
        for op in order:
            fresh.ingest(op.raw)
        snap = fresh.snapshot()
        assert len([m for m, r in snap.members if r == "owner"]) == 1
        results.append((snap, fresh.decisions[one.hash], fresh.decisions[two.hash]))
    assert results[0] == results[1]
    assert {results[0][1].status, results[0][2].status} == {"accepted", "refused"}


def test_concurrent_redemptions_of_one_invite_have_one_winner(
    thread: ThreadWriter, alice: Party, bob: Party, carol: Party
):
    admin = join(thread, bob, role="admin")
    invite = thread.invite_create(role="writer", expiry=now_ms() + 60_000, inviter="p")
    sync(thread.replica, admin.replica)
    carol_req = redemption_request(invite, master_secret=carol.master, device_key=carol.device)
    eve = Party("eve")
    eve_req = redemption_request(invite, master_secret=eve.master, device_key=eve.device)
    ops_a = thread.admit(carol_req)
    ops_b = admin.admit(eve_req)
    outcomes = set()
    for first, _second in ((ops_a, ops_b), (ops_b, ops_a)):
        fresh = auditor(thread.thread, alice, bob)
        sync(thread.replica if first is ops_a else admin.replica, fresh)
        sync(admin.replica if first is ops_a else thread.replica, fresh)
        roles = fresh.snapshot().roles
        winners = {carol.member(thread.thread), eve.member(thread.thread)} & roles.keys()
        assert len(winners) == 1
        outcomes.add((frozenset(winners), fresh.snapshot()))
        loser = ops_b[0] if carol.member(thread.thread) in winners else ops_a[0]
        assert "already used" in fresh.decisions[loser.hash].reason
    assert len(outcomes) == 1, "both delivery orders pick the same winner"


def test_removed_member_cannot_read_or_write_after_removal(
    thread: ThreadWriter, alice: Party, bob: Party, carol: Party
):
    b = join(thread, bob)
    c = join(thread, carol)
    c.write_data([note(c, "c1", "before")])
    sync(c.replica, thread.replica)
    thread.remove_member(c.member)
    after = thread.write_data([note(thread, "a2", "secret plans")])
    sync(thread.replica, b.replica)
    assert b.replica.decisions[after.hash].status == "accepted"

    # Carol gets the whole log and still has every key she ever held: nothing opens `after`.
    sync(thread.replica, c.replica)
    aad = after.header_bytes()
    carol_keys = [k for ks in c.replica.keyring.by_keys_op.values() for k in ks]
    assert carol_keys
    for epoch_keys in carol_keys:
        for key in (epoch_keys.data, epoch_keys.control):
            if key is not None:
                with pytest.raises(crypto.CryptoError):
                    crypto.aead_decrypt(key, after.body, aad)
    assert c.replica.decisions[after.hash].status == "opaque"
    # And having seen her removal she cannot write: no key, and a forged op with the old key
    # is refused by everyone.
    with pytest.raises(WriteError):
        c.write_data([note(c, "c2", "still here?")])
    old = c.replica.keyring.by_keys_op
    old_keys = next(k for ks in old.values() for k in ks if k.data is not None)
    forged = forge(
        c, kind="data", payload=p.data_doc([note(c, "c3")]), epoch=old_keys.epoch, key=old_keys.data
    )
    for replica in (thread.replica, b.replica):
        result = replica.ingest(forged.raw)
        assert result.status == "refused", result


def test_backdated_ops_of_a_removed_member_are_refused_everywhere(
    thread: ThreadWriter, alice: Party, bob: Party, carol: Party
):
    b = join(thread, bob)
    c = join(thread, carol, role="admin")
    sync(thread.replica, b.replica)
    sync(thread.replica, c.replica)
    # Carol has not heard of her removal yet (or pretends not to): her replica is stale.
    thread.remove_member(c.member)
    backdated_data = c.write_data([note(c, "c-late", "written after removal, citing old deps")])
    c.control(p.SetRole(member=b.member, role="reader"))
    backdated_admit = c.invite_create(role="writer", expiry=now_ms() + 60_000, inviter="p")
    decisions = []
    for observer in (thread.replica, b.replica, auditor(thread.thread, alice, bob)):
        sync(thread.replica, observer)
        sync(c.replica, observer)
        decided = [observer.decisions[op.hash] for op in c.replica.admitted[-3:]]
        assert all(d.status == "refused" for d in decided), decided
        assert observer.snapshot().roles[b.member] == "writer", "the backdated demotion failed"
        decisions.append((observer.snapshot(), tuple(decided)))
    assert len({d for d in decisions}) == 1
    assert backdated_data.hash in {op.hash for op in c.replica.admitted}
    assert backdated_admit.public_key not in {i[0] for i in decisions[0][0].invites}


def test_demoted_writer_backdating_is_judged_by_the_demotion(thread: ThreadWriter, bob: Party):
    b = join(thread, bob)
    b.write_data([note(b, "b1")])
    sync(b.replica, thread.replica)
    thread.set_role(b.member, "reader")
    late = b.write_data([note(b, "b2", "concurrent with my demotion")])
    for observer in (thread.replica, auditor(thread.thread, bob)):
        sync(thread.replica, observer)
        sync(b.replica, observer)
        assert observer.decisions[late.hash].status == "refused"
        assert "reader may not insert" in observer.decisions[late.hash].reason


def test_an_op_whose_past_contains_the_authors_removal_is_refused(
    thread: ThreadWriter, alice: Party, bob: Party
):
    b = join(thread, bob)
    thread.remove_member(b.member)
    sync(thread.replica, b.replica)
    # Bob forges with the pre-removal epoch, citing everything (he saw the removal).
    stale = next(
        k
        for event in b.replica.control.timeline.keys_events
        if event.epoch == 1
        for k in b.replica.keyring.by_keys_op.get(event.op.hash, [])
    )
    forged = forge(b, kind="data", payload=p.data_doc([note(b, "b9")]), epoch=1, key=stale.data)
    for observer in (thread.replica, auditor(thread.thread, alice)):
        sync(thread.replica, observer)
        observer.ingest(forged.raw)
        decision = observer.decisions[forged.hash]
        assert decision.status == "refused"
        assert "not a member" in decision.reason or "older than" in decision.reason


def test_old_epoch_after_seeing_a_rotation_is_refused(thread: ThreadWriter, bob: Party):
    b = join(thread, bob)
    epoch1 = next(
        k
        for event in b.replica.control.timeline.keys_events
        if event.epoch == 1
        for k in b.replica.keyring.by_keys_op[event.op.hash]
    )
    thread.rotate()
    sync(thread.replica, b.replica)
    forged = forge(b, kind="data", payload=p.data_doc([note(b, "b1")]), epoch=1, key=epoch1.data)
    result = thread.replica.ingest(forged.raw)
    assert result.status == "refused"
    assert "older than epoch" in result.reason


def test_fork_is_detected_and_stops_the_device(thread: ThreadWriter, alice: Party, bob: Party):
    b = join(thread, bob)
    first = b.write_data([note(b, "b1", "one")])
    twin = forge(
        b,
        kind="data",
        payload=p.data_doc([note(b, "b1", "two")]),
        seq=first.seq,
        prev=first.prev,
        deps=list(first.deps),
    )
    later = b.write_data([note(b, "b2")])
    orders = [[first, later, twin], [twin, first, later], [later, twin, first]]
    outcomes = set()
    for order in orders:
        observer = auditor(thread.thread, alice, bob)
        sync(thread.replica, observer)
        statuses = [observer.ingest(op.raw).status for op in order]
        assert "fork" in statuses
        evidence = observer.fork_evidence()
        assert [e.device for e in evidence] == [b.device]
        assert evidence[0].seq == first.seq
        # Two ops that prove it (two ops at one slot, or one whose prev is not the op held
        # before it): only those are kept, not every op of the losing branch.
        one, two = sorted(evidence[0].ops, key=lambda op: op.seq)
        assert one.device == two.device == b.device
        assert (one.seq == two.seq and one.hash != two.hash) or (
            two.seq == one.seq + 1 and two.prev != one.hash
        )
        decided = tuple(
            observer.decisions.get(op.hash, None) and observer.decisions[op.hash].status
            for op in (first, later)
        )
        assert all(d in (None, "refused") for d in decided)
        outcomes.add((observer.snapshot(), observer.accepted_hashes()))
    assert len(outcomes) == 1


def test_forks_are_detected_every_time(thread: ThreadWriter, alice: Party, bob: Party):
    b = join(thread, bob)
    rng = random.Random(7)
    originals = [b.write_data([note(b, f"r{i}", str(i))]) for i in range(30)]
    base = auditor(thread.thread, alice, bob)
    sync(thread.replica, base)
    for trial in range(100):
        victim = rng.choice(originals)
        twin = forge(
            b,
            kind="data",
            payload=p.data_doc([note(b, "x", str(trial))]),
            seq=victim.seq,
            prev=victim.prev,
            deps=list(victim.deps),
        )
        observer = auditor(thread.thread, alice, bob)
        for op in thread.replica.admitted:
            observer.ingest(op.raw)
        ops = [*originals, twin]
        rng.shuffle(ops)
        for op in ops:
            observer.ingest(op.raw)
        assert observer.forks == {b.device: victim.seq}, trial
        assert all(
            observer.decisions[o.hash].status == "refused"
            for o in originals
            if o.seq >= victim.seq and o.hash in observer.decisions
        )


def test_ops_arriving_before_their_dependencies_wait(
    thread: ThreadWriter, alice: Party, bob: Party
):
    b = join(thread, bob)
    ops = [b.write_data([note(b, f"n{i}")]) for i in range(5)]
    observer = auditor(thread.thread, alice, bob)
    sync(thread.replica, observer)
    results = [observer.ingest(op.raw) for op in reversed(ops)]
    assert [r.status for r in results[:-1]] == ["pending"] * 4
    assert results[-1].status == "accepted"
    assert len(results[-1].decided) == 5
    assert all(observer.decisions[op.hash].status == "accepted" for op in ops)
    assert observer.ingest(ops[2].raw).status == "duplicate"


def test_ops_waiting_for_their_past_are_capped(
    thread: ThreadWriter, alice: Party, bob: Party, monkeypatch: pytest.MonkeyPatch
):
    b = join(thread, bob)
    ops = [b.write_data([note(b, f"n{i}", "x" * 500)]) for i in range(6)]
    observer = auditor(thread.thread, alice, bob)
    sync(thread.replica, observer)
    # Room for two waiting ops: the third is turned away, not kept.
    monkeypatch.setattr(Replica, "MAX_PENDING_BYTES", len(ops[5].raw) * 2 + 10)
    results = [observer.ingest(op.raw) for op in reversed(ops[1:])]
    assert [r.status for r in results] == ["pending", "pending", "dropped", "dropped", "dropped"]
    assert len(observer.pending) == 2
    # Once the past arrives in order, everything is accepted and the room is free again.
    for op in ops:
        assert observer.ingest(op.raw).status in {"accepted", "duplicate"}
    assert all(observer.decisions[op.hash].status == "accepted" for op in ops)
    assert observer.pending == {}
    assert observer.pending_bytes == 0


def test_hostile_payloads_with_valid_signatures_are_refused_with_reasons(
    thread: ThreadWriter, bob: Party
):
    b = join(thread, bob)
    cases = [
        (b"\xff\xff not cbor", "data payload"),
        (codec.encode({"rows": []}), "schema"),
        (codec.encode({"rows": [], "schema": {}}), "data rows"),
        (
            codec.encode(
                {
                    "rows": [{"table": "*", "pk": "x", "action": "upsert", "cols": {}}],
                    "schema": {},
                }
            ),
            "table",
        ),
        (
            codec.encode(
                {"rows": [{"table": "t", "pk": "x", "action": "drop", "cols": {}}], "schema": {}}
            ),
            "action",
        ),
        (
            codec.encode(
                {
                    "rows": [{"table": "t", "pk": "x", "action": "upsert", "cols": {"a": [1]}}],
                    "schema": {},
                }
            ),
            "cols",
        ),
        (codec.encode({"rows": [], "schema": {"App!": "1"}}), "app name"),
        (codec.encode({"rows": [], "schema": {"notes": 3}}), "version"),
    ]
    for payload, reason in cases:
        op = forge(b, kind="data", payload=payload)
        result = thread.replica.ingest(op.raw)
        assert result.status == "refused", result
        assert reason in result.reason
        b.replica.ingest(op.raw)
    bad_control = forge(b, kind="control", payload={"type": "launch_missiles"})
    result = thread.replica.ingest(bad_control.raw)
    assert result.status == "refused"
    assert "unknown type" in result.reason


def test_a_removal_reaches_back_over_concurrent_ops_ordered_before_it(
    thread: ThreadWriter, alice: Party, bob: Party, carol: Party
):
    """The removed admin's backdated control op is ready (and ordered) before the removal,
    because the removal also waits for a writer's op the admin never saw: the fold restarts
    with the removal in force from the start, and the backdated op is refused."""
    b = join(thread, bob)
    c = join(thread, carol, role="admin")
    for replica in (b.replica, c.replica):
        sync(thread.replica, replica)
    writer_op = b.control(p.SetAddresses(addrs=("/ip4/10.0.0.2/tcp/4001",)))
    sync(b.replica, thread.replica)
    removal, _rotation = thread.remove_member(c.member)
    backdated = c.set_role(b.member, "reader")
    assert not backdated.in_past(removal.device, removal.seq)
    assert not backdated.in_past(writer_op.device, writer_op.seq)
    outcomes = set()
    for observer in (thread.replica, b.replica, auditor(thread.thread, alice, bob)):
        sync(thread.replica, observer)
        sync(c.replica, observer)
        order = [op.hash for op in observer.control.order]
        assert order.index(backdated.hash) < order.index(removal.hash)
        assert observer.control.restarts >= 1
        assert observer.decisions[backdated.hash].status == "refused"
        assert observer.snapshot().roles[b.member] == "writer"
        outcomes.add((observer.snapshot(), observer.decisions[backdated.hash]))
    assert len(outcomes) == 1
