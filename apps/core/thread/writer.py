"""Writing ops: one device of one member authoring in one thread.

``ThreadWriter`` stamps, chains, encrypts and signs ops and puts them through its own replica
first (every node checks its own ops too). It also carries the author-side rules that validation
cannot see inside sealed boxes: a rotation gives a newcomer the old control keys always and the old
data keys only when its role reads history.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import nacl.signing
import nacl.utils

from apps.core.thread import codec, crypto, keys
from apps.core.thread import payloads as p
from apps.core.thread.hlc import MAX_COUNTER, MAX_MILLIS, HybridClock
from apps.core.thread.invite import Invite, redemption_proof
from apps.core.thread.op import (
    KIND_CONTROL,
    KIND_DATA,
    KIND_KEYS,
    MAX_DEPS,
    MAX_EPOCH,
    MAX_OP_SIZE,
    MAX_SEQ,
    Op,
    op_seal,
)
from apps.core.thread.policy import Policy, policy_template
from apps.core.thread.replica import IngestResult, Replica

# How many recent epochs every rotation grants again to the members they were sealed to.
REGRANT_EPOCHS = 8


class WriteError(Exception):
    """The op could not be written, or the node's own replica refused it (message says why)."""


def unreadable(op: Op) -> str | None:
    """Why peers would refuse an op that ``op_seal`` just made as malformed, or None.

    Its bytes are ``op_seal``'s canonical encoding of its fields, so of ``op_decode``'s checks
    only the ranges of the values can fail: they are checked here, on the values, instead of
    decoding the op again (a tenth of making a one-row op)."""
    if len(op.raw) > MAX_OP_SIZE:
        return f"op: {len(op.raw)} bytes, more than {MAX_OP_SIZE}"
    if len(op.deps) > MAX_DEPS:
        return f"deps: {len(op.deps)} entries, more than {MAX_DEPS}"
    if not 1 <= op.seq <= MAX_SEQ or any(not 1 <= seq <= MAX_SEQ for _device, seq in op.deps):
        return f"seq: out of 1 to {MAX_SEQ}"
    if not (0 <= op.hlc.millis <= MAX_MILLIS and 0 <= op.hlc.counter <= MAX_COUNTER):
        return "hlc: out of range"
    if not 0 <= op.epoch <= MAX_EPOCH:
        return f"epoch: out of 0 to {MAX_EPOCH}"
    return None


@dataclass(frozen=True)
class RedemptionRequest:
    """What an invitee sends the admitting node: its keys for the thread and the invite proof."""

    invite: bytes
    member: bytes
    device: bytes
    device_cert: bytes
    proof: bytes
    device_proof: bytes  # the device's own signature: it holds the key it is admitted with


def redemption_request(
    invite: Invite, *, master_secret: bytes, device_key: nacl.signing.SigningKey
) -> RedemptionRequest:
    member = keys.member_key(master_secret, invite.thread)
    member_pub, device_pub = bytes(member.verify_key), bytes(device_key.verify_key)
    return RedemptionRequest(
        invite=invite.public_key,
        member=member_pub,
        device=device_pub,
        device_cert=keys.device_cert_sign(member, invite.thread, device_pub),
        proof=redemption_proof(invite, member_pub, device_pub),
        device_proof=keys.device_proof_sign(device_key, invite.thread, member_pub),
    )


