"""The control actions: how one control or keys op, at its place in the control order, changes
the thread's state (or why it is refused). A mixin of the fold in ``control.py``, which decides
the order and the author's standing; the caps and rules are described there.

Pure in the op set, like the fold: every replica decides alike.
"""

from __future__ import annotations

from collections.abc import Mapping

from apps.core.thread import codec, crypto, invite, keys
from apps.core.thread import payloads as p
from apps.core.thread.appspec import MAX_APPS, AppSpec, compose, spec_problem
from apps.core.thread.keyring import MAX_PAYLOAD, KeysEvent, Opener, refused
from apps.core.thread.op import KIND_CONTROL, Op
from apps.core.thread.policy import OWNER, Policy
from apps.core.thread.rejoin import rejoin_problem
from apps.core.thread.rowid import member_tag
from apps.core.thread.state import DeviceState, MemberState, ThreadState
from apps.core.thread.store import Decision
from apps.core.thread.timeline import Restriction, Restrictions, Timeline

MAX_DEVICES = 1024
MAX_MEMBER_DEVICES = 16

ACCEPTED = Decision("accepted")


class ControlActions:
    """Checks and applies one control action against the fold's state and timeline."""

    thread: bytes
    opener: Opener
    state: ThreadState
    timeline: Timeline
    actions: dict[bytes, p.Control | p.Keys]
    restrictions: Restrictions
    accepted_restrictions: list[Restriction]

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
        return [self.state.role_of(creator), *self.restrictions.invite_roles(op, creator)]

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
        tl.keys(KeysEvent(op, action.epoch, action.check, frozenset(action.seals)))
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
