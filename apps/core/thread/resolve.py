"""The deterministic resolver: a set of ops in, decisions and state out (DESIGN §4-§5).

**Control ops** (``control`` and ``keys`` kinds) are put in one total order: a topological order
of their causal graph in which, among ops that are ready, the author of higher rank goes first, then
the lower hybrid-clock stamp, then the lower hash. They are folded in that order; each is checked
against the state at its place *and* against its author's standing in its own causal context, so
a member can neither use a role it had not yet seen granted nor act after it saw its removal.

**Restrictions** make removals and demotions bite on ops their author did not see: when a removal,
role change, ownership transfer or device revocation is accepted, every op of the affected member
(or device) that is concurrent with it must also be allowed under the new role (removed: nothing is
allowed). This is what defeats backdating: a removed member who writes ops citing only
pre-removal history makes ops concurrent with its removal, and they are refused. When such a
restriction is placed after an op it restricts, the fold restarts with the restriction in force from
the start; every restart adds a restriction or drops one that turned out refused, so it ends.

**Data ops** never change control state, so they are checked afterwards, each against its own
causal context plus the restrictions, in causal order: insert vs update and row ownership ("own
rows") are what the op's author could see.

Every function here is pure in the op set: replicas holding the same ops (and the same keys)
decide the same.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from apps.core.thread import codec, crypto, invite, keys
from apps.core.thread import payloads as p
from apps.core.thread.op import KIND_CONTROL, KIND_DATA, KIND_KEYS, Op, OpId
from apps.core.thread.policy import OWNER, Policy
from apps.core.thread.state import DeviceState, InviteState, MemberState, ThreadState
from apps.core.thread.store import Decision, OpStore, RowEvent, RowKey

MAX_RESTARTS = 10_000
MAX_PAYLOAD = 1 << 20

ACCEPTED = Decision("accepted")


def refused(reason: str) -> Decision:
    return Decision("refused", reason)


class Keyring:
    """The epoch keys a replica can use, by the hash of the keys op that made each epoch.

    Keys are discovered from every keys op sealed to one of our member keys, accepted or not: a
    wrong key from a hostile op can only fail to open a body (AEAD), never open one wrongly, and
    an op's key counts only if its keys op is accepted and in the op's causal past.
    """

    def __init__(self, thread: bytes, member_keys: Iterable = ()) -> None:
        self.thread = thread
        self.members = {bytes(k.verify_key): k for k in member_keys}
        self.by_keys_op: dict[bytes, list[keys.EpochKeys]] = {}
        self._opened: set[bytes] = set()

    def add(self, keys_op: bytes, epoch_keys: keys.EpochKeys) -> bool:
        known = self.by_keys_op.setdefault(keys_op, [])
        if any(k.control == epoch_keys.control and k.data == epoch_keys.data for k in known):
            return False
        # Full keys (with the data key) first: they open everything a control-only grant does.
        known.append(epoch_keys)
        known.sort(key=lambda k: k.data is None)
        return True

    def forget_opened(self) -> None:
        """Open every keys op again on the next ``learn`` (after a member key was added)."""
        self._opened.clear()

    def learn(self, op: Op) -> set[bytes]:
        """Open the seals of a keys op addressed to us; the keys ops we learned keys for."""
        if op.kind != KIND_KEYS or op.hash in self._opened or not self.members:
            return set()
        self._opened.add(op.hash)
        try:
            parsed = p.keys_parse(codec.decode(op.body, max_size=MAX_PAYLOAD, canonical=False))
        except (codec.DecodeError, p.PayloadError):
            return set()
        learned: set[bytes] = set()
        for member, signing_key in self.members.items():
            box = parsed.seals.get(member)
            if box is None:
                continue
            try:
                secret, grants = p.grants_parse(
                    codec.decode(
                        crypto.unseal(signing_key, box), max_size=MAX_PAYLOAD, canonical=False
                    )
                )
            except (crypto.CryptoError, codec.DecodeError, p.PayloadError):
                continue
            if self.add(op.hash, keys.EpochKeys.from_secret(self.thread, parsed.epoch, secret)):
                learned.add(op.hash)
            for grant in grants:
                if self.add(grant.keys_op, keys.EpochKeys(grant.epoch, grant.control, grant.data)):
                    learned.add(grant.keys_op)
        return learned


@dataclass(frozen=True)
class KeysEvent:
    op: Op
    epoch: int
    check: bytes
    sealed: frozenset[bytes]


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
        if other is self.op:
            return False
        concurrent = not other.in_past(self.op.device, self.op.seq) and not self.op.in_past(
            other.device, other.seq
        )
        return concurrent


class Timeline:
    """Accepted control events in control order, for "what did this op's author see?" queries."""

    def __init__(self) -> None:
        self.member_events: dict[bytes, list[tuple[Op, str | None]]] = {}
        self.device_events: dict[bytes, list[tuple[Op, bytes | None]]] = {}
        self.keys_events: list[KeysEvent] = []
        self.genesis: Op | None = None
        # Members that were ever removed: only they can make a keys op unusable.
        self.ever_removed: set[bytes] = set()

    def member(self, op: Op, member: bytes, role: str | None) -> None:
        self.member_events.setdefault(member, []).append((op, role))
        if role is None:
            self.ever_removed.add(member)

    def device(self, op: Op, device: bytes, member: bytes | None) -> None:
        self.device_events.setdefault(device, []).append((op, member))

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


class Opener:
    """Opens and parses op bodies for one replica, remembering what opened.

    A body opens the same way every time (the AEAD authenticates it), so folds that run again
    after each control op do not decrypt and parse again. Failures are not remembered: a key
    learned later may open the body.
    """

    def __init__(self, thread: bytes, keyring: Keyring) -> None:
        self.thread = thread
        self.keyring = keyring
        self._opened: dict[tuple[bytes, bytes], object] = {}
        self._verified: dict[tuple[bytes, ...], bool] = {}

    def _open(self, op: Op, candidates: list[KeysEvent], *, data: bool) -> bytes | Decision:
        aad = op.header_bytes()
        have_key = False
        for event in candidates:
            for epoch_keys in self.keyring.by_keys_op.get(event.op.hash, ()):
                key = epoch_keys.data if data else epoch_keys.control
                if key is None:
                    continue
                have_key = True
                try:
                    return crypto.aead_decrypt(key, op.body, aad)
                except crypto.CryptoError:
                    continue
        if not have_key:
            return Decision("opaque", f"no key for epoch {op.epoch} on this node")
        return refused(f"the body does not open with the key of epoch {op.epoch}")

    def _cached(self, op: Op, candidates: list[KeysEvent]) -> object | None:
        for event in candidates:
            hit = self._opened.get((op.hash, event.op.hash))
            if hit is not None:
                return hit
        return None

    def _parsed(self, op: Op, candidates: list[KeysEvent], *, data: bool, parse, what: str):
        hit = self._cached(op, candidates)
        if hit is not None:
            return hit
        plain = self._open(op, candidates, data=data)
        if isinstance(plain, Decision):
            return plain
        try:
            result: object = parse(codec.decode(plain, max_size=MAX_PAYLOAD, canonical=False))
        except (codec.DecodeError, p.PayloadError) as exc:
            result = refused(f"{what} payload: {exc}")
        for event in candidates:
            self._opened[(op.hash, event.op.hash)] = result
        return result

    def prime(self, op: Op, keys_op: bytes, value: object) -> None:
        """Remember what a body this process just sealed says (its own write), so checking the
        op does not decrypt and parse it again."""
        self._opened[(op.hash, keys_op)] = value

    def control(self, op: Op, candidates: list[KeysEvent]) -> p.Control | Decision:
        return self._parsed(op, candidates, data=False, parse=p.control_parse, what="control")  # type: ignore[return-value]

    def data(self, op: Op, candidates: list[KeysEvent]) -> list[p.RowChange] | Decision:
        return self._parsed(op, candidates, data=True, parse=p.data_parse, what="data")  # type: ignore[return-value]

    def verified(self, check: Callable[[], None], *key: bytes) -> bool:
        """Run a signature check once per distinct input; True if it verifies."""
        if key not in self._verified:
            try:
                check()
                self._verified[key] = True
            except crypto.CryptoError:
                self._verified[key] = False
        return self._verified[key]

    def keys(self, op: Op) -> p.Keys | Decision:
        hit = self._opened.get((op.hash, b""))
        if hit is None:
            try:
                hit = p.keys_parse(codec.decode(op.body, max_size=MAX_PAYLOAD, canonical=False))
            except (codec.DecodeError, p.PayloadError) as exc:
                hit = refused(f"keys payload: {exc}")
            self._opened[(op.hash, b"")] = hit
        return hit  # type: ignore[return-value]


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
            return refused("the device equivocated (signed two different ops at one place)")
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
        try:
            plain = crypto.aead_decrypt(keys.genesis_key(self.thread), op.body, op.header_bytes())
            action = p.control_parse(codec.decode(plain, max_size=MAX_PAYLOAD, canonical=False))
        except (crypto.CryptoError, codec.DecodeError, p.PayloadError) as exc:
            return refused(f"not a valid create op: {exc}")
        if not isinstance(action, p.Create):
            return refused("the first op of a thread must create it")
        if keys.thread_id_for(action.nonce, op.device) != self.thread:
            return refused("the create op does not match the thread id")
        try:
            keys.device_cert_verify(self.thread, action.owner, op.device, action.device_cert)
        except crypto.CryptoError:
            return refused("the creator's device certificate does not verify")
        st = self.state
        st.created, st.policy, st.owner = True, action.policy, action.owner
        st.name, st.app = action.name, action.app
        st.members[action.owner] = MemberState(role=OWNER, devices={op.device})
        st.devices[op.device] = DeviceState(member=action.owner)
        self.timeline.genesis = op
        self.timeline.member(op, action.owner, OWNER)
        self.timeline.device(op, op.device, action.owner)
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

    def _restrict(self, op: Op, member: bytes, device: bytes | None, role: str | None) -> None:
        restriction = Restriction(op=op, member=member, device=device, role=role)
        self.restrictions.append(restriction)
        self.accepted_restrictions.append(restriction)

    def _admit(self, op: Op, member: bytes, role: str, device: bytes) -> None:
        st = self.state
        existing = st.members.get(member)
        devices = existing.devices if existing is not None else set()
        st.members[member] = MemberState(role=role, devices=devices | {device})
        st.devices[device] = DeviceState(member=member)
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
                if action.member != author:
                    return "a member certifies only its own devices"
                if st.device_member(action.device) is not None:
                    return "the device is already certified"
                if not self._cert_ok(action.member, action.device, action.device_cert):
                    return "the device certificate does not verify"
                st.members[author].devices.add(action.device)
                st.devices[action.device] = DeviceState(member=author)
                tl.device(op, action.device, author)
                return None
            case p.RevokeDevice():
                owner_member = st.device_member(action.device)
                if owner_member is None:
                    return "the device is not an active device of the thread"
                if action.member_sig is not None:
                    sig = action.member_sig
                    if not self.opener.verified(
                        lambda: keys.device_revoke_verify(
                            self.thread, owner_member, action.device, sig
                        ),
                        b"revoke",
                        owner_member,
                        action.device,
                        sig,
                    ):
                        return "the member's revocation signature does not verify"
                elif owner_member != author and not all(
                    pol.may_manage(r, st.role_of(owner_member) or "") for r in roles
                ):
                    return "only the member itself or a higher manager revokes a device"
                st.devices[action.device].active = False
                tl.device(op, action.device, None)
                self._restrict(op, owner_member, action.device, None)
                return None
            case p.CreateInvite():
                if not all(pol.may_invite(r, action.role) for r in roles):
                    return f"this role may not invite at role {action.role!r}"
                if action.invite in st.invites:
                    return "this invite key was used before"
                st.invites[action.invite] = InviteState(
                    role=action.role, expiry=action.expiry, creator=author
                )
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
                if not held <= action.policy.roles.keys():
                    return "the new policy drops a role that members hold"
                st.policy = action.policy
                return None
            case p.SetMeta():
                if not all(pol.roles[r].manage for r in roles):
                    return "only roles that manage the thread rename it"
                st.name = action.name
                return None
        return "unknown control action"

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
            if op.hlc.millis >= inv.expiry:
                return "the invite had expired"
            role = inv.role
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
        if st.device_member(action.device) is not None:
            return "the device is already certified"
        if not (crypto.public_key_valid(action.member) and crypto.public_key_valid(action.device)):
            return "not valid public keys"
        if not self._cert_ok(action.member, action.device, action.device_cert):
            return "the newcomer's device certificate does not verify"
        if isinstance(action, p.RedeemInvite):
            inv = st.invites[action.invite]
            inv.status, inv.redeemed_by = "redeemed", action.member
        self._admit(op, action.member, role, action.device)
        return None

    def _keys(self, op: Op, roles: list[str], action: p.Keys) -> str | None:
        pol, tl = self.state.policy, self.timeline
        if action.epoch != op.epoch:
            return "the keys payload names another epoch than the op"
        if not all(pol.roles[r].manage or pol.roles[r].invite for r in roles):
            return "only roles that manage or invite members rotate keys"
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
        for member in action.seals:
            if tl.role_in_past(member, op) is None:
                return "the keys are sealed to someone who is not a member"
        self.state.epochs.setdefault(action.epoch, {})[op.hash] = action.check
        tl.keys_events.append(KeysEvent(op, action.epoch, action.check, frozenset(action.seals)))
        return None


def control_resolve(
    thread: bytes,
    control_ops: Iterable[Op],
    *,
    opener: Opener,
    refusals: Mapping[bytes, str],
    forks: Mapping[bytes, int],
) -> ControlResolution:
    by_device: dict[bytes, list[Op]] = {}
    for op in control_ops:
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
    """The first accepted restriction, in control order, that an earlier accepted op escaped."""
    position = {op.hash: i for i, op in enumerate(fold.order)}
    for restriction in sorted(fold.accepted_restrictions, key=lambda r: position[r.op.hash]):
        if restriction.op.hash in skip:
            continue
        for op in fold.order[: position[restriction.op.hash]]:
            if fold.decisions[op.hash] != ACCEPTED or op.hash not in fold.actions:
                continue
            member = fold.timeline.device_member_in_past(op.device, op)
            if member is not None and restriction.applies(op, member):
                return restriction
    return None


# --- data ops -------------------------------------------------------------------------------------

# App rule for one row change: (change, author's role, "insert"|"update"|"delete") -> refusal.
RowValidator = Callable[[p.RowChange, str, str], str | None]


def _seen_by(events: list[RowEvent], op: Op) -> tuple[bool, bytes | None]:
    """(exists, owner) of a row as ``op``'s author saw it, from its changes in stamp order: it
    exists if its latest change in the op's past is an upsert; its owner inserted it first."""
    exists = False
    for event in reversed(events):
        if op.in_past(event.device, event.seq):
            exists = event.action == p.UPSERT
            break
    owner = None
    for event in events:
        if event.action == p.UPSERT and op.in_past(event.device, event.seq):
            owner = event.member
            break
    return exists, owner


