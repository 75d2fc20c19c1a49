"""Leaving and coming back (issue 11): a member who left, or was removed, is admitted again only
with an invite made after it departed, by an admitter who knew it departed; nothing it signs
after leaving counts. Every replica decides alike, whatever order the ops arrive in."""

from __future__ import annotations

import dataclasses
import random

import pytest

from apps.core.thread import payloads as p
from apps.core.thread.op import Op
from apps.core.thread.policy import READER
from apps.core.thread.rejoin import NOT_SEEN, OLD_INVITE
from apps.core.thread.replica import Replica
from apps.core.thread.writer import (
    RedemptionRequest,
    ThreadWriter,
    WriteError,
    redemption_request,
)
from tests.core.thread.conftest import Party, auditor, forge, join, now_ms, rid, sync
from tests.core.thread.test_convergence import fingerprint

HOUR_MS = 3_600_000


@pytest.fixture
def thread(alice: Party) -> ThreadWriter:
    return ThreadWriter.create(master_secret=alice.master, device_key=alice.device, name="Club")


def note(writer: ThreadWriter, text: str) -> Op:
    return writer.write_data([p.RowChange("notes", rid(writer, text), p.UPSERT, {"t": text})])


def readmit(admitter: ThreadWriter, party: Party, role: str = "writer") -> list[Op]:
    """A new invite from ``admitter``, redeemed for ``party`` (its same keys)."""
    invite = admitter.invite_create(role=role, expiry=now_ms() + HOUR_MS, inviter="peer")
    request = redemption_request(invite, master_secret=party.master, device_key=party.device)
    return admitter.admit(request)


def every_order(parties: list[Party], ops: list[Op], seeds: int = 6) -> Replica:
    """Deliver ``ops`` to fresh replicas in shuffled orders; all must decide alike. Returns
    one of them."""
    seen = []
    replica = None
    for seed in range(seeds):
        shuffled = list(ops)
        random.Random(seed).shuffle(shuffled)
        replica = auditor(ops[0].thread, *parties)
        for op in shuffled:
            replica.ingest(op.raw)
        seen.append(fingerprint(replica))
    assert all(f == seen[0] for f in seen), "replicas that hold the same ops decide alike"
    assert replica is not None
    return replica


def everything(*replicas: Replica) -> list[Op]:
    ops: dict[bytes, Op] = {}
    for replica in replicas:
        ops.update((op.hash, op) for op in replica.admitted)
    return list(ops.values())


def test_a_member_who_left_comes_back_with_a_new_invite(
    thread: ThreadWriter, alice: Party, carol: Party
):
    c = join(thread, carol)
    leave = c.control(p.Leave())
    sync(c.replica, thread.replica)
    assert thread.replica.control.state.role_of(c.member) is None
    readmit(thread, carol)
    sync(thread.replica, c.replica)
    assert c.replica.control.state.role_of(c.member) == "writer"
    back = note(c, "back again")
    sync(c.replica, thread.replica)
    assert thread.replica.decision(back.hash).status == "accepted"
    # The leave still stands in history: what Carol signed before coming back is unchanged.
    assert thread.replica.decision(leave.hash).status == "accepted"
    replica = every_order([alice, carol], everything(thread.replica, c.replica))
    assert replica.control.state.role_of(c.member) == "writer"


def test_a_removed_member_comes_back_when_someone_who_may_invite_asks_it(
    thread: ThreadWriter, alice: Party, bob: Party, carol: Party
):
    b = join(thread, bob, role="admin")
    c = join(thread, carol)
    thread.remove_member(c.member)
    sync(thread.replica, b.replica)
    readmit(b, carol, role="reader")
    sync(b.replica, thread.replica)
    assert thread.replica.control.state.role_of(c.member) == READER
    replica = every_order([alice, bob, carol], everything(thread.replica, b.replica))
    assert replica.control.state.role_of(c.member) == READER


