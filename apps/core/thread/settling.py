"""Deciding what an ingest call admitted (the end of the pipeline in ``replica.py``): control
ops resolved (added to the fold, or folded again when one comes before ops already folded),
then the batch's data ops decided, or every data op again when earlier decisions changed."""

from __future__ import annotations

from apps.core.thread.batch import Batch
from apps.core.thread.op import Op
from apps.core.thread.resolve import ControlResolution, control_resolve


class Settling:
    """The replica's deciding of a batch; a mixin of ``Replica``, whose state it reads."""

    def _settle(self, batch: Batch) -> bool:
        """Decide what the batch admitted; True if earlier decisions changed (rebuilt)."""
        before = self.control
        restrictions = len(before.restrictions)
        policies = [op.hash for op, _ in before.timeline.policy_events]
        rebuilt = False
        control_forked = any(self._has_control_from(device, seq) for device, seq in batch.forked)
        for device, seq in batch.forked:
            self._refuse_from(device, seq)
        batch.forked = []
        if batch.learned_old_keys and not self._anything_unread():
            # Keys for epochs this replica already reads (a rotation grants recent keys again
            # to everyone): nothing to decide again.
            batch.learned_old_keys = False
        changed = bool(batch.control or control_forked or batch.learned_old_keys)
        if changed:
            batch.control_changed = True
            extended = not batch.learned_old_keys and not control_forked
            if extended:
                extended = self._extend(before, batch.control)
            if extended:
                # A new restriction last in the order can only change data ops it did not
                # see; usually there are none (the remover had seen everything).
                added = before.restrictions.placed[restrictions:]
                restrictions += sum(1 for r in added if not self._restricts_any_data(r))
            else:
                self.control = self._resolve()
                # Ops of this batch that ``_extend`` decided before it gave up are new here,
                # not changed: only decisions from before the batch count.
                new = {op.hash for op in batch.control}
                rebuilt = any(
                    before.decisions.get(h) != d
                    for h, d in self.control.decisions.items()
                    if h in before.decisions and h not in new
                )
            rebuilt |= (
                batch.learned_old_keys
                or len(self.control.restrictions) != restrictions
                or [op.hash for op, _ in self.control.timeline.policy_events] != policies
            )
        batch.control = []
        batch.learned_old_keys = False  # handled: the next round of this batch starts clean
        if rebuilt or (self._ordered_stale and batch.data):
            self._redecide_data()
            batch.data = []
            return True
        if changed or self._data.control is not self.control:
            # Only then: setting it forgets the standings the checker worked out, and a local
            # write (a batch of one data op) would work its author's standing out every time.
            # Control ops are decided only above (``_extend`` changes the resolution in place).
            self._data.control = self.control
        for op in batch.data:
            self._decide(op)
        batch.data = []
        return False

    def _extend(self, control: ControlResolution, ops: list[Op]) -> bool:
        """Add the batch's control ops to ``control`` one by one, without folding again: each
        must come causally after every control op before it (the usual case: one writer, or a
        peer's log in causal order). False when one does not (it may be ordered before ops
        already folded): the caller then folds everything again."""
        for op in ops:
            if not control.extend(op, self.store.refusal(op.hash)):
                return False
            self.store.decide(op, control.decisions[op.hash], None)
        return True

    def _anything_unread(self) -> bool:
        """Whether some op here waits for a key: a control or data op decided opaque, or a
        device's first op whose certification could not be read."""
        return bool(self.undecided or self._awaiting_keys or self.control.opaque)

    def _restricts_any_data(self, restriction) -> bool:
        """Whether some admitted data op is concurrent with ``restriction`` and by whom it
        restricts (its member, or its one device)."""
        if restriction.device is not None:
            devices = {restriction.device}
        else:
            devices = self.control.timeline.member_devices.get(restriction.member, set())
        op = restriction.op
        seen = {
            device: op.deps_map.get(device, 0) if device != op.device else op.seq
            for device in devices
        }
        # A device with nothing in the log past what the restriction saw (the usual case) has
        # no such data op: no need to ask the store.
        return any(
            self.store.data_after(device, seq)
            for device, seq in seen.items()
            if self.heads.get(device, 0) > seq
        )

    def _resolve(self) -> ControlResolution:
        refusals = {
            op.hash: reason
            for op in self._control_ops
            if (reason := self.store.refusal(op.hash)) is not None
        }
        control = control_resolve(
            self.thread,
            self._control_ops,
            opener=self.opener,
            refusals=refusals,
            forks=self.forks,
        )
        for op in self._control_ops:
            decision = control.decisions[op.hash]
            # Only what changed is written: a refold decides most ops as before, and an UPDATE
            # rewrites the op's row with its bytes (a large thread's keys op is hundreds of kB).
            if self.store.decision(op.hash) != decision:
                self.store.decide(op, decision, None)
        return control

    def _redecide_data(self) -> None:
        self._ordered_reset()
        self.store.row_events_clear()
        self.undecided.clear()
        self._data = self._data_checker()
        for op in self.store.admitted(data_only=True):
            self._decide(op)

    def redecide_waiting(self) -> bool:
        """After an upgrade (new app schema versions known): decide again what waited.
        True if anything did."""
        if not self.store.has_waiting():
            return False
        self._redecide_data()
        return True

    def member_key_add(self, member_key) -> None:
        """Hold another of our member keys: open the keys ops sealed to it, decide again."""
        member = bytes(member_key.verify_key)
        if member in self.keyring.members:
            return
        self.keyring.members[member] = member_key
        self.keyring.forget_opened()
        batch = Batch()
        for op in self._control_ops:
            batch.learned_old_keys |= bool(self.keyring.learn(op))
        if batch.learned_old_keys:
            self._settle(batch)