class DataChecker:
    """Steps 3-6 of validation for data ops, against a control resolution."""

    def __init__(
        self,
        control: ControlResolution,
        opener: Opener,
        store: OpStore,
        validators: Mapping[str, RowValidator] | None = None,
        forks: Mapping[bytes, int] | None = None,
    ) -> None:
        self.control = control
        self.opener = opener
        self.store = store
        self.validators = validators or {}
        self.forks = forks if forks is not None else {}
        self._restricted: tuple[int, set[bytes]] = (-1, set())

    def _restricted_keys(self) -> set[bytes]:
        """Members and devices that some restriction names (cached; restrictions only grow)."""
        restrictions = self.control.restrictions
        if self._restricted[0] != len(restrictions):
            keys = {r.member for r in restrictions} | {r.device for r in restrictions if r.device}
            self._restricted = (len(restrictions), keys)
        return self._restricted[1]

    def check(self, op: Op, refusal: str | None) -> tuple[Decision, list[p.RowChange] | None]:
        """Decide one data op; its causal past must have been checked already."""
        if refusal is not None:
            return refused(refusal), None
        fork = self.forks.get(op.device)
        if fork is not None and op.seq >= fork:
            return refused("the device equivocated (signed two different ops at one place)"), None
        tl, state = self.control.timeline, self.control.state
        genesis = tl.genesis
        if genesis is None or not op.in_past(genesis.device, genesis.seq):
            return refused("the thread does not exist where this op stands"), None
        member = tl.device_member_in_past(op.device, op)
        if member is None:
            return refused("the device is not certified for a member in the op's past"), None
        roles = [tl.role_in_past(member, op)]
        restricted = self._restricted_keys()
        if member in restricted or op.device in restricted:
            roles += [r.role for r in self.control.restrictions if r.applies(op, member)]
        if any(role is None for role in roles):
            return refused("the author is not a member where this op stands"), None
        newest, candidates = tl.epoch_in_past(op)
        if op.epoch < newest:
            return refused(f"epoch {op.epoch} is older than epoch {newest} it has seen"), None
        if not candidates:
            return refused(f"no usable key epoch {op.epoch} in the op's causal past"), None
        changes = self.opener.data(op, candidates)
        if isinstance(changes, Decision):
            return changes, None
        policy: Policy = state.policy
        keys: list[RowKey] = [(change.table, change.pk) for change in changes]
        histories = self.store.row_events_many(keys)
        for key, change in zip(keys, changes, strict=True):
            exists, owner = _seen_by(histories[key], op)
            if change.action == p.DELETE:
                if not exists:
                    return refused(f"{change.table} {change.pk!r}: delete of a missing row"), None
                action = "delete"
            else:
                action = "update" if exists else "insert"
            own = owner is None or owner == member
            for role in roles:
                if not policy.allows_row(role, change.table, action, own=own):  # type: ignore[arg-type]
                    scope = "own" if own else "others'"
                    return (
                        refused(f"role {role} may not {action} {scope} rows of {change.table}"),
                        None,
                    )
            validator = self.validators.get(change.table)
            if validator is not None:
                reason = validator(change, roles[0], action)  # type: ignore[arg-type]
                if reason:
                    return refused(f"{change.table}: {reason}"), None
        # One event per row per op: the row's state after the op (its last change of it).
        last = {key: change.action for key, change in zip(keys, changes, strict=True)}
        self.store.row_events_add_many(
            [
                (key, RowEvent(op.hlc, op.device, op.seq, member, action))
                for key, action in last.items()
            ]
        )
        return ACCEPTED, changes


def is_control(op: Op) -> bool:
    return op.kind in (KIND_CONTROL, KIND_KEYS)


def is_data(op: Op) -> bool:
    return op.kind == KIND_DATA


__all__ = [
    "ACCEPTED",
    "ControlResolution",
    "DataChecker",
    "Decision",
    "Keyring",
    "OpId",
    "control_resolve",
]