def test_nothing_a_leaver_signs_after_leaving_counts(
    thread: ThreadWriter, alice: Party, carol: Party
):
    c = join(thread, carol)
    sync(thread.replica, c.replica)
    epoch, keys = c._usable_epoch()
    c.control(p.Leave())
    # A modified node writes on with the keys it still holds, a note and an invite of its own.
    late = forge(
        c,
        kind="data",
        payload=p.data_doc([p.RowChange("notes", rid(c, "late"), p.UPSERT, {"t": "late"})]),
        epoch=epoch,
        key=keys.data,
    )
    c.replica.ingest(late.raw)
    invite_of_its_own = forge(
        c,
        kind="control",
        payload=p.control_doc(p.CreateInvite(b"\x05" * 32, READER, now_ms() + HOUR_MS)),
        epoch=epoch,
        key=keys.control,
    )
    for op in [*everything(c.replica), late, invite_of_its_own]:
        thread.replica.ingest(op.raw)
    assert thread.replica.decision(late.hash).status == "refused"
    assert thread.replica.decision(invite_of_its_own.hash).status == "refused"
    assert b"\x05" * 32 not in thread.replica.control.state.invites
    with pytest.raises(WriteError):
        note(c, "the honest writer refuses too")


def joined_and_left(thread: ThreadWriter, party: Party, invite) -> RedemptionRequest:
    """``party`` joins with ``invite``, then leaves; its redemption request."""
    request = redemption_request(invite, master_secret=party.master, device_key=party.device)
    thread.admit(request)
    writer = ThreadWriter.for_member(
        Replica.for_members(thread.thread), master_secret=party.master, device_key=party.device
    )
    sync(thread.replica, writer.replica)
    writer.control(p.Leave())
    sync(writer.replica, thread.replica)
    assert thread.replica.control.state.role_of(request.member) is None
    return request


def test_the_invite_a_leaver_joined_with_does_not_bring_it_back(
    thread: ThreadWriter, alice: Party, carol: Party
):
    invite = thread.invite_create(role="writer", expiry=now_ms() + HOUR_MS, inviter="peer")
    request = joined_and_left(thread, carol, invite)
    with pytest.raises(WriteError, match="already used"):
        thread.admit(request)
    assert thread.replica.control.state.role_of(request.member) is None


def test_an_open_link_made_before_the_leave_does_not_bring_the_leaver_back(
    thread: ThreadWriter, alice: Party, carol: Party
):
    link = thread.invite_create(role=READER, expiry=now_ms() + HOUR_MS, inviter="peer", uses=None)
    request = joined_and_left(thread, carol, link)
    with pytest.raises(WriteError, match="made before this member left"):
        thread.admit(request)
    # A modified admitting node writes the redemption anyway: every replica refuses it.
    action = p.RedeemInvite(**dataclasses.asdict(request))
    redeem = forge(thread, kind="control", payload=p.control_doc(action))
    thread.replica.ingest(redeem.raw)
    assert thread.replica.decision(redeem.hash).reason == OLD_INVITE
    replica = every_order([alice, carol], everything(thread.replica))
    assert replica.control.state.role_of(request.member) is None
    # Another person still joins with the same link.
    dave = Party("dave")
    thread.admit(redemption_request(link, master_secret=dave.master, device_key=dave.device))
    assert thread.replica.control.state.role_of(dave.member(thread.thread)) == READER


def test_an_admission_by_someone_who_had_not_seen_the_leave_is_refused(
    thread: ThreadWriter, alice: Party, bob: Party, carol: Party
):
    """Carol (admin) leaves; Bob, a writer who had not heard, adds her back at once (with her
    keys: the two collude). Her leave goes first in control order (she outranks him), and his
    admission, which did not see it, brings her back on no replica."""
    b = join(thread, bob, role="writer")
    c = join(thread, carol, role="admin")
    for writer in (b, c):
        sync(thread.replica, writer.replica)
    leave = c.control(p.Leave())
    request = redemption_request(
        thread.invite_create(role=READER, expiry=now_ms() + HOUR_MS, inviter="peer"),
        master_secret=carol.master,
        device_key=carol.device,
    )
    sync(thread.replica, b.replica)
    # Bob's own replica still counts her a member: only a modified node writes this.
    add = forge(
        b,
        kind="control",
        payload=p.control_doc(
            p.AddMember(
                member=request.member,
                role=READER,
                device=request.device,
                device_cert=request.device_cert,
                device_proof=request.device_proof,
            )
        ),
    )
    assert not add.in_past(leave.device, leave.seq)
    b.replica.ingest(add.raw)
    ops = everything(thread.replica, b.replica, c.replica)
    replica = every_order([alice, bob, carol], ops)
    assert replica.decision(add.hash).reason == NOT_SEEN
    assert replica.control.state.role_of(c.member) is None
