"""Incremental control resolution: a replica that extends its resolution op by op as frames
arrive (``ControlResolution.extend``), and folds again only when an op lands before ops already
folded, decides exactly what one fold of the whole control history from scratch decides,
whatever the frames and the order they come in."""

from __future__ import annotations

import contextlib
import dataclasses
import random
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.core.thread import control as control_module
from apps.core.thread import payloads as p
from apps.core.thread.control import ACCEPTED, Restriction, Restrictions, Timeline
from apps.core.thread.keyring import Opener
from apps.core.thread.op import Op
from apps.core.thread.replica import Replica
from apps.core.thread.resolve import ControlResolution, control_resolve
from apps.core.thread.writer import ThreadWriter, WriteError
from tests.core.thread.adversary import Adversary
from tests.core.thread.conftest import Party, auditor, join, sync
from tests.core.thread.simulation import Simulation


def _examples(count: int):
    """Hypothesis settings for these tests: ``count`` histories, the same ones every run."""
    return settings(
        max_examples=count,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow],
    )


def _causal(ops: list[Op]) -> list[Op]:
    """``ops`` in an order where each op comes after its past (seq, then deps), shuffled
    otherwise: what a peer sending its log sends."""
    return sorted(ops, key=lambda op: (sum(s for _, s in op.deps) + op.seq, op.device))


def _arranged(ops: list[Op], rng: random.Random, *, causal: bool) -> list[Op]:
    """In a causal order, or shuffled (ops then wait for their past)."""
    if causal:
        return _causal(ops)
    ops = list(ops)
    rng.shuffle(ops)
    return ops


def _frames(ops: list[Op], rng: random.Random) -> list[list[bytes]]:
    frames, i = [], 0
    while i < len(ops):
        size = rng.choice((1, 2, 3, 7, 32, 256))
        frames.append([op.raw for op in ops[i : i + size]])
        i += size
    return frames


def _naive_first_violation(fold, skip: set[bytes]) -> Restriction | None:
    """The restart rule as written down: every accepted op before each accepted restriction,
    checked against it (``control._first_violation`` looks only where one can be)."""
    position = {op.hash: i for i, op in enumerate(fold.order)}
    invites, policy = fold.state.invites, fold.state.policy
    for restriction in sorted(fold.accepted_restrictions, key=lambda r: position[r.op.hash]):
        if restriction.op.hash in skip:
            continue
        for op in fold.order[: position[restriction.op.hash]]:
            action = fold.actions.get(op.hash)
            if fold.decisions[op.hash] != ACCEPTED or action is None:
                continue
            member = fold.timeline.device_member_in_past(op.device, op)
            if member is not None and restriction.applies(op, member):
                return restriction
            if isinstance(action, p.RedeemInvite) and action.invite in invites:
                inv = invites[action.invite]
                if restriction.applies_to_invite(op, inv.creator) and (
                    restriction.role is None or not policy.may_invite(restriction.role, inv.role)
                ):
                    return restriction
    return None


def _from_scratch(replica: Replica):
    """The control decisions and state of one fold of everything ``replica`` holds, with
    nothing remembered from earlier folds (a new opener: no cached bodies or checks), and
    restarts found by the plain rule."""
    control = replica._control_ops
    with (
        mock.patch.object(control_module, "_first_violation", _naive_first_violation),
        mock.patch.object(Restrictions, "roles", _naive_roles),
        mock.patch.object(Restrictions, "invite_roles", _naive_invite_roles),
        mock.patch.object(Timeline, "epoch_in_past", _naive_epoch_in_past),
    ):
        resolution = _resolve_all(replica, control)
    return _view(resolution)


# The plain definitions that the indexes of ``timeline`` answer faster.


def _naive_roles(self: Restrictions, op: Op, member: bytes) -> list[str | None]:
    return [r.role for r in self.placed if r.applies(op, member)]


def _naive_invite_roles(self: Restrictions, op: Op, creator: bytes) -> list[str | None]:
    return [r.role for r in self.placed if r.applies_to_invite(op, creator)]


