"""Open invites (ADR 14): an invite for several people (a cap) or for anyone with the link (no
cap), each redemption an op of its own, the first ``cap`` in control order admitted on every
replica; only at roles the policy opens to such links; revoke and expiry as for one person."""

from __future__ import annotations

import copy
import dataclasses
import random

import pytest

from apps.core.thread import codec
from apps.core.thread import payloads as p
from apps.core.thread.hlc import HybridClock
from apps.core.thread.op import Op
from apps.core.thread.policy import READER, WRITER, Policy, PolicyError, default_policy
from apps.core.thread.replica import Replica
from apps.core.thread.writer import RedemptionRequest, ThreadWriter, WriteError, redemption_request
from apps.messaging.policy import messaging_policy
from tests.core.thread.conftest import Party, auditor, forge, join, now_ms, sync
from tests.core.thread.test_convergence import fingerprint

USED_UP = "the invite was used up"
INVITE_KEY = b"\x07" * 32


def request_of(invite, party: Party) -> RedemptionRequest:
    return redemption_request(invite, master_secret=party.master, device_key=party.device)


def newcomers(count: int) -> list[Party]:
    return [Party(f"newcomer{i}") for i in range(count)]


def invite_row(replica: Replica, key: bytes) -> tuple:
    """The invite's entry in the snapshot: (key, role, status, used, members it admitted)."""
    return next(row for row in replica.snapshot().invites if row[0] == key)


@pytest.fixture
def thread(alice: Party) -> ThreadWriter:
    return ThreadWriter.create(master_secret=alice.master, device_key=alice.device, name="Shop")


# --- the op's document ----------------------------------------------------------------------


def test_a_single_use_invite_is_written_exactly_as_before():
    action = p.CreateInvite(invite=INVITE_KEY, role=WRITER, expiry=1_800_000_000_000)
    before = {
        "type": "create_invite",
        "invite": INVITE_KEY,
        "role": WRITER,
        "expiry": 1_800_000_000_000,
    }
    assert p.control_doc(action) == before
    assert codec.encode(p.control_doc(action)) == codec.encode(before)
    # And a document written before open invites existed means one use, no label.
    assert p.control_parse(before) == action
    assert (action.uses, action.label) == (1, "")


@pytest.mark.parametrize(("uses", "label"), [(2, ""), (1_000_000, "shop followers"), (None, "x")])
def test_open_invites_round_trip(uses, label):
    action = p.CreateInvite(INVITE_KEY, READER, 1_800_000_000_000, uses=uses, label=label)
    doc = p.control_doc(action)
    assert doc["uses"] == uses
    assert ("label" in doc) == bool(label)
    assert p.control_parse(codec.decode(codec.encode(doc), max_size=4096)) == action


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("uses", 1),  # one use is written by leaving it out: one meaning, one encoding
        ("uses", 0),
        ("uses", -3),
        ("uses", 1_000_001),
        ("uses", True),
        ("uses", 2.0),
        ("uses", "5"),
        ("label", ""),
        ("label", " padded"),
        ("label", "two\nlines"),
        ("label", "x" * 81),
        ("label", b"bytes"),
        ("colour", "red"),
    ],
)
def test_bad_uses_and_labels_are_refused(field, value):
    doc = p.control_doc(p.CreateInvite(INVITE_KEY, READER, 1_800_000_000_000, uses=5))
    doc[field] = value
    with pytest.raises(p.PayloadError, match=field):
        p.control_parse(doc)


# --- the policy -------------------------------------------------------------------------------


def test_open_is_written_only_when_true_so_older_policies_encode_as_before():
    doc = default_policy().to_doc()
    assert {name for name, role in doc["roles"].items() if "open" in role} == {READER}
    assert doc["roles"][READER]["open"] is True
    older = copy.deepcopy(doc)
    del older["roles"][READER]["open"]
    parsed = Policy.from_doc(older)
    assert parsed.open_roles() == []
    assert codec.encode(parsed.to_doc()) == codec.encode(older)
    assert Policy.from_doc(doc).open_roles() == [READER]


@pytest.mark.parametrize("value", [False, 1, "yes", None])
def test_open_is_true_or_absent(value):
    doc = default_policy().to_doc()
    doc["roles"][WRITER]["open"] = value
    with pytest.raises(PolicyError, match="open"):
        Policy.from_doc(doc)


def test_built_in_policies_open_readers_and_conversations_writers_too():
    assert default_policy().open_roles() == [READER]
    assert sorted(messaging_policy().open_roles()) == [READER, WRITER]


# --- the fold ---------------------------------------------------------------------------------


