"""Forks and the static rules of an admitted op (steps 3 and 5 of the pipeline in ``replica.py``).

A device that signs two different ops at one place has equivocated: the two ops are kept as
evidence and the device's ops from that place on are refused everywhere, which re-decides only
that device's own data ops (no data decision depends on another member's data ops).
"""

from __future__ import annotations

from dataclasses import dataclass

from apps.core.thread.batch import Batch, IngestResult
from apps.core.thread.op import Op
from apps.core.thread.store import Decision


@dataclass(frozen=True)
class ForkEvidence:
    device: bytes
    seq: int
    ops: tuple[Op, ...]


class Forks:
    """The replica's fork handling and static rules; a mixin of ``Replica``."""

    def _fork(self, op: Op, seq: int, known: Op, batch: Batch) -> IngestResult:
        previous = self.forks.get(op.device)
        if previous is not None and previous <= seq:
            # The device is known to have equivocated at or before this place: its later ops
            # (either branch) change nothing and are not kept.
            return IngestResult("fork", "the device had already equivocated", op)
        # The evidence is the two ops at the lowest forked slot (or an op whose prev contradicts
        # the op held there): older evidence of the device is no longer needed.
        for old in self.evidence.get(op.device, []):
            if old is not known and self.store.op(old.id) is not old:
                self.store.drop(old.hash)
        self.store.keep(op, place="evidence")
        self.evidence[op.device] = [known, op]
        self.forks[op.device] = seq
        batch.forked.append((op.device, seq))
        # Static rules skip references into a forked chain (which branch a replica holds is
        # arbitrary): ops refused by them may pass now. Only ops already refused can change.
        for refused_op in self.store.statically_refused():
            self.store.set_refusal(refused_op.hash, self._static_check(refused_op))
        return IngestResult(
            "fork", f"device {op.device.hex()[:8]} signed two different ops at {seq}", op
        )

    def _has_control_from(self, device: bytes, seq: int) -> bool:
        return any(op.device == device and op.seq >= seq for op in self._control_ops)

    def _refuse_from(self, device: bytes, seq: int) -> None:
        """A device forked at ``seq``: its data ops from there on are refused, and the rows they
        had changed are rebuilt from the other ops' changes (nobody else's decision depends on
        them)."""
        self.store.refuse_data_from(
            device, seq, Decision("refused", "the device equivocated (signed two different ops)")
        )
        self._unjudge(  # type: ignore[attr-defined]
            [
                op.hash
                for op in self.store.admitted(data_only=True)  # type: ignore[attr-defined]
                if op.device == device and op.seq >= seq
            ]
        )

    def _forked(self, device: bytes, seq: int) -> bool:
        fork = self.forks.get(device)
        return fork is not None and seq >= fork

    def _static_check(self, op: Op) -> str | None:
        """Rules that need only the op and its direct references (validation step 2 and 3's
        groundwork): stamps grow, deps grow along the chain and are causally closed."""
        before = self.store.op((op.device, op.seq - 1)) if op.seq > 1 else None
        full_closure = before is None or self.store.refusal(before.hash) is not None
        if before is not None and not self._forked(op.device, before.seq):
            if op.hlc <= before.hlc:
                return "its clock stamp is not after the device's previous op"
            for device, seq in before.deps:
                if op.deps_map.get(device, 0) < seq:
                    return "its deps go back behind the device's previous op"
        for device, seq in op.deps:
            if self._forked(device, seq):
                continue
            ref = self.store.op((device, seq))
            assert ref is not None  # admitted ops have their past
            if op.hlc <= ref.hlc:
                return "its clock stamp is not after an op it depends on"
            if full_closure or before.deps_map.get(device, 0) < seq:  # type: ignore[union-attr]
                for ref_device, ref_seq in ref.deps:
                    if ref_device == op.device:
                        if ref_seq >= op.seq:
                            return "it depends on an op that depends on its own future"
                    elif op.deps_map.get(ref_device, 0) < ref_seq and not self._forked(
                        ref_device, ref_seq
                    ):
                        return "its deps are not causally closed"
        return None