class ThreadWriter:
    def __init__(
        self,
        replica: Replica,
        *,
        device_key: nacl.signing.SigningKey,
        member_key: nacl.signing.SigningKey,
        clock: HybridClock | None = None,
    ) -> None:
        self.replica = replica
        self.device_key = device_key
        self.member_key = member_key
        self.device = bytes(device_key.verify_key)
        self.member = bytes(member_key.verify_key)
        self.clock = clock or HybridClock()
        # (check, control key, data key) -> whether both keys match the check: a pure function
        # (two BLAKE2b hashes) that every write asked again of its epoch's keys.
        self._matched: dict[tuple[bytes, bytes, bytes | None], bool] = {}

    @property
    def thread(self) -> bytes:
        return self.replica.thread

    # -- creating and joining -------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        *,
        master_secret: bytes,
        device_key: nacl.signing.SigningKey,
        name: str,
        app: str = "default",
        policy: Policy | None = None,
        clock: HybridClock | None = None,
        nonce: bytes | None = None,
    ) -> ThreadWriter:
        """A new thread: its create op (owner: this party) and its first key epoch. ``nonce``:
        given only for a thread whose id must be derivable (a party's control thread)."""
        if nonce is None:
            nonce = nacl.utils.random(16)
        elif len(nonce) != 16:
            raise ValueError("a thread nonce is 16 bytes")
        device = bytes(device_key.verify_key)
        thread = keys.thread_id_for(nonce, device)
        member = keys.member_key(master_secret, thread)
        writer = cls(
            Replica.for_members(thread, [member]),
            device_key=device_key,
            member_key=member,
            clock=clock,
        )
        create = p.Create(
            nonce=nonce,
            policy=policy or policy_template(app),
            owner=writer.member,
            device_cert=keys.device_cert_sign(member, thread, device),
            name=name,
            app=app,
        )
        writer._write(
            KIND_CONTROL,
            0,
            lambda aad: crypto.aead_encrypt(
                keys.genesis_key(thread), codec.encode(p.control_doc(create)), aad
            ),
        )
        writer.rotate()
        return writer

    @classmethod
    def for_member(
        cls,
        replica: Replica,
        *,
        master_secret: bytes,
        device_key: nacl.signing.SigningKey,
        clock: HybridClock | None = None,
    ) -> ThreadWriter:
        member = keys.member_key(master_secret, replica.thread)
        replica.member_key_add(member)
        return cls(replica, device_key=device_key, member_key=member, clock=clock)

    # -- the op machinery ---------------------------------------------------------------------

    def _write(self, kind: str, epoch: int, seal_body, *, opened=None) -> Op:
        """Seal, sign and check an op; ``opened`` = (keys op, parsed payload) of its body."""
        replica = self.replica
        seq = replica.heads.get(self.device, 0) + 1
        prev = replica.slots[(self.device, seq - 1)].hash if seq > 1 else None
        deps = sorted((d, s) for d, s in replica.heads.items() if d != self.device)
        if replica.max_hlc is not None:
            self.clock.observe(replica.max_hlc)
        op = op_seal(
            self.device_key,
            thread=self.thread,
            seq=seq,
            prev=prev,
            deps=deps,
            hlc=self.clock.tick(),
            epoch=epoch,
            kind=kind,
            seal=seal_body,
        )
        # The limits every peer applies (deps, stamps, size): an op they could not decode
        # would stop replication of the thread for good.
        problem = unreadable(op)
        if problem is not None:
            raise WriteError(f"this node would write an op its peers cannot read: {problem}")
        if opened is not None:
            replica.opener.prime(op, *opened)
        result: IngestResult = replica.ingest_op(op, signed_here=True)
        if result.status not in ("accepted", "refused", "opaque", "waiting"):
            # Not in the log (e.g. this node cannot read who certified its own device): it is
            # forgotten, so the next op takes its place instead of forking the chain.
            replica.discard(op)
        if result.status != "accepted":
            raise WriteError(f"this node refused its own op: {result.status}: {result.reason}")
        return op

    def _usable_epoch(self) -> tuple[int, keys.EpochKeys]:
        epoch, epoch_keys, _keys_op = self._usable_epoch_and_op()
        return epoch, epoch_keys

    def _usable_epoch_and_op(self) -> tuple[int, keys.EpochKeys, bytes]:
        """The newest epoch this writer can use: sealed to no one removed, key in hand."""
        control = self.replica.control
        state, timeline = control.state, control.timeline
        newest = timeline.newest_epoch()
        for event in sorted(timeline.epoch_events(newest), key=lambda e: e.op.hash):
            # A member it was sealed to who is no longer one was removed (or left) since: only
            # those need asking (a thread of 200 members and 10 000 role changes has none).
            if any(state.role_of(m) is None for m in event.sealed & timeline.ever_removed):
                continue
            for epoch_keys in self.replica.keyring.by_keys_op.get(event.op.hash, ()):
                if epoch_keys.data is not None and self._both_match(epoch_keys, event.check):
                    return newest, epoch_keys, event.op.hash
        raise WriteError(f"no usable key for epoch {newest}: the keys must be rotated first")

    def _both_match(self, epoch_keys: keys.EpochKeys, check: bytes) -> bool:
        """``epoch_keys.matches(check) == (True, True)``, remembered per writer."""
        key = (check, epoch_keys.control, epoch_keys.data)
        found = self._matched.get(key)
        if found is None:
            found = self._matched[key] = epoch_keys.matches(check) == (True, True)
        return found

    def _may_rotate(self) -> bool:
        state = self.replica.control.state
        role = state.role_of(self.member)
        rules = state.policy.roles.get(role) if role else None
        return rules is not None and rules.rotate

    def _encrypted(self, kind: str, payload: dict, *, data: bool) -> Op:
        self._readable()
        try:
            epoch, epoch_keys, keys_op = self._usable_epoch_and_op()
        except WriteError:
            if not self._may_rotate():
                raise
            self.rotate()
            epoch, epoch_keys, keys_op = self._usable_epoch_and_op()
        key = epoch_keys.data if data else epoch_keys.control
        plain = codec.encode(payload)
        # The replica checks this op like any other, only without decrypting what was just
        # encrypted: it gets the payload parsed by the same parser a receiver uses.
        try:
            parsed: object = (p.data_parse if data else p.control_parse)(payload)
        except p.PayloadError as exc:
            raise WriteError(f"this node would write an invalid payload: {exc}") from exc
        return self._write(
            kind,
            epoch,
            lambda aad: crypto.aead_encrypt(key, plain, aad),
            opened=(keys_op, parsed),
        )

    def write_data(
        self, changes: Iterable[p.RowChange], schema: Mapping[str, str] | None = None
    ) -> Op:
        """Write row changes; ``schema``: the version of each app whose tables they touch."""
        return self._encrypted(KIND_DATA, p.data_doc(list(changes), dict(schema or {})), data=True)

    def control(self, action: p.Control) -> Op:
        return self._encrypted(KIND_CONTROL, p.control_doc(action), data=False)

    def rotate(self, *, newcomers: Mapping[bytes, bool] | None = None) -> Op:
        """Start a new key epoch sealed to every active member.

        ``newcomers`` maps members just admitted to whether their role reads history: they get
        every older control key, and the older data keys only if it does. Every other member
        also gets again the keys of the last ``REGRANT_EPOCHS`` epochs it was sealed: a member
        whose box held a wrong key (a hostile rotator's, ``keyring.BadSeal``) reads those
        epochs from here on, and its view of the thread is whole again. (Bounded, so that a
        keys op stays small in a large thread.)
        """
        newcomers = newcomers or {}
        control = self.replica.control
        self._readable()
        newest = max((e.epoch for e in control.timeline.keys_events), default=0)
        epoch = newest + 1
        secret = keys.epoch_secret_new()
        epoch_keys = keys.EpochKeys.from_secret(self.thread, epoch, secret)
        known = []  # (keys event, its keys: only ones that match its check)
        for event in control.timeline.keys_events:
            for held in self.replica.keyring.by_keys_op.get(event.op.hash, ()):
                control_ok, data_ok = held.matches(event.check)
                if control_ok:
                    data = held.data if data_ok else None
                    known.append((event, keys.EpochKeys(event.epoch, held.control, data)))
                    break
        # What every member gets again: the recent epochs (the filter once, not per member).
        recent = [(e, k) for e, k in known if e.epoch > newest - REGRANT_EPOCHS]
        seals = {}
        for member, state in control.state.members.items():
            if not state.active:
                continue
            if member in newcomers:
                grants = [
                    [e.epoch, e.op.hash, k.control, k.data if newcomers[member] else None]
                    for e, k in known
                ]
            else:
                grants = [
                    [e.epoch, e.op.hash, k.control, k.data] for e, k in recent if member in e.sealed
                ]
            seals[member] = crypto.seal(member, codec.encode({"secret": secret, "old": grants}))
        payload = {"epoch": epoch, "check": epoch_keys.check(self.thread), "seal": seals}
        return self._write(KIND_KEYS, epoch, lambda aad: codec.encode(payload))

    def _readable(self) -> None:
        """Refuse to write while some control op is unreadable here: which members and keys are
        current is then unknown, and an op written on a guess could be refused by everyone."""
        if self.replica.control.opaque:
            raise WriteError(
                "this node cannot read some of the thread's membership changes (a rotation "
                "may have sealed it a wrong key); it can write again once another member "
                "rotates the keys"
            )

    # -- members and invites --------------------------------------------------------------------

    def invite_create(
        self,
        *,
        role: str,
        expiry: int,
        inviter: str,
        addrs: Iterable[str] = (),
        uses: int | None = 1,
        label: str = "",
    ) -> Invite:
        """A new invite: ``uses`` redemptions (None: no cap), each a newcomer of its own."""
        invite = Invite(
            thread=self.thread,
            role=role,
            expiry=expiry,
            secret=nacl.utils.random(32),
            inviter=inviter,
            addrs=tuple(addrs),
            name=self.replica.control.state.name,
        )
        self.control(
            p.CreateInvite(
                invite=invite.public_key, role=role, expiry=expiry, uses=uses, label=label
            )
        )
        return invite

    def admit(self, request: RedemptionRequest) -> list[Op]:
        """Admit an invitee: the redeem op, then a new epoch that includes them."""
        state = self.replica.control.state
        invite_state = state.invites.get(request.invite)
        if invite_state is None:
            raise WriteError("unknown invite")
        redeem = self.control(
            p.RedeemInvite(
                invite=request.invite,
                member=request.member,
                device=request.device,
                device_cert=request.device_cert,
                proof=request.proof,
                device_proof=request.device_proof,
            )
        )
        history = state.policy.roles[invite_state.role].history
        return [redeem, self.rotate(newcomers={request.member: history})]

    def add_member(
        self,
        *,
        member_key: bytes,
        device: bytes,
        device_cert: bytes,
        device_proof: bytes,
        role: str,
    ):
        """Admit a member directly (no invite): add, then a new epoch that includes them."""
        add = self.control(
            p.AddMember(
                member=member_key,
                role=role,
                device=device,
                device_cert=device_cert,
                device_proof=device_proof,
            )
        )
        history = self.replica.control.state.policy.roles[role].history
        return [add, self.rotate(newcomers={member_key: history})]

    def remove_member(self, member: bytes) -> list[Op]:
        """Remove a member and rotate, so it can read nothing written from now on."""
        return [self.control(p.RemoveMember(member=member)), self.rotate()]

    def set_role(self, member: bytes, role: str) -> Op:
        return self.control(p.SetRole(member=member, role=role))

    def certify_device(self, device_key: nacl.signing.SigningKey) -> Op:
        """Certify another device of this member (its key is here: it proves possession)."""
        device = bytes(device_key.verify_key)
        return self.control(
            p.CertifyDevice(
                member=self.member,
                device=device,
                device_cert=keys.device_cert_sign(self.member_key, self.thread, device),
                device_proof=keys.device_proof_sign(device_key, self.thread, self.member),
            )
        )

    def revoke_device(self, device: bytes) -> list[Op]:
        state = self.replica.control.state
        member = state.device_member(device)
        sig = (
            keys.device_revoke_sign(
                self.member_key, self.thread, device, state.devices[device].certified_by
            )
            if member == self.member
            else None
        )
        ops = [self.control(p.RevokeDevice(device=device, member_sig=sig))]
        if self._may_rotate():
            ops.append(self.rotate())
        return ops

    def set_name(self, name: str) -> Op:
        """Give this member ``name`` in the thread (normalized as every replica expects)."""
        return self.control(p.SetName(member=self.member, name=p.name_normalize(name)))
