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
from dataclasses import dataclass

from apps.core.thread import codec, crypto, invite, keys
from apps.core.thread import payloads as p
from apps.core.thread.appspec import MAX_APPS, AppSpec, compose, spec_problem
from apps.core.thread.keyring import MAX_PAYLOAD, KeysEvent, Opener, refused
from apps.core.thread.op import KIND_CONTROL, KIND_KEYS, Op
from apps.core.thread.policy import OWNER, Policy
from apps.core.thread.rejoin import rejoin_problem
from apps.core.thread.rowid import member_tag
from apps.core.thread.state import DeviceState, MemberState, ThreadState
from apps.core.thread.store import Decision

MAX_RESTARTS = 10_000
MAX_DEVICES = 1024
MAX_MEMBER_DEVICES = 16

ACCEPTED = Decision("accepted")
EQUIVOCATED = "the device equivocated (signed two different ops at one place)"


def concurrent(a: Op, b: Op) -> bool:
    return not a.in_past(b.device, b.seq) and not b.in_past(a.device, a.seq)


@dataclass(frozen=True)
class Restriction:
    """An accepted removal / role change / revocation and the ops it did not see."""

    op: Op
    member: bytes
    device: bytes | None  # None: every device of the member
    role: str | None  # the role those ops must also be allowed under; None: nothing allowed

    def applies(self, other: Op, member: bytes) -> bool:
        if self.device is not None and other.device != self.device:
            return False
        if self.device is None and member != self.member:
            return False
        return other is not self.op and concurrent(other, self.op)

    def applies_to_invite(self, redemption: Op, creator: bytes) -> bool:
        """Whether a redemption of an invite ``creator`` made did not see this restriction of
        the creator (a removed member's invites lose force, concurrent redemptions too)."""
        return self.device is None and creator == self.member and concurrent(redemption, self.op)


class Timeline:
    """Accepted control events in control order, for "what did this op's author see?" queries."""

    def __init__(self) -> None:
        self.member_events: dict[bytes, list[tuple[Op, str | None]]] = {}
        self.device_events: dict[bytes, list[tuple[Op, bytes | None]]] = {}
        self.keys_events: list[KeysEvent] = []
        self.policy_events: list[tuple[Op, Policy]] = []
        self.genesis: Op | None = None
        # Members that were ever removed: only they can make a keys op unusable.
        self.ever_removed: set[bytes] = set()
        # Invite key -> the op that made it (a member who left comes back only with an
        # invite made since: ``rejoin``).
        self.invites_made: dict[bytes, Op] = {}

    def member(self, op: Op, member: bytes, role: str | None) -> None:
        self.member_events.setdefault(member, []).append((op, role))
        if role is None:
            self.ever_removed.add(member)

    def device(self, op: Op, device: bytes, member: bytes | None) -> None:
        self.device_events.setdefault(device, []).append((op, member))

    def policy(self, op: Op, policy: Policy) -> None:
        self.policy_events.append((op, policy))

    def role_in_past(self, member: bytes, op: Op) -> str | None:
        for event_op, role in reversed(self.member_events.get(member, ())):
            if event_op is op or op.in_past(event_op.device, event_op.seq):
                return role
        return None

    def device_member_in_past(self, device: bytes, op: Op) -> bytes | None:
        for event_op, member in reversed(self.device_events.get(device, ())):
            if event_op is op or op.in_past(event_op.device, event_op.seq):
                return member
        return None

    def members_in_past(self, op: Op) -> set[bytes]:
        """The members active in ``op``'s causal past."""
        return {m for m in self.member_events if self.role_in_past(m, op) is not None}

    def policy_in_past(self, op: Op) -> Policy | None:
        """The policy in force where ``op`` stands: the newest accepted policy in its past (a
        policy change applies from its place on, never to history)."""
        for event_op, policy in reversed(self.policy_events):
            if event_op is op or op.in_past(event_op.device, event_op.seq):
                return policy
        return None

    def epoch_in_past(self, op: Op) -> tuple[int, list[KeysEvent]]:
        """The newest epoch number in ``op``'s causal past, and the keys ops for its own epoch
        that it may use (in its past, sealed to nobody its past shows as removed)."""
        newest = 0
        candidates = []
        for event in self.keys_events:
            if not op.in_past(event.op.device, event.op.seq):
                continue
            newest = max(newest, event.epoch)
            if event.epoch == op.epoch and all(
                self.role_in_past(m, op) is not None for m in event.sealed & self.ever_removed
            ):
                candidates.append(event)
        return newest, candidates