def _naive_epoch_in_past(self: Timeline, op: Op):
    newest, candidates = 0, []
    for event in self.keys_events:
        if not op.in_past(event.op.device, event.op.seq):
            continue
        newest = max(newest, event.epoch)
        if event.epoch == op.epoch and all(
            self.role_in_past(m, op) is not None for m in event.sealed & self.ever_removed
        ):
            candidates.append(event)
    return newest, candidates


def _resolve_all(replica: Replica, control: list[Op]) -> ControlResolution:
    return control_resolve(
        replica.thread,
        control,
        opener=Opener(replica.thread, replica.keyring),
        refusals={
            op.hash: reason
            for op in control
            if (reason := replica.store.refusal(op.hash)) is not None
        },
        forks=dict(replica.forks),
    )


def _view(resolution: ControlResolution):
    state = resolution.state
    return (
        [op.hash for op in resolution.order],
        {h: (d.status, d.reason) for h, d in resolution.decisions.items()},
        # The apps compared as specs: a writer's own replica holds the spec it wrote, whose
        # rules print in the order it wrote them, not in the order a parsed one has.
        dataclasses.replace(state.snapshot(), apps=()),
        state.apps,
        sorted((r.op.hash, r.member, r.device, r.role) for r in resolution.restrictions),
    )


def _incremental(replica: Replica):
    return _view(replica.control)


@_examples(60)
@given(
    seed=st.integers(0, 2**32 - 1),
    members=st.integers(2, 6),
    steps=st.integers(10, 60),
    causal=st.booleans(),
)
def test_frames_in_any_order_decide_as_one_fold(seed: int, members: int, steps: int, causal):
    sim = Simulation.run(seed, members=members, steps=steps)
    ops = sim.all_ops()
    rng = random.Random(seed)
    ops = _arranged(ops, rng, causal=causal)
    # Compared after every frame, not only at the end: a later fold must not mend an earlier
    # extension's mistake out of sight.
    _deliver_in_frames(sim.thread, sim.parties, ops, rng)


def _deliver_in_frames(
    thread: bytes, parties, ops: list[Op], rng: random.Random, replica: Replica | None = None
) -> Replica:
    """``replica``: one of hostile histories (their ops with deps left out wait for good)."""
    honest = replica is None
    replica = replica or auditor(thread, *parties)
    for frame in _frames(ops, rng):
        replica.ingest_many(frame)
        assert _incremental(replica) == _from_scratch(replica)
    assert not (honest and replica.pending)
    return replica


@_examples(30)
@given(
    seed=st.integers(0, 2**32 - 1),
    admins=st.integers(1, 3),
    writer_ops=st.integers(0, 3),
    backdated=st.integers(1, 4),
    how=st.sampled_from(("remove", "demote", "revoke")),
    causal=st.booleans(),
)
def test_removals_that_reach_back_decide_as_one_fold(
    seed: int, admins: int, writer_ops: int, backdated: int, how: str, causal: bool
):
    """Admins removed (demoted, or their device revoked) by the owner keep acting without
    hearing of it, while the removal also waits for a writer's ops they never saw: their ops
    are ready, and ordered, before the removal, and the fold must restart with it in force.
    Frames of such histories, in any order, decide as one fold from scratch."""
    rng = random.Random(seed)
    alice, bob = Party("alice"), Party("bob")
    owner = ThreadWriter.create(master_secret=alice.master, device_key=alice.device, name="t")
    b = join(owner, bob)
    others = [Party(f"admin{i}") for i in range(admins)]
    demoted = [join(owner, party, role="admin") for party in others]
    for writer in (b, *demoted):
        sync(owner.replica, writer.replica)
    for i in range(writer_ops):
        b.control(p.SetAddresses(addrs=(f"/ip4/10.0.0.{i}/tcp/4001",)))
    sync(b.replica, owner.replica)
    for admin in demoted:
        if how == "demote":
            owner.set_role(admin.member, "writer")
        elif how == "revoke":
            owner.revoke_device(admin.device)
        else:
            owner.remove_member(admin.member)
        for k in range(backdated):
            act = rng.choice(
                (
                    lambda admin=admin: admin.set_role(b.member, rng.choice(("reader", "writer"))),
                    lambda admin=admin, k=k: admin.set_name(f"name {k}"),
                    lambda admin=admin: admin.rotate(),
                )
            )
            with contextlib.suppress(WriteError):  # its own replica refused it: not sent
                act()
    ops: dict[bytes, Op] = {}
    for writer in (owner, b, *demoted):
        ops.update(writer.replica.by_hash)
    order = sorted(ops.values(), key=lambda op: (op.device, op.seq))
    order = _arranged(order, rng, causal=causal)
    parties = (alice, bob, *others)
    framed = _deliver_in_frames(owner.thread, parties, order, rng)
    whole = auditor(owner.thread, *parties)
    whole.ingest_many([op.raw for op in order])
    assert _incremental(framed) == _incremental(whole) == _from_scratch(whole)


