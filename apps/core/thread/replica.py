"""A replica of one thread: takes ops in any order, any number of times, and decides each.

``Replica.ingest`` runs the validation pipeline of DESIGN §4 on bytes from anywhere:

1. shape and size (``op_decode``): malformed bytes are refused and not kept;
2. signature, then the chain: the same op again is a duplicate; a different op at a known
   (device, seq), or one whose ``prev`` contradicts the known op before it, is a **fork**: both are
   kept as evidence and the device's ops from that place on are refused everywhere. An op whose
   predecessor or dependencies are missing waits as **pending**;
3. once admitted (its causal past complete), the static rules: stamps grow along every causal
   edge, ``deps`` never shrink along a chain and are causally closed;
4. -6. keys, authorization and app rules, by the resolver (``resolve.py``).

What grows with the log lives in an ``OpStore``; the replica keeps the control ops, the version
vector, pending ops and forks in memory. An ingest call is a batch: ops are admitted as their past
completes, then control ops are resolved once and the data ops admitted are decided. A control
op can change earlier decisions (a concurrent removal ordered before others); then every data op
is decided again and ``IngestResult.rebuilt`` tells a database layer to re-apply from the log.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from apps.core.thread import crypto
from apps.core.thread import payloads as p
from apps.core.thread.hlc import Stamp
from apps.core.thread.op import KIND_DATA, Op, OpId, OpShapeError, op_decode, op_verify
from apps.core.thread.resolve import (
    ControlResolution,
    DataChecker,
    Keyring,
    Opener,
    RowValidator,
    control_resolve,
)
from apps.core.thread.state import Snapshot
from apps.core.thread.store import Decision, MemoryStore, OpStore

IngestStatus = Literal[
    "accepted",
    "refused",
    "opaque",
    "pending",
    "duplicate",
    "malformed",
    "fork",
    "foreign",
    "dropped",  # would wait for its past, but too much already waits: fetch it again later
    "admitted",  # internal: in the DAG, decided when the batch settles
]


@dataclass(frozen=True)
class IngestResult:
    status: IngestStatus
    reason: str = ""
    op: Op | None = None
    # Every op the ingest call admitted (the op itself and pending ops it released), in order.
    decided: tuple[Op, ...] = ()
    # True when earlier decisions changed (a control op or a fork reordered things).
    rebuilt: bool = False


@dataclass(frozen=True)
class Verified:
    """Ops decoded and signature-checked ahead of ingestion (``verified``), so that the costly
    part of step 2 can run in another thread while earlier ops are being applied."""

    items: tuple[Op | IngestResult, ...]


def verified(raws: Iterable[bytes]) -> Verified:
    """Steps 1 and 2a for a batch: shape, size and signature. Pure; no replica needed."""
    items: list[Op | IngestResult] = []
    for raw in raws:
        try:
            op = op_decode(raw)
            op_verify(op)
        except OpShapeError as exc:
            items.append(IngestResult("malformed", str(exc)))
        except crypto.CryptoError as exc:
            items.append(IngestResult("malformed", str(exc)))
        else:
            items.append(op)
    return Verified(tuple(items))


@dataclass(frozen=True)
class ForkEvidence:
    device: bytes
    seq: int
    ops: tuple[Op, ...]


@dataclass
class _Batch:
    """What one ingest call admitted, to be decided together."""

    admitted: list[Op] = field(default_factory=list)
    control: list[Op] = field(default_factory=list)
    data: list[Op] = field(default_factory=list)
    learned_old_keys: bool = False
    forked: bool = False


class _StoreMapping(Mapping):
    """A read-only mapping view of the store, for callers used to dictionaries."""

    def __init__(self, get, keys) -> None:
        self._get, self._keys = get, keys

    def __getitem__(self, key):
        value = self._get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __iter__(self):
        return iter(self._keys())

    def __len__(self) -> int:
        return sum(1 for _ in self._keys())


class Replica:
    # Ops waiting for their past are kept until it arrives; a peer could send endless ops whose
    # past never comes, so the bytes waiting are capped (sync sends ops in causal order, so an
    # honest peer needs at most a batch of them).
    MAX_PENDING_BYTES = 32 * 1024 * 1024

    def __init__(
        self,
        thread: bytes,
        keyring: Keyring,
        store: OpStore | None = None,
        validators: Mapping[str, RowValidator] | None = None,
    ) -> None:
        self.thread = thread
        self.keyring = keyring
        self.store: OpStore = store if store is not None else MemoryStore()
        self.validators = dict(validators or {})
        self.heads: dict[bytes, int] = {}
        self.max_hlc: Stamp | None = None
        self.pending: dict[bytes, Op] = {}
        self.pending_bytes = 0
        self._waiting: dict[OpId, list[bytes]] = {}
        self.forks: dict[bytes, int] = {}
        self.evidence: dict[bytes, list[Op]] = {}
        self._control_ops: list[Op] = []
        self.opener = Opener(thread, keyring)
        self.control: ControlResolution = control_resolve(
            thread, [], opener=self.opener, refusals={}, forks={}
        )
        self._data = self._data_checker()

    @classmethod
    def for_members(cls, thread: bytes, member_keys: Iterable = (), **kwargs) -> Replica:
        return cls(thread=thread, keyring=Keyring(thread, member_keys), **kwargs)

    def reload(self) -> None:
        """Rebuild the in-memory part from the store, trusting its decisions: after a restart,
        after another process wrote to the same store, or after a rolled-back write."""
        self.heads = self.store.heads()
        self._control_ops = self.store.control_log()
        tips = [self.store.op((device, seq)) for device, seq in self.heads.items()]
        self.max_hlc = max((op.hlc for op in tips if op is not None), default=None)
        self.forks, self.evidence = {}, {}
        for op in self.store.held("evidence"):
            slot = self.store.op(op.id)
            seq = op.seq if slot is not None and slot.hash != op.hash else op.seq - 1
            self.forks[op.device] = min(self.forks.get(op.device, seq), seq)
            self.evidence.setdefault(op.device, []).append(op)
            if slot is not None and slot not in self.evidence[op.device]:
                self.evidence[op.device].append(slot)
        self.pending, self._waiting, self.pending_bytes = {}, {}, 0
        for op in self.store.held("pending"):
            missing = self._missing(op)
            if missing is not None:
                self.pending[op.hash] = op
                self.pending_bytes += len(op.raw)
                self._waiting.setdefault(missing, []).append(op.hash)
        for op in self._control_ops:
            self.keyring.learn(op)
        self.control = control_resolve(
            self.thread,
            self._control_ops,
            opener=self.opener,
            refusals={
                op.hash: reason
                for op in self._control_ops
                if (reason := self.store.refusal(op.hash)) is not None
            },
            forks=self.forks,
        )
        self._data = self._data_checker()

    def _data_checker(self) -> DataChecker:
        return DataChecker(self.control, self.opener, self.store, self.validators, self.forks)

    # -- reading -----------------------------------------------------------------------------

    @property
    def slots(self) -> Mapping[OpId, Op]:
        return _StoreMapping(self.store.op, lambda: (op.id for op in self.store.admitted()))

    @property
    def admitted(self) -> list[Op]:
        return list(self.store.admitted())

    @property
    def decisions(self) -> Mapping[bytes, Decision]:
        return _StoreMapping(
            self.store.decision,
            lambda: (op.hash for op in self.store.admitted() if self.store.decision(op.hash)),
        )

    @property
    def by_hash(self) -> Mapping[bytes, Op]:
        """Every op held: admitted, pending and fork evidence."""

        def keys():
            yield from (op.hash for op in self.store.admitted())
            yield from self.pending
            for ops in self.evidence.values():
                for op in ops:
                    if self.store.op(op.id) is not op:
                        yield op.hash

        return _StoreMapping(self.store.op_by_hash, lambda: dict.fromkeys(keys()))

    def version_vector(self) -> dict[bytes, int]:
        return dict(self.heads)

    def snapshot(self) -> Snapshot:
        return self.control.state.snapshot()

    def decision(self, op_hash: bytes) -> Decision | None:
        return self.store.decision(op_hash)

    def accepted_hashes(self) -> frozenset[bytes]:
        return frozenset(
            op.hash
            for op in self.store.admitted()
            if (d := self.store.decision(op.hash)) is not None and d.status == "accepted"
        )

    def accepted_data(self) -> Iterator[tuple[Op, list[p.RowChange]]]:
        for op in self.store.admitted(data_only=True):
            decision = self.store.decision(op.hash)
            if decision is not None and decision.status == "accepted":
                yield op, self.store.changes(op.hash) or []

    def fork_evidence(self) -> list[ForkEvidence]:
        return [
            ForkEvidence(device, seq, tuple(self.evidence.get(device, ())))
            for device, seq in sorted(self.forks.items())
        ]

    # -- ingest ------------------------------------------------------------------------------

    def ingest(self, raw: bytes) -> IngestResult:
        return self.ingest_many([raw])[0]

    def ingest_op(self, op: Op, *, signed_here: bool = False) -> IngestResult:
        """``signed_here``: the op was just signed by this process (its own write), so its
        signature is not checked again; every other rule is."""
        return self._ingest([op], signed_here=signed_here)[0]

    def ingest_many(self, raws: Iterable[bytes] | Verified) -> list[IngestResult]:
        """Ingest a batch (a sync frame, or one op); ``Verified`` ops skip the signature check
        they already passed."""
        if isinstance(raws, Verified):
            return self._ingest(raws.items, signed_here=True)
        items: list[Op | IngestResult] = []
        for raw in raws:
            try:
                items.append(op_decode(raw))
            except OpShapeError as exc:
                items.append(IngestResult("malformed", str(exc)))
        return self._ingest(items)

    def _ingest(
        self, items: Iterable[Op | IngestResult], *, signed_here: bool = False
    ) -> list[IngestResult]:
        batch = _Batch()
        results = [
            item if isinstance(item, IngestResult) else self._take(item, batch, signed_here)
            for item in items
        ]
        rebuilt = self._settle(batch)
        decided = tuple(batch.admitted)
        final = []
        for result in results:
            if result.status == "admitted":
                assert result.op is not None
                decision = self.store.decision(result.op.hash)
                assert decision is not None
                result = IngestResult(decision.status, decision.reason, result.op, decided, rebuilt)
            final.append(result)
        return final

    def _take(self, op: Op, batch: _Batch, signed_here: bool = False) -> IngestResult:
        """Steps 1-2 for one op: admitted (with anything it releases), pending, or turned away."""
        if op.thread != self.thread:
            return IngestResult("foreign", "the op belongs to another thread", op)
        # An op past its device's head cannot be in the log; unless the device forked (then
        # evidence is kept) or the op waits as pending, it is new: no need to ask the store.
        fresh = op.seq > self.heads.get(op.device, 0) and op.device not in self.forks
        if op.hash in self.pending or (not fresh and self.store.op_by_hash(op.hash) is not None):
            decision = self.store.decision(op.hash)
            return IngestResult("duplicate", decision.reason if decision else "", op)
        if not signed_here:
            try:
                op_verify(op)
            except crypto.CryptoError as exc:
                return IngestResult("malformed", str(exc))
        missing = self._missing(op)
        if missing is not None and (fresh or self.store.op(op.id) is None):
            if self.pending_bytes + len(op.raw) > self.MAX_PENDING_BYTES:
                return IngestResult("dropped", "too many ops are waiting for their past", op)
            self.pending[op.hash] = op
            self.pending_bytes += len(op.raw)
            self.store.keep(op, place="pending")
            self._waiting.setdefault(missing, []).append(op.hash)
            return IngestResult(
                "pending", f"waiting for op {missing[0].hex()[:8]}:{missing[1]}", op
            )
        fork = self._admit_and_release(op, batch)
        if fork is not None:
            return fork
        return IngestResult("admitted", "", op)

    def _missing(self, op: Op) -> OpId | None:
        if op.seq > 1 and self.heads.get(op.device, 0) < op.seq - 1:
            return (op.device, op.seq - 1)
        for device, seq in op.deps:
            if self.heads.get(device, 0) < seq:
                return (device, seq)
        return None

    def _admit_and_release(self, first: Op, batch: _Batch) -> IngestResult | None:
        """Admit ``first`` and every pending op it completes; the fork result if ``first`` forks."""
        queue = [first]
        outcome = None
        while queue:
            op = queue.pop()
            # Ops released together can collide: recheck the place right before admitting.
            beyond = op.seq > self.heads.get(op.device, 0) and op.device not in self.forks
            twin = None if beyond else self.store.op(op.id)
            before = self.store.op((op.device, op.seq - 1)) if op.seq > 1 else None
            if twin is not None:
                result = self._fork(op, op.seq, twin, batch)
            elif before is not None and before.hash != op.prev:
                result = self._fork(op, op.seq - 1, before, batch)
            else:
                result = None
                self._admit(op, batch)
                for waiter_hash in self._waiting.pop(op.id, ()):
                    waiter = self.pending.pop(waiter_hash)
                    missing = self._missing(waiter)
                    if missing is None:
                        self.pending_bytes -= len(waiter.raw)
                        queue.append(waiter)
                    else:
                        self.pending[waiter_hash] = waiter
                        self._waiting.setdefault(missing, []).append(waiter_hash)
            if op is first:
                outcome = result
        return outcome

    def _admit(self, op: Op, batch: _Batch) -> None:
        """Put an op whose past is complete into the DAG; it is decided when the batch settles."""
        self.store.admit(op)
        self.heads[op.device] = op.seq
        batch.admitted.append(op)
        if self.max_hlc is None or op.hlc > self.max_hlc:
            self.max_hlc = op.hlc
        reason = self._static_check(op)
        if reason is not None:
            self.store.set_refusal(op.hash, reason)
        if op.kind == KIND_DATA:
            batch.data.append(op)
        else:
            self._control_ops.append(op)
            batch.control.append(op)
            batch.learned_old_keys |= bool(self.keyring.learn(op) - {op.hash})

    def _settle(self, batch: _Batch) -> bool:
        """Decide what the batch admitted; True if earlier decisions changed (rebuilt)."""
        before = self.control
        restrictions, policy = len(before.restrictions), before.state.policy
        rebuilt = False
        if batch.control or batch.forked or batch.learned_old_keys:
            single = batch.control[0] if len(batch.control) == 1 else None
            if (
                single is not None
                and not batch.learned_old_keys
                and not batch.forked
                and before.extend(single)
            ):
                self.store.decide(single, before.decisions[single.hash], None)
                # A new restriction last in the order can only change data ops it did not
                # see; usually there are none (the remover had seen everything).
                added = before.restrictions[restrictions:]
                restrictions += sum(1 for r in added if not self._restricts_any_data(r))
            else:
                self.control = self._resolve()
                rebuilt = any(
                    before.decisions.get(h) != d
                    for h, d in self.control.decisions.items()
                    if h in before.decisions
                )
            rebuilt |= (
                batch.learned_old_keys
                or batch.forked
                or len(self.control.restrictions) != restrictions
                or self.control.state.policy != policy
            )
        if rebuilt:
            self._redecide_data()
            return True
        self._data.control = self.control
        for op in batch.data:
            decision, changes = self._data.check(op, self.store.refusal(op.hash))
            self.store.decide(op, decision, changes)
        return False

    def _restricts_any_data(self, restriction) -> bool:
        """Whether some admitted data op is concurrent with ``restriction`` and by whom it
        restricts (its member, or its one device)."""
        timeline = self.control.timeline
        if restriction.device is not None:
            devices = {restriction.device}
        else:
            devices = {
                device
                for device, events in timeline.device_events.items()
                if any(member == restriction.member for _op, member in events)
            }
        op = restriction.op
        return any(
            self.store.data_after(
                device, op.deps_map.get(device, 0) if device != op.device else op.seq
            )
            for device in devices
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
            self.store.decide(op, control.decisions[op.hash], None)
        return control

    def _redecide_data(self) -> None:
        self.store.row_events_clear()
        self._data = self._data_checker()
        for op in self.store.admitted(data_only=True):
            decision, changes = self._data.check(op, self.store.refusal(op.hash))
            self.store.decide(op, decision, changes)

    def member_key_add(self, member_key) -> None:
        """Hold another of our member keys: open the keys ops sealed to it, decide again."""
        member = bytes(member_key.verify_key)
        if member in self.keyring.members:
            return
        self.keyring.members[member] = member_key
        self.keyring.forget_opened()
        batch = _Batch()
        for op in self._control_ops:
            batch.learned_old_keys |= bool(self.keyring.learn(op))
        if batch.learned_old_keys:
            self._settle(batch)

    # -- forks -------------------------------------------------------------------------------

    def _fork(self, op: Op, seq: int, known: Op, batch: _Batch) -> IngestResult:
        self.store.keep(op, place="evidence")
        evidence = self.evidence.setdefault(op.device, [])
        for item in (known, op):
            if item not in evidence:
                evidence.append(item)
        previous = self.forks.get(op.device)
        if previous is not None and previous <= seq:
            return IngestResult("fork", "the device had already equivocated", op)
        self.forks[op.device] = seq
        # Static rules skip references into a forked chain (which branch a replica holds is
        # arbitrary), so they are re-run; the batch then decides everything again.
        for admitted in self.store.admitted():
            self.store.set_refusal(admitted.hash, self._static_check(admitted))
        batch.forked = True
        return IngestResult(
            "fork",
            f"device {op.device.hex()[:8]} signed two different ops at {seq}",
            op,
            rebuilt=True,
        )

    def _forked(self, device: bytes, seq: int) -> bool:
        fork = self.forks.get(device)
        return fork is not None and seq >= fork

    # -- static rules ---------------------------------------------------------------------------

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