@dataclass
class ControlResolution:
    state: ThreadState
    order: list[Op]
    decisions: dict[bytes, Decision]
    actions: dict[bytes, p.Control | p.Keys]
    timeline: Timeline
    restrictions: list[Restriction]
    restarts: int = 0
    fold: _Fold | None = None

    def extend(self, op: Op) -> bool:
        """Add a control op that comes causally after every control op so far, without folding
        again: it is necessarily last in the control order and concurrent with none of them, so
        the result is the full fold's. False (nothing done) when that does not hold."""
        fold = self.fold
        if fold is None:
            return False
        for device, chain in fold.by_device.items():
            if chain and not (chain[-1] is op or op.in_past(device, chain[-1].seq)):
                return False
        fold.by_device.setdefault(op.device, []).append(op)
        fold.order.append(op)
        fold.decisions[op.hash] = fold._apply(op)
        return True

    @property
    def opaque(self) -> bool:
        """Whether some control op could not be read here: this replica's view of who is a
        member may be wrong, so it must not act on it (admit, certify)."""
        return any(d.status == "opaque" for d in self.decisions.values())


class _Fold:
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
        self.refusals = refusals
        self.forks = forks
        self.state = ThreadState(thread=thread)
        self.timeline = Timeline()
        self.decisions: dict[bytes, Decision] = {}
        self.actions: dict[bytes, p.Control | p.Keys] = {}
        self.restrictions: list[Restriction] = list(forced)
        self.accepted_restrictions: list[Restriction] = []
        self.order: list[Op] = []

    # -- order ---------------------------------------------------------------------------------

    def _predecessors(self, op: Op) -> list[Op]:
        preds = []
        own = self.by_device[op.device]
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
            self.order.append(best)
            self.decisions[best.hash] = self._apply(best)
            for child in children.get(best.hash, ()):
                waiting[child.hash] -= 1
                if waiting[child.hash] == 0:
                    ready.append(child)

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
        roles += [r.role for r in self.restrictions if r.applies(op, member)]
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

    def _genesis(self, op: Op) -> Decision:
        if op.kind != KIND_CONTROL or op.seq != 1 or op.epoch != 0 or op.deps:
            return refused("the thread does not exist yet where this op stands")
        action = genesis_action(self.thread, op)
        if isinstance(action, str):
            return refused(action)
        st = self.state
        st.created, st.policy, st.owner = True, action.policy, action.owner
        st.base_policy = action.policy
        st.name, st.app = action.name, action.app
        st.apps[action.app] = None
        st.members[action.owner] = MemberState(role=OWNER, devices={op.device})
        st.devices[op.device] = DeviceState(member=action.owner, certified_by=op.hash)
        st.tags[member_tag(action.owner)] = action.owner
        self.timeline.genesis = op
        self.timeline.member(op, action.owner, OWNER)
        self.timeline.device(op, op.device, action.owner)
        self.timeline.policy(op, action.policy)
        self.actions[op.hash] = action
        return ACCEPTED

    def _cert_ok(self, member: bytes, device: bytes, cert: bytes) -> bool:
        return self.opener.verified(
            lambda: keys.device_cert_verify(self.thread, member, device, cert),
            b"cert",
            member,
            device,
            cert,
        )

    def _device_proof_ok(self, member: bytes, device: bytes, proof: bytes) -> bool:
        return self.opener.verified(
            lambda: keys.device_proof_verify(self.thread, member, device, proof),
            b"device-proof",
            member,
            device,
            proof,
        )

    def _device_room(self, member: bytes, device: bytes) -> str | None:
        """Why ``device`` cannot be certified for ``member`` (caps on devices), or None."""
        st = self.state
        if device not in st.devices and len(st.devices) >= MAX_DEVICES:
            return f"the thread already has {MAX_DEVICES} devices"
        known = st.members.get(member)
        if (
            known is not None
            and device not in known.devices
            and len(known.devices) >= MAX_MEMBER_DEVICES
        ):
            return f"a member has at most {MAX_MEMBER_DEVICES} devices in a thread"
        return None

    def _restrict(self, op: Op, member: bytes, device: bytes | None, role: str | None) -> None:
        restriction = Restriction(op=op, member=member, device=device, role=role)
        self.restrictions.append(restriction)
        self.accepted_restrictions.append(restriction)

    def _admit(self, op: Op, member: bytes, role: str, device: bytes) -> None:
        st = self.state
        existing = st.members.get(member)
        devices = existing.devices if existing is not None else set()
        st.members[member] = MemberState(role=role, devices=devices | {device})
        st.devices[device] = DeviceState(member=member, certified_by=op.hash)
        st.tags[member_tag(member)] = member
        self.timeline.member(op, member, role)
        self.timeline.device(op, device, member)

    def _deactivate(self, op: Op, member: bytes) -> None:
        st = self.state
        target = st.members[member]
        target.active = False
        self.timeline.member(op, member, None)
        for device in target.devices:
            if st.devices.get(device) and st.devices[device].member == member:
                st.devices[device].active = False

    def _check(
        self, op: Op, author: bytes, roles: list[str], action: p.Control | p.Keys
    ) -> str | None:
        """Validate ``action`` by ``author`` under every role in ``roles``; apply it if valid."""
        st, pol, tl = self.state, self.state.policy, self.timeline
        match action:
            case p.Keys():
                return self._keys(op, roles, action)
            case p.Create():
                return "the thread already has a create op"
            case p.AddMember() | p.RedeemInvite():
                return self._admission(op, roles, action)
            case p.RemoveMember():
                causal_role = tl.role_in_past(action.member, op)
                if causal_role is None:
                    return "the member to remove is not a member"
                if action.member == st.owner:
                    return "the owner cannot be removed (transfer ownership first)"
                target_role = st.role_of(action.member) or causal_role
                if not all(pol.may_manage(r, target_role) for r in roles):
                    return "only a higher role that manages members may remove this member"
                if st.role_of(action.member) is not None:
                    self._deactivate(op, action.member)
                self._restrict(op, action.member, None, None)
                return None
            case p.Leave():
                if author == st.owner:
                    return "the owner cannot leave (transfer ownership first)"
                self._deactivate(op, author)
                self._restrict(op, author, None, None)
                return None
            case p.SetRole():
                target_role = st.role_of(action.member)
                if target_role is None:
                    return "the member is not a member"
                if action.member == st.owner or action.role == OWNER:
                    return "ownership changes only by transfer"
                if action.role not in pol.roles:
                    return f"the policy has no role {action.role!r}"
                if not all(
                    pol.may_manage(r, target_role) and pol.rank(action.role) <= pol.rank(r)
                    for r in roles
                ):
                    return "nobody sets a role above their own or of a member not below them"
                st.members[action.member].role = action.role
                tl.member(op, action.member, action.role)
                self._restrict(op, action.member, None, action.role)
                return None
            case p.TransferOwner():
                if not all(r == OWNER for r in roles):
                    return "only the owner transfers ownership"
                if action.member == author or st.role_of(action.member) is None:
                    return "ownership goes to another active member"
                st.owner = action.member
                st.members[action.member].role = OWNER
                st.members[author].role = "admin"
                tl.member(op, action.member, OWNER)
                tl.member(op, author, "admin")
                self._restrict(op, author, None, "admin")
                return None
            case p.CertifyDevice():
                return self._certify(op, author, action)
            case p.RevokeDevice():
                return self._revoke(op, author, roles, action)
            case p.CreateInvite():
                if not all(pol.may_invite(r, action.role) for r in roles):
                    return f"this role may not invite at role {action.role!r}"
                if action.uses != 1 and action.role not in pol.open_roles():
                    return f"the policy lets no invite for several people grant {action.role!r}"
                if action.invite in st.invites:
                    return "this invite key was used before"
                st.invites[action.invite] = invite_state(action, author)
                tl.invites_made[action.invite] = op
                return None
            case p.RevokeInvite():
                inv = st.invites.get(action.invite)
                if inv is None or inv.status != "open":
                    return "no open invite with this key"
                creator_role = st.role_of(inv.creator)
                if inv.creator != author and not all(
                    pol.may_manage(r, creator_role or "") for r in roles
                ):
                    return "only the inviter or a higher manager revokes an invite"
                inv.status = "revoked"
                return None
            case p.SetAddresses():
                st.addresses[op.device] = action.addrs
                return None
            case p.SetPolicy():
                if not all(r == OWNER for r in roles):
                    return "only the owner changes the policy"
                held = {m.role for m in st.members.values() if m.active}
                if not held <= self._composed(action.policy, st.apps).roles.keys():
                    return "the new policy drops a role that members hold"
                st.base_policy = action.policy
                self._recompose(op)
                return None
            case p.SetMeta():
                if not all(pol.roles[r].manage for r in roles):
                    return "only roles that manage the thread rename it"
                st.name = action.name
                return None
            case p.SetName():
                if action.member != author:
                    return "a member names only itself"
                st.names[author] = action.name
                return None
            case p.EnableApp():
                return self._enable(op, roles, action.spec)
            case p.DisableApp():
                if not all(pol.roles[r].manage for r in roles):
                    return "only roles that manage the thread disable apps"
                if action.app not in st.apps:
                    return f"the {action.app} app is not enabled in this thread"
                if action.app == st.app:
                    return "the app the thread was created for cannot be disabled"
                del st.apps[action.app]
                self._recompose(op)
                return None
        return "unknown control action"

    def _enable(self, op: Op, roles: list[str], spec: AppSpec) -> str | None:
        st = self.state
        if not all(st.policy.roles[r].manage for r in roles):
            return "only roles that manage the thread enable apps"
        if spec.app in st.apps:
            return f"the {spec.app} app is already enabled"
        if len(st.apps) >= MAX_APPS:
            return f"a thread has at most {MAX_APPS} apps"
        problem = spec_problem(spec, st.policy, st.app_tables)
        if problem is not None:
            return problem
        st.apps[spec.app] = spec
        for table in spec.tables:
            st.app_tables[table] = spec.app
        self._recompose(op)
        return None

    def _composed(self, base: Policy, apps: Mapping[str, AppSpec | None]) -> Policy:
        specs = [spec for spec in apps.values() if spec is not None]
        return compose(base, specs, self.state.app_tables)

    def _recompose(self, op: Op) -> None:
        """The policy in force changed (its base, or the enabled apps): from ``op`` on."""
        st = self.state
        st.policy = self._composed(st.base_policy, st.apps)
        self.timeline.policy(op, st.policy)

    def _certify(self, op: Op, author: bytes, action: p.CertifyDevice) -> str | None:
        st = self.state
        if action.member != author:
            return "a member certifies only its own devices"
        if st.device_member(action.device) is not None:
            return "the device is already certified"
        if not self._cert_ok(action.member, action.device, action.device_cert):
            return "the device certificate does not verify"
        if not self._device_proof_ok(action.member, action.device, action.device_proof):
            return "the device did not prove it holds its key"
        room = self._device_room(author, action.device)
        if room is not None:
            return room
        st.members[author].devices.add(action.device)
        st.devices[action.device] = DeviceState(member=author, certified_by=op.hash)
        self.timeline.device(op, action.device, author)
        return None

    def _revoke(
        self, op: Op, author: bytes, roles: list[str], action: p.RevokeDevice
    ) -> str | None:
        st, pol = self.state, self.state.policy
        owner_member = st.device_member(action.device)
        if owner_member is None:
            return "the device is not an active device of the thread"
        if action.member_sig is not None:
            sig, certified_by = action.member_sig, st.devices[action.device].certified_by
            if not self.opener.verified(
                lambda: keys.device_revoke_verify(
                    self.thread, owner_member, action.device, certified_by, sig
                ),
                b"revoke",
                owner_member,
                action.device,
                certified_by,
                sig,
            ):
                return "the member's revocation signature does not verify"
        elif owner_member != author and not all(
            pol.may_manage(r, st.role_of(owner_member) or "") for r in roles
        ):
            return "only the member itself or a higher manager revokes a device"
        st.devices[action.device].active = False
        self.timeline.device(op, action.device, None)
        self._restrict(op, owner_member, action.device, None)
        return None

    def _creator_roles(self, op: Op, creator: bytes) -> list[str | None]:
        """The standing of an invite's creator for a redemption at ``op``: its role here, and the
        roles of every restriction of it the redemption did not see."""
        return [self.state.role_of(creator)] + [
            r.role for r in self.restrictions if r.applies_to_invite(op, creator)
        ]

    def _admission(self, op: Op, roles: list[str], action: p.AddMember | p.RedeemInvite):
        st, pol = self.state, self.state.policy
        if isinstance(action, p.RedeemInvite):
            inv = st.invites.get(action.invite)
            if inv is None:
                return "unknown invite"
            if inv.status == "revoked":
                return "the invite was revoked"
            if inv.status == "redeemed":
                return "the invite was already used"
            if inv.status == "used up":
                return "the invite was used up"
            if op.hlc.millis >= inv.expiry:
                return "the invite had expired"
            role = inv.role
            if not all(
                creator_role is not None and pol.may_invite(creator_role, role)
                for creator_role in self._creator_roles(op, inv.creator)
            ):
                return "the invite lost its force: its creator may no longer invite at its role"
            if inv.uses != 1 and role not in pol.open_roles():
                return "the policy no longer lets an invite for several people grant its role"
            if not self.opener.verified(
                lambda: invite.redemption_proof_verify(
                    self.thread, action.invite, action.member, action.device, action.proof
                ),
                b"proof",
                action.invite,
                action.member,
                action.device,
                action.proof,
            ):
                return "the invite proof does not verify"
        else:
            role = action.role
        if not all(pol.may_invite(r, role) for r in roles):
            return f"this role may not admit members at role {role!r}"
        if st.role_of(action.member) is not None:
            return "already a member"
        invite_key = action.invite if isinstance(action, p.RedeemInvite) else None
        problem = rejoin_problem(self.timeline, action.member, op, invite_key)
        if problem is not None:
            return problem
        if st.device_member(action.device) is not None:
            return "the device is already certified"
        if not (crypto.public_key_valid(action.member) and crypto.public_key_valid(action.device)):
            return "not valid public keys"
        tag_owner = st.tags.get(member_tag(action.member))
        if tag_owner is not None and tag_owner != action.member:
            return "the member's row tag is another member's (choose another member key)"
        if not self._cert_ok(action.member, action.device, action.device_cert):
            return "the newcomer's device certificate does not verify"
        if not self._device_proof_ok(action.member, action.device, action.device_proof):
            return "the newcomer's device did not prove it holds its key"
        room = self._device_room(action.member, action.device)
        if room is not None:
            return room
        if isinstance(action, p.RedeemInvite):
            st.invites[action.invite].redeem(action.member)
        self._admit(op, action.member, role, action.device)
        return None

    def _keys(self, op: Op, roles: list[str], action: p.Keys) -> str | None:
        pol, tl = self.state.policy, self.timeline
        if action.epoch != op.epoch:
            return "the keys payload names another epoch than the op"
        if not all(pol.roles[r].rotate for r in roles):
            return "this role may not rotate the thread's keys"
        newest, _ = tl.epoch_in_past(op)
        if action.epoch != newest + 1:
            reseal = any(
                e.epoch == action.epoch
                and e.check == action.check
                and op.in_past(e.op.device, e.op.seq)
                for e in tl.keys_events
            )
            if not reseal:
                return f"a new epoch must be {newest + 1}, or reseal a known epoch"
        sealed = set(action.seals)
        members = tl.members_in_past(op)  # the members its author saw
        if sealed != members:
            if sealed - members:
                return "the keys are sealed to someone who is not a member"
            # A partial rotation would shut the left-out members out of new data and of
            # control decisions: an epoch is for every member its author saw.
            return "the keys are not sealed to every member"
        self.state.epochs.setdefault(action.epoch, {})[op.hash] = action.check
        tl.keys_events.append(KeysEvent(op, action.epoch, action.check, frozenset(action.seals)))
        return None