def test_five_redemptions_of_a_cap_3_invite_admit_exactly_three(thread: ThreadWriter, alice: Party):
    invite = thread.invite_create(
        role=READER, expiry=now_ms() + 3_600_000, inviter="p", uses=3, label="shop followers"
    )
    people = newcomers(5)
    answers = []
    for person in people:
        try:
            thread.admit(request_of(invite, person))
        except WriteError as exc:
            answers.append(str(exc))
        else:
            answers.append("admitted")
    assert answers[:3] == ["admitted"] * 3
    assert len(answers) == 5
    assert all(USED_UP in answer for answer in answers[3:])
    roles = thread.replica.snapshot().roles
    assert [roles.get(person.member(thread.thread)) for person in people] == [READER] * 3 + [
        None
    ] * 2
    admitted = tuple(sorted(person.member(thread.thread) for person in people[:3]))
    assert invite_row(thread.replica, invite.public_key) == (
        invite.public_key,
        READER,
        "used up",
        3,
        admitted,
    )
    state = thread.replica.control.state.invites[invite.public_key]
    assert (state.uses, state.label) == (3, "shop followers")
    # Both refused redemptions stay in the log with their reason: no replica admits a fourth.
    reasons = [d.reason for d in thread.replica.decisions.values() if d.status == "refused"]
    assert reasons == [USED_UP, USED_UP]
    fresh = auditor(thread.thread, alice)
    sync(thread.replica, fresh)
    assert fingerprint(fresh) == fingerprint(thread.replica)


def test_an_invite_without_a_cap_stays_open(thread: ThreadWriter):
    invite = thread.invite_create(role=READER, expiry=now_ms() + 3_600_000, inviter="p", uses=None)
    for person in newcomers(4):
        thread.admit(request_of(invite, person))
    assert invite_row(thread.replica, invite.public_key)[2:4] == ("open", 4)


def test_a_single_use_invite_is_redeemed_once_as_before(thread: ThreadWriter):
    invite = thread.invite_create(role=WRITER, expiry=now_ms() + 3_600_000, inviter="p")
    first, second = newcomers(2)
    thread.admit(request_of(invite, first))
    with pytest.raises(WriteError, match="already used"):
        thread.admit(request_of(invite, second))
    row = invite_row(thread.replica, invite.public_key)
    assert row[2:] == ("redeemed", 1, (first.member(thread.thread),))
    assert thread.replica.control.state.invites[invite.public_key].redeemed_by == first.member(
        thread.thread
    )


def test_the_same_member_twice_is_already_a_member(thread: ThreadWriter):
    invite = thread.invite_create(role=READER, expiry=now_ms() + 3_600_000, inviter="p", uses=5)
    (person,) = newcomers(1)
    thread.admit(request_of(invite, person))
    with pytest.raises(WriteError, match="already a member"):
        thread.admit(request_of(invite, person))
    assert invite_row(thread.replica, invite.public_key)[2:4] == ("open", 1)


def test_a_multi_use_invite_only_at_an_open_role(thread: ThreadWriter):
    for uses in (2, None):
        with pytest.raises(WriteError, match="lets no invite for several people grant 'writer'"):
            thread.invite_create(role=WRITER, expiry=now_ms() + 60_000, inviter="p", uses=uses)
    # The creator must still be allowed to invite at the role.
    policy = default_policy().to_doc()
    policy["roles"]["admin"]["open"] = True
    thread.control(p.SetPolicy(policy=Policy.from_doc(policy)))
    with pytest.raises(WriteError, match="may not invite at role 'owner'"):
        thread.invite_create(role="owner", expiry=now_ms() + 60_000, inviter="p", uses=2)
    thread.invite_create(role="admin", expiry=now_ms() + 60_000, inviter="p", uses=2)


def test_revoke_and_expiry_end_a_multi_use_invite(thread: ThreadWriter, alice: Party):
    first, second, third = newcomers(3)
    revoked = thread.invite_create(role=READER, expiry=now_ms() + 60_000, inviter="p", uses=10)
    thread.admit(request_of(revoked, first))
    thread.control(p.RevokeInvite(invite=revoked.public_key))
    with pytest.raises(WriteError, match="the invite was revoked"):
        thread.admit(request_of(revoked, second))
    assert invite_row(thread.replica, revoked.public_key)[2:4] == ("revoked", 1)

    now = [now_ms()]
    thread.clock = HybridClock(thread.clock.last, wall=lambda: now[0])
    expiring = thread.invite_create(role=READER, expiry=now[0] + 1_000, inviter="p", uses=None)
    thread.admit(request_of(expiring, second))
    now[0] += 2_000
    with pytest.raises(WriteError, match="the invite had expired"):
        thread.admit(request_of(expiring, third))
    assert invite_row(thread.replica, expiring.public_key)[2:4] == ("open", 1)


