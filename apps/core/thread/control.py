"""Control resolution: a set of control and keys ops in, decisions and the thread's state out.

Control ops are put in one total order: a topological order of their causal graph in which,
among ops that are ready, the author of higher rank goes first, then the lower hybrid-clock
stamp, then the lower hash. They are folded in that order; each is checked against the state at
its place *and* against its author's standing in its own causal context, so a member can neither
use a role it had not yet seen granted nor act after it saw its removal.

**Restrictions** make removals and demotions bite on ops their author did not see: when a
removal, role change, ownership transfer or device revocation is accepted, every op of the
affected member (or device) that is concurrent with it must also be allowed under the new role
(removed: nothing is allowed), and so must every redemption of an invite that member created.
When such a restriction is placed after an op it restricts, the fold restarts with the
restriction in force from the start; every restart adds a restriction or drops one that turned
out refused, so it ends.

An invite admits as many redemptions as its cap says (one unless it says otherwise; ADR 14): the
first ones in control order, so every replica admits the same members; the rest are refused as
"used up". An invite for several people may grant only a role the policy marks ``open``.

Limits every replica applies alike (issue 9): at most ``MAX_DEVICES`` devices per thread and
``MAX_MEMBER_DEVICES`` per member, ever (version vectors and ``deps`` name every device, and
peers refuse ops with more than 4 096 of them); row tags unique among members; a device is
certified only with its own proof of possession; a keys op is sealed to exactly the members
active in its causal past, by a role the policy lets rotate.

Every function here is pure in the op set: replicas holding the same ops (and the same keys)
decide the same.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from apps.core.thread import payloads as p
from apps.core.thread.control_actions import (
    ACCEPTED,
    MAX_DEVICES,
    MAX_MEMBER_DEVICES,
    ControlActions,
    genesis_action,
    invite_state,
)
from apps.core.thread.keyring import Opener, refused
from apps.core.thread.op import KIND_CONTROL, KIND_KEYS, Op
from apps.core.thread.state import InviteState, ThreadState
from apps.core.thread.store import Decision
from apps.core.thread.timeline import Restriction, Restrictions, Timeline, concurrent

__all__ = [
    "ACCEPTED",
    "EQUIVOCATED",
    "MAX_DEVICES",
    "MAX_MEMBER_DEVICES",
    "ControlResolution",
    "Restriction",
    "Restrictions",
    "Timeline",
    "concurrent",
    "control_resolve",
    "genesis_action",
    "invite_state",
]

MAX_RESTARTS = 10_000

EQUIVOCATED = "the device equivocated (signed two different ops at one place)"


@dataclass
class ControlResolution:
    state: ThreadState
    order: list[Op]
    decisions: dict[bytes, Decision]
    actions: dict[bytes, p.Control | p.Keys]
    timeline: Timeline
    restrictions: Restrictions
    restarts: int = 0
    fold: _Fold | None = None
    # How many decisions ``opaque`` has looked at, and whether one of them was opaque.
    _opaque: tuple[int, bool] = field(default=(0, False), repr=False)

    def extend(self, op: Op, refusal: str | None = None) -> bool:
        """Add a control op without folding again, where the full fold would place it last:
        it comes causally after every control op so far (the usual case: then it is concurrent
        with none of them), or the fold would have picked each op it is concurrent with before
        it (``_Fold.lands_last``). Then the result is the full fold's. False when that does not
        hold, or when the op is a removal that an op placed before it escaped (the fold would
        restart): this resolution must then be dropped and everything folded again.
        ``refusal``: why the op is refused whatever the fold says (its static checks)."""
        fold = self.fold
        if fold is None:
            return False
        fork = fold.forks.get(op.device)
        if fork is not None and op.seq >= fork:
            return False  # a full fold keeps it out of the order (``control_resolve``)
        after_all = all(
            not chain or chain[-1] is op or op.in_past(device, chain[-1].seq)
            for device, chain in fold.by_device.items()
        )
        if not after_all and not fold.lands_last(op):
            return False
        if refusal is not None:
            fold.refusals[op.hash] = refusal
        placed = len(fold.accepted_restrictions)
        fold.place(op)
        # Only an op concurrent with others can be escaped by one of them (placed before it,
        # not seeing it), and only its own restrictions: the earlier ones were checked when
        # their fold ended or their op was added, and nothing is placed before them since (the
        # op is last). Checking all of them again would cost the whole history per op.
        added = fold.accepted_restrictions.placed[placed:]
        return after_all or not added or _first_violation(fold, set(), added) is None

    @property
    def opaque(self) -> bool:
        """Whether some control op could not be read here: this replica's view of who is a
        member may be wrong, so it must not act on it (admit, certify)."""
        # Decisions are only added (a fold decides each op once), so only new ones are read.
        seen, found = self._opaque
        count = len(self.decisions)
        if count != seen:
            if not found:
                values = reversed(self.decisions.values())
                found = any(next(values).status == "opaque" for _ in range(count - seen))
            self._opaque = (count, found)
        return found


class _Fold(ControlActions):
    """One pass over the control ops in control order."""

    def __init__(
        self,
        thread: bytes,
        by_device: dict[bytes, list[Op]],
        opener: Opener,
        refusals: Mapping[bytes, str],
        forks: Mapping[bytes, int],
        forced: list[Restriction],
    ) -> None:
        self.thread = thread
        self.by_device = by_device
        self.opener = opener
        self.refusals = dict(refusals)  # ``extend`` adds the refusals of ops it adds
        self.forks = forks
        self.state = ThreadState(thread=thread)
        self.timeline = Timeline()
        self.decisions: dict[bytes, Decision] = {}
        self.actions: dict[bytes, p.Control | p.Keys] = {}
        self.restrictions = Restrictions(forced)
        self.accepted_restrictions = Restrictions()
        # Whether this is the resolution's first pass (no restart): ``lands_last`` needs it.
        self.first_pass = True
        self.order: list[Op] = []
        # Each op's place in the order, and its author's rank when it was picked (``lands_last``).
        self.position: dict[bytes, int] = {}
        self.ranks: list[int] = []
        # Accepted redemptions in control order, by the creator of their invite (the restart
        # check: a restriction of the creator reaches the redemptions that did not see it).
        self.redemptions: dict[bytes, list[tuple[Op, InviteState]]] = {}

    def _predecessors(self, op: Op) -> list[Op]:
        preds = []
        own = self.by_device.get(op.device, [])
        i = bisect.bisect_left(own, op.seq, key=lambda o: o.seq)
        if i > 0:
            preds.append(own[i - 1])
        for device, seq in op.deps:
            chain = self.by_device.get(device)
            if chain:
                j = bisect.bisect_right(chain, seq, key=lambda o: o.seq)
                if j > 0:
                    preds.append(chain[j - 1])
        return preds

    def _rank(self, op: Op) -> int:
        member = self.state.device_member(op.device)
        return self.state.policy.rank(self.state.role_of(member))

    def run(self) -> None:
        ops = [op for chain in self.by_device.values() for op in chain]
        waiting: dict[bytes, int] = {}
        children: dict[bytes, list[Op]] = {}
        for op in ops:
            preds = self._predecessors(op)
            waiting[op.hash] = len(preds)
            for pred in preds:
                children.setdefault(pred.hash, []).append(op)
        ready = [op for op in ops if waiting[op.hash] == 0]
        while ready:
            best = min(ready, key=lambda o: (-self._rank(o), o.hlc, o.hash))
            ready.remove(best)
            self.place(best, in_chain=True)
            for child in children.get(best.hash, ()):
                waiting[child.hash] -= 1
                if waiting[child.hash] == 0:
                    ready.append(child)

    def place(self, op: Op, *, in_chain: bool = False) -> None:
        """Put ``op`` next in the order and decide it."""
        if not in_chain:
            self.by_device.setdefault(op.device, []).append(op)
        self.position[op.hash] = len(self.order)
        self.ranks.append(self._rank(op))
        self.order.append(op)
        decision = self.decisions[op.hash] = self._apply(op)
        action = self.actions.get(op.hash)
        if decision == ACCEPTED and isinstance(action, p.RedeemInvite):
            invite = self.state.invites.get(action.invite)
            if invite is not None:  # always (a redemption of no invite is refused)
                self.redemptions.setdefault(invite.creator, []).append((op, invite))

    def lands_last(self, op: Op) -> bool:
        """Whether a full fold would place ``op`` (new, concurrent with some ops folded) after
        all of them: at every step since its past was placed, the op picked then beat it (its
        author's rank then, its stamp, its hash), so its being ready changed nothing.

        Its author's rank must be the same at each of those steps: no event since touched its
        device, its member or the policy (else: False, and the caller folds again). Only for
        a resolution that did not restart: with restarts, its earlier passes may order
        differently once the op is among them."""
        if not self.first_pass:
            return False
        chain = self.by_device.get(op.device)
        if chain and not op.in_past(op.device, chain[-1].seq):
            return False  # not the next op of its chain (a fork): the caller folds again
        start = 1 + max((self.position[p.hash] for p in self._predecessors(op)), default=-1)
        tl, device = self.timeline, self.state.devices.get(op.device)
        histories = [tl.device_events.get(op.device), tl.policy_events]
        if device is not None:
            histories.append(tl.member_events.get(device.member))
        for events in histories:
            if events and self.position[events[-1][0].hash] >= start:
                return False
        key = (-self._rank(op), op.hlc, op.hash)
        ranks, order = self.ranks, self.order
        return all((-ranks[i], order[i].hlc, order[i].hash) < key for i in range(start, len(order)))

    # -- one op ---------------------------------------------------------------------------------

    def _apply(self, op: Op) -> Decision:
        if op.hash in self.refusals:
            return refused(self.refusals[op.hash])
        fork = self.forks.get(op.device)
        if fork is not None and op.seq >= fork:
            return refused(EQUIVOCATED)
        if not self.state.created:
            return self._genesis(op)
        if op.seq == 1 and op.epoch == 0 and not op.deps and op.kind == KIND_CONTROL:
            return refused("the thread already has a create op")

        member = self.state.device_member(op.device)
        if member is None or self.timeline.device_member_in_past(op.device, op) != member:
            return refused("the device is not certified for an active member")
        roles = [self.state.role_of(member), self.timeline.role_in_past(member, op)]
        roles += self.restrictions.roles(op, member)
        if any(role is None for role in roles):
            return refused("the author is not a member where this op stands")

        if op.kind == KIND_KEYS:
            action: p.Control | p.Keys | Decision = self.opener.keys(op)
        else:
            newest, candidates = self.timeline.epoch_in_past(op)
            if op.epoch < newest:
                return refused(f"epoch {op.epoch} is older than epoch {newest} it has seen")
            if not candidates:
                return refused(f"no usable key epoch {op.epoch} in the op's causal past")
            action = self.opener.control(op, candidates)
        if isinstance(action, Decision):
            return action
        reason = self._check(op, member, roles, action)  # type: ignore[arg-type]
        if reason:
            return refused(reason)
        self.actions[op.hash] = action
        return ACCEPTED


def control_resolve(
    thread: bytes,
    control_ops: Iterable[Op],
    *,
    opener: Opener,
    refusals: Mapping[bytes, str],
    forks: Mapping[bytes, int],
) -> ControlResolution:
    by_device: dict[bytes, list[Op]] = {}
    equivocated: list[Op] = []
    for op in control_ops:
        fork = forks.get(op.device)
        if fork is not None and op.seq >= fork:
            # Which branch of a forked device a replica holds past the fork is arbitrary: such
            # ops are refused and kept out of the order, so they cannot shape it either (an op
            # whose deps reach into the branch would otherwise be ordered after it on some
            # replicas only, and a removal's restart go differently there).
            equivocated.append(op)
            continue
        by_device.setdefault(op.device, []).append(op)
    for chain in by_device.values():
        chain.sort(key=lambda o: o.seq)
    forced: list[Restriction] = []
    banned: set[bytes] = set()
    for restarts in range(MAX_RESTARTS):
        fold = _Fold(thread, by_device, opener, refusals, forks, forced)
        fold.first_pass = restarts == 0
        fold.run()
        dropped = [r for r in forced if fold.decisions[r.op.hash] != ACCEPTED]
        if dropped:
            banned.update(r.op.hash for r in dropped)
            forced = [r for r in forced if r.op.hash not in banned]
            continue
        violation = _first_violation(fold, {r.op.hash for r in forced} | banned)
        if violation is None:
            for op in equivocated:
                fold.decisions[op.hash] = refused(EQUIVOCATED)
            return ControlResolution(
                state=fold.state,
                order=fold.order,
                decisions=fold.decisions,
                actions=fold.actions,
                timeline=fold.timeline,
                restrictions=fold.accepted_restrictions,
                restarts=restarts,
                fold=fold,
            )
        forced.append(violation)
    raise RuntimeError("control resolution did not settle")  # pragma: no cover


def _first_violation(
    fold: _Fold, skip: set[bytes], restrictions: Iterable[Restriction] | None = None
) -> Restriction | None:
    """The first accepted restriction, in control order, that an earlier accepted op escaped:
    an op of the restricted member or device, or a redemption of the member's invite.
    ``restrictions``: only these (default: every accepted one).

    Only the restricted member's (or device's) own ops and its invites' redemptions can escape a
    restriction, and of those only the ones its op had not seen: each restriction looks at
    those, not at the whole order."""
    position = fold.position
    placed = fold.accepted_restrictions if restrictions is None else restrictions
    for restriction in sorted(placed, key=lambda r: position[r.op.hash]):
        if restriction.op.hash not in skip and _escaped(fold, restriction):
            return restriction
    return None


def _escaped(fold: _Fold, restriction: Restriction) -> bool:
    """Whether an accepted op placed before ``restriction`` escaped it."""
    position = fold.position
    place, cause = position[restriction.op.hash], restriction.op
    if restriction.device is not None:
        devices: Iterable[bytes] = (restriction.device,)
    else:
        devices = fold.timeline.member_devices.get(restriction.member, ())
    for device in devices:
        # The device's ops in seq order, which is their control order.
        chain = fold.by_device.get(device, [])
        # The device's ops its op had seen cannot be concurrent with it.
        seen = cause.seq if device == cause.device else cause.deps_map.get(device, 0)
        for op in chain[bisect.bisect_right(chain, seen, key=lambda o: o.seq) :]:
            at = position.get(op.hash)
            if at is None or at >= place:
                break
            if fold.decisions[op.hash] != ACCEPTED or op.hash not in fold.actions:
                continue
            member = fold.timeline.device_member_in_past(op.device, op)
            if member is not None and restriction.applies(op, member):
                return True
    if restriction.device is None:
        policy = fold.state.policy
        for op, inv in fold.redemptions.get(restriction.member, ()):
            if position[op.hash] >= place:
                break
            if restriction.applies_to_invite(op, inv.creator) and (
                restriction.role is None or not policy.may_invite(restriction.role, inv.role)
            ):
                return True
    return False