def invite_state(action: p.CreateInvite, creator: bytes):
    from apps.core.thread.state import InviteState

    return InviteState(
        role=action.role,
        expiry=action.expiry,
        creator=creator,
        uses=action.uses,
        label=action.label,
    )


def genesis_action(thread: bytes, op: Op) -> p.Create | str:
    """The create op's action if ``op`` is a valid create op of ``thread``, else why not. Its
    body opens with a key derived from the thread id, so anyone can check it."""
    try:
        plain = crypto.aead_decrypt(keys.genesis_key(thread), op.body, op.header_bytes())
        action = p.control_parse(codec.decode(plain, max_size=MAX_PAYLOAD, canonical=False))
    except (crypto.CryptoError, codec.DecodeError, p.PayloadError) as exc:
        return f"not a valid create op: {exc}"
    if not isinstance(action, p.Create):
        return "the first op of a thread must create it"
    if keys.thread_id_for(action.nonce, op.device) != thread:
        return "the create op does not match the thread id"
    try:
        keys.device_cert_verify(thread, action.owner, op.device, action.device_cert)
    except crypto.CryptoError:
        return "the creator's device certificate does not verify"
    return action


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


def _first_violation(fold: _Fold, skip: set[bytes]) -> Restriction | None:
    """The first accepted restriction, in control order, that an earlier accepted op escaped:
    an op of the restricted member or device, or a redemption of the member's invite."""
    position = {op.hash: i for i, op in enumerate(fold.order)}
    invites = fold.state.invites
    policy = fold.state.policy
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