def test_closing_a_role_to_open_invites_stops_the_links_already_out(thread: ThreadWriter):
    first, second, third = newcomers(3)
    link = thread.invite_create(role=READER, expiry=now_ms() + 60_000, inviter="p", uses=None)
    single = thread.invite_create(role=READER, expiry=now_ms() + 60_000, inviter="p")
    thread.admit(request_of(link, first))
    closed = default_policy().to_doc()
    del closed["roles"][READER]["open"]
    thread.control(p.SetPolicy(policy=Policy.from_doc(closed)))
    with pytest.raises(WriteError, match="no longer lets an invite for several people"):
        thread.admit(request_of(link, second))
    thread.admit(request_of(single, third))  # an invite for one person is not concerned
    assert thread.replica.snapshot().roles.get(third.member(thread.thread)) == READER


def test_a_multi_use_invite_loses_force_with_its_creator(thread: ThreadWriter, bob: Party):
    admin = join(thread, bob, "admin")
    link = admin.invite_create(role=READER, expiry=now_ms() + 60_000, inviter="p", uses=5)
    sync(admin.replica, thread.replica)
    first, second = newcomers(2)
    thread.admit(request_of(link, first))
    thread.remove_member(bob.member(thread.thread))
    with pytest.raises(WriteError, match="lost its force"):
        thread.admit(request_of(link, second))


# --- hostile members, partitions --------------------------------------------------------------


def forged_redeem(writer: ThreadWriter, request: RedemptionRequest) -> Op:
    """A redeem op the writer's device signs without its node's checks, taken into its replica
    (so the next one chains on it)."""
    action = p.RedeemInvite(**dataclasses.asdict(request))
    op = forge(writer, kind="control", payload=p.control_doc(action))
    writer.replica.ingest(op.raw)
    return op


def test_redemptions_past_the_cap_on_both_sides_of_a_partition_admit_cap_members_everywhere(
    thread: ThreadWriter, alice: Party, bob: Party
):
    admin = join(thread, bob, "admin")
    invite = thread.invite_create(role=READER, expiry=now_ms() + 3_600_000, inviter="p", uses=3)
    sync(thread.replica, admin.replica)
    people = newcomers(6)
    # Cut off from each other: the owner's node admits two people honestly ...
    for person in people[:2]:
        thread.admit(request_of(invite, person))
    # ... and the admin's modified node signs four redemptions, the last one past the cap even
    # in its own view (its replica refuses it there, and keeps it in the log).
    forged = [forged_redeem(admin, request_of(invite, person)) for person in people[2:]]
    assert [admin.replica.decisions[op.hash].status for op in forged] == ["accepted"] * 3 + [
        "refused"
    ]
    assert admin.replica.decisions[forged[-1].hash].reason == USED_UP

    ops = {op.hash: op for op in thread.replica.admitted + admin.replica.admitted}
    ops_list = sorted(ops.values(), key=lambda op: op.hash)
    orders = [
        thread.replica.admitted + admin.replica.admitted,
        admin.replica.admitted + thread.replica.admitted,
        list(reversed(ops_list)),
    ]
    rng = random.Random(14)
    for _ in range(5):
        shuffled = list(ops_list)
        rng.shuffle(shuffled)
        orders.append(shuffled)
    prints = []
    for order in orders:
        replica = auditor(thread.thread, alice, bob)
        for op in order:
            replica.ingest(op.raw)
        prints.append(fingerprint(replica))
    # The two nodes themselves, once they have each other's ops, agree too.
    sync(admin.replica, thread.replica)
    sync(thread.replica, admin.replica)
    prints += [fingerprint(thread.replica), fingerprint(admin.replica)]
    assert all(one == prints[0] for one in prints)

    snapshot, decisions = prints[0][0], prints[0][1]
    members = {person.member(thread.thread) for person in people} & snapshot.roles.keys()
    assert len(members) == 3
    # The order decides which: the owner's ops rank first, then the admin's chain in order.
    assert members == {person.member(thread.thread) for person in people[:3]}
    assert invite_row(thread.replica, invite.public_key)[2:4] == ("used up", 3)
    assert [decisions[op.hash] for op in forged[1:]] == [("refused", USED_UP)] * 3


def test_a_forged_multi_use_invite_at_a_closed_role_or_in_a_second_encoding_is_refused(
    thread: ThreadWriter, bob: Party
):
    admin = join(thread, bob, "admin")
    base = {"type": "create_invite", "role": READER, "expiry": now_ms() + 60_000}
    closed = forge(
        admin,
        kind="control",
        payload={**base, "invite": b"\x01" * 32, "role": WRITER, "uses": None},
    )
    result = admin.replica.ingest(closed.raw)
    assert (result.status, result.reason) == (
        "refused",
        "the policy lets no invite for several people grant 'writer'",
    )
    second = forge(admin, kind="control", payload={**base, "invite": b"\x02" * 32, "uses": 1})
    result = admin.replica.ingest(second.raw)
    assert result.status == "refused"
    assert "uses" in result.reason
    assert admin.replica.snapshot().invites == thread.replica.snapshot().invites