@_examples(40)
@given(
    seed=st.integers(0, 2**32 - 1),
    hostile=st.integers(1, 2),
    steps=st.integers(20, 80),
    causal=st.booleans(),
)
def test_hostile_histories_decide_as_one_fold(seed: int, hostile: int, steps: int, causal: bool):
    """Forks, omitted deps, junk keys, split rotations, stale invites: what hostile members
    send, in frames in any order, decides as one fold from scratch (a forked device's ops past
    the fork stay out of the order, as there)."""
    sim = Adversary.run(seed, honest=2, hostile=hostile, steps=steps)
    ops = sorted(sim.all_ops(), key=lambda op: (op.device, op.seq, op.hash))
    rng = random.Random(seed)
    ops = _arranged(ops, rng, causal=causal)
    _deliver_in_frames(sim.thread, (), ops, rng, replica=sim.replica())


@_examples(15)
@given(seed=st.integers(0, 2**32 - 1))
def test_each_members_own_replica_matches_one_fold(seed: int):
    # Every member's replica took its own ops one by one (extending) and others' by sync.
    sim = Simulation.run(seed, members=4, steps=50)
    for writer in sim.writers:
        assert _incremental(writer.replica) == _from_scratch(writer.replica)


def test_one_writer_extends_and_never_folds_again():
    """A writer's own control ops come after everything it holds: each extends the fold."""
    sim = Simulation.run(7, members=1, steps=0)
    owner = sim.writers[0]
    folds = []
    original = owner.replica._resolve

    def counted():
        folds.append(1)
        return original()

    owner.replica._resolve = counted  # type: ignore[method-assign]
    for name in ("a", "b", "c", "d"):
        owner.set_name(name)
        owner.rotate()
    assert folds == []
    assert _incremental(owner.replica) == _from_scratch(owner.replica)


def test_a_concurrent_demotion_that_lands_last_checks_only_its_own_restriction():
    """An admin's demotion concurrent with the owner's many role changes is placed last
    (extended, no refold), and the restart check looks at its own restriction only, not at
    every restriction in the history: the same decisions as one fold from scratch."""
    alice, bob, carol, dave = (Party(name) for name in ("alice", "bob", "carol", "dave"))
    owner = ThreadWriter.create(master_secret=alice.master, device_key=alice.device, name="t")
    admin = join(owner, bob, role="admin")
    join(owner, carol)
    join(owner, dave)
    sync(owner.replica, admin.replica)
    for i in range(20):
        owner.set_role(carol.member(owner.thread), ("reader", "writer")[i % 2])
    admin.set_role(dave.member(owner.thread), "reader")  # not seeing the owner's 20 changes
    demotion = admin.replica.admitted[-1]
    folds, checked = [], []
    original_resolve, original_escaped = owner.replica._resolve, control_module._escaped

    def counted_resolve():
        folds.append(1)
        return original_resolve()

    def counted_escaped(fold, restriction):
        checked.append(restriction.op.hash)
        return original_escaped(fold, restriction)

    owner.replica._resolve = counted_resolve  # type: ignore[method-assign]
    with mock.patch.object(control_module, "_escaped", counted_escaped):
        assert owner.replica.ingest(demotion.raw).status == "accepted"
    assert folds == []
    assert checked == [demotion.hash]
    assert len(owner.replica.control.restrictions) == 21
    assert _incremental(owner.replica) == _from_scratch(owner.replica)
    assert owner.replica.snapshot().roles[dave.member(owner.thread)] == "reader"
