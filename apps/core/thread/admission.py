"""Admission: which ops of a device never seen before may enter a replica's log (step 4 of the
pipeline in ``replica.py``), and what is held outside the log meanwhile.

A device's first op is admitted only if the device is certified by the control ops of that op's
own causal past, resolved on their own; so every replica decides it alike, whatever else it
holds, and a stranger's junk never enters the log, the heads or anyone's deps.
"""

from __future__ import annotations

from apps.core.thread import codec, crypto
from apps.core.thread import payloads as p
from apps.core.thread.batch import Batch
from apps.core.thread.op import KIND_CONTROL, KIND_KEYS, Op
from apps.core.thread.resolve import control_resolve, genesis_action
from apps.core.thread.store import Decision

MAX_AWAITING_KEYS = 1024  # first ops of devices (a thread has at most 1 024 devices)

_NONE = Decision("none")


class Admission:
    """The replica's admission rules; a mixin of ``Replica``, whose state it reads."""

    def _await_keys(self, op: Op) -> None:
        """A device's first op whose certification is in control ops this replica cannot read
        yet (a newcomer catching up gets the older keys later in the log): held, bounded."""
        if len(self._awaiting_keys) >= MAX_AWAITING_KEYS:
            oldest = next(iter(self._awaiting_keys))
            self._forget_waiting(self._awaiting_keys.pop(oldest))
        self._awaiting_keys[op.hash] = op

    def discard(self, op: Op) -> None:
        """Forget an op held outside the log: the writer's own op that could not go in (it
        must not come in later, after the writer signed another op at its place)."""
        self._awaiting_keys.pop(op.hash, None)
        self._forget_waiting(op)

    def _forget_waiting(self, op: Op) -> None:
        """An op that will never be admitted (its device is not certified): not kept."""
        if self.pending.pop(op.hash, None) is not None:
            self.pending_bytes -= len(op.raw)
        self._unpend_new(op)
        self.store.drop(op.hash)

    def _unpend_new(self, op: Op) -> None:
        if op.hash in self._new_pending:
            self._new_pending.discard(op.hash)
            self._new_pending_bytes -= len(op.raw)

    def _certified(self, op: Op, batch: Batch) -> str:
        """Whether a device's first op may enter the log: "yes", "no", or "later" (the batch's
        control ops are not decided yet).

        The rule is a function of the op's causal past only, so every replica decides it alike
        and no honest op ever depends on an op another honest replica turned away: the device
        must be certified by the control ops of the op's past, resolved on their own.
        """
        if not self.heads:
            # The log is empty: only the thread's create op can start it.
            valid = op.seq == 1 and not op.deps and op.kind == KIND_CONTROL and op.epoch == 0
            return "yes" if valid and not isinstance(genesis_action(self.thread, op), str) else "no"
        if batch.unsettled:
            return "later"
        control = self.control
        # Fast path: the op's past holds every control op (the usual case: a device writes
        # once it has caught up), so the replica's own resolution is the past's.
        covered = not self.forks and all(
            op.in_past(device, seq) for device, seq in self._control_heads.items()
        )
        if self._unreadable_control(op):
            # Some control op of its past cannot be read here: whether the device is certified
            # cannot be known (and must not be guessed: a replica never acts on control state
            # it cannot read). It waits for the keys.
            return "keys"
        if covered:
            member = control.timeline.device_member_in_past(op.device, op)
            return "yes" if member is not None else "no"
        if not self._claimed(op.device):
            return "no"  # no control op names this device: no fold needed
        past = [c for c in self._control_ops if op.in_past(c.device, c.seq)]
        resolution = control_resolve(
            self.thread,
            past,
            opener=self.opener,
            refusals={
                c.hash: reason for c in past if (reason := self.store.refusal(c.hash)) is not None
            },
            forks={},
        )
        member = resolution.timeline.device_member_in_past(op.device, op)
        return "yes" if member is not None else "no"

    def _claimed(self, device: bytes) -> bool:
        """Whether some control op this replica can read names ``device`` for admission or
        certification, whoever wrote it and whatever was decided of it: every device that is
        certified in some op's past is among them, and a stranger's junk key never is."""
        ops, scanned = self._control_ops, self._claims_scanned
        keys_known = sum(len(found) for found in self.keyring.by_keys_op.values())
        if keys_known != self._claims_keys:
            # New keys: control ops that did not open before may now.
            pending, self._claims_unread = self._claims_unread, []
            self._claims_keys = keys_known
        else:
            pending = []
        for op in [*pending, *ops[scanned:]]:
            if op.kind == KIND_KEYS:
                epoch = self.opener.keys(op)
                if not isinstance(epoch, Decision):
                    self._epoch_keys_ops.setdefault(epoch.epoch, []).append(op.hash)
                continue
            action = self._any_key_control(op)
            if action is None:
                self._claims_unread.append(op)
            elif isinstance(action, p.AddMember | p.RedeemInvite | p.CertifyDevice):
                self._claims.add(action.device)
        self._claims_scanned = len(ops)
        return device in self._claims

    def _any_key_control(self, op: Op) -> p.Control | None:
        """A control op's action, opened with any control key of its epoch number this replica
        holds (None: none opens it, or it does not parse)."""
        if op.seq == 1 and op.epoch == 0 and not op.deps:
            action = genesis_action(self.thread, op)
            return None if isinstance(action, str) else action
        for keys_op in self._epoch_keys_ops.get(op.epoch, ()):
            for epoch_keys in self.keyring.by_keys_op.get(keys_op, ()):
                try:
                    plain = crypto.aead_decrypt(epoch_keys.control, op.body, op.header_bytes())
                    return p.control_parse(codec.decode(plain, max_size=1 << 20, canonical=False))
                except (crypto.CryptoError, codec.DecodeError, p.PayloadError):
                    continue
        return None

    def _unreadable_control(self, op: Op) -> bool:
        """Whether a control op in ``op``'s past is opaque here (no key for it yet)."""
        decisions = self.control.decisions
        seen = (id(decisions), len(decisions))
        if self._opaque_seen != seen:
            self._opaque_control = [
                c for c in self._control_ops if decisions.get(c.hash, _NONE).status == "opaque"
            ]
            self._opaque_seen = seen
        return any(op.in_past(c.device, c.seq) for c in self._opaque_control)
