"""A replica of one thread: takes ops in any order, any number of times, and decides each.

``Replica.ingest`` runs the validation pipeline of DESIGN §4 on bytes from anywhere:

1. shape and size (``op_decode``): malformed bytes are refused and not kept;
2. the op's stamp: one more than ``MAX_AHEAD_MS`` ahead of this node's clock is **held** (not
   kept: the peer offers it again, and it is taken once the clock catches up), so no stamp far
   in the future ever enters the log, wins last-writer-wins or drags this node's clock along;
3. signature, then the chain: the same op again is a duplicate; a different op at a known
   (device, seq), or one whose ``prev`` contradicts the known op before it, is a **fork**: the
   two ops at the slot are kept as evidence (only those: later ops of the losing branch are not)
   and the device's ops from that place on are refused everywhere. An op whose predecessor or
   dependencies are missing waits as **pending** (bounded);
4. **admission**: a device's first op enters the log only if the device is certified in the
   op's causal past, decided by the control ops of that past alone (so every replica decides
   it the same, whatever else it holds). An op of a device that is not is **unknown**: not
   kept, never in the heads, the version vector or anyone's ``deps``, never forwarded;
5. once admitted, the static rules: stamps grow along every causal edge, ``deps`` never shrink
   along a chain and are causally closed;
6. keys, authorization and app rules, by the resolver (``resolve.py``).

What grows with the log lives in an ``OpStore``; the replica keeps the control ops, the version
vector, pending ops and forks in memory. An ingest call is a batch: ops are admitted as their past
completes, then control ops are resolved once and the data ops admitted are decided. A control
op can change earlier decisions (a concurrent removal ordered before others); then every data op
is decided again and ``IngestResult.rebuilt`` says so. A fork only re-decides the forked
device's own ops (data decisions never depend on another member's data ops).

The parts are mixins in modules of their own: ``admission``, ``forks`` (and the static rules),
``ordering`` (ordered tables), ``settling`` (deciding a batch) and ``reading`` (the read side).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from apps.core.thread import ahead, crypto
from apps.core.thread.admission import Admission
from apps.core.thread.batch import Batch, IngestResult, unknown_result
from apps.core.thread.forks import ForkEvidence, Forks
from apps.core.thread.gcpause import gc_paused
from apps.core.thread.hlc import Stamp, wall_millis
from apps.core.thread.op import (
    KIND_DATA,
    KIND_KEYS,
    Op,
    OpId,
    OpShapeError,
    op_decode,
    op_verify,
)
from apps.core.thread.ordered import Validator
from apps.core.thread.ordered_data import OrderedData, ordered_validators
from apps.core.thread.ordering import Ordering
from apps.core.thread.reading import Reading
from apps.core.thread.resolve import (
    ControlResolution,
    DataChecker,
    Keyring,
    Opener,
    RowRules,
    control_resolve,
)
from apps.core.thread.settling import Settling
from apps.core.thread.store import MemoryStore, OpStore
from apps.core.thread.verifying import Verified, verified, verified_ahead

__all__ = ["ForkEvidence", "IngestResult", "Replica", "Verified", "verified", "verified_ahead"]

# How far ahead of this node's clock an op's stamp may be. Covers honest clock skew (the fault
# tests run nodes ±5 minutes apart) with room to spare; a stamp beyond it waits for time.
MAX_AHEAD_MS = 15 * 60 * 1000
# Ops waiting for their past, by bytes (all) and by count for devices this replica holds
# nothing of yet (a stranger can sign endless such ops; honest peers send in causal order).
MAX_PENDING_BYTES = 32 * 1024 * 1024
MAX_PENDING_NEW_DEVICES = 4096
MAX_PENDING_NEW_DEVICE_BYTES = 8 * 1024 * 1024


class Replica(Admission, Forks, Ordering, Reading, Settling):
    MAX_PENDING_BYTES = MAX_PENDING_BYTES

    def __init__(
        self,
        thread: bytes,
        keyring: Keyring,
        store: OpStore | None = None,
        rules: RowRules | None = None,
        wall: Callable[[], int] = wall_millis,
        validators: Mapping[str, Validator] | None = None,
    ) -> None:
        """``rules``: the app rules of row changes (see ``data.RowRules``); ``wall``: this
        node's clock in milliseconds, read only to hold ops stamped in its future."""
        self.thread = thread
        self.keyring = keyring
        self.store: OpStore = store if store is not None else MemoryStore()
        self.rules = rules
        # The rules of ordered tables: this node's apps' (``validators_register``) by default.
        self.ordered = OrderedData(ordered_validators() if validators is None else validators)
        self._ordered_stale = False
        self.wall = wall
        self.heads: dict[bytes, int] = {}
        # The hash of each device's op at its head: peers compare them to find equivocation.
        self.head_hashes: dict[bytes, bytes] = {}
        self.max_hlc: Stamp | None = None
        self.pending: dict[bytes, Op] = {}
        self.pending_bytes = 0
        self._waiting: dict[OpId, list[bytes]] = {}
        self.forks: dict[bytes, int] = {}
        self.evidence: dict[bytes, list[Op]] = {}
        self._control_ops: list[Op] = []
        self._awaiting_keys: dict[bytes, Op] = {}
        # Pending ops of devices with nothing in the log yet (a stranger's junk would be here).
        self._new_pending: set[bytes] = set()
        self._new_pending_bytes = 0
        self._opaque_control: list[Op] = []
        self._opaque_seen: object = None
        # Devices named by readable control ops (``_claimed``), and how far that was worked out.
        self._claims: set[bytes] = set()
        self._claims_scanned = 0
        self._claims_unread: list[Op] = []
        self._claims_keys = 0
        self._epoch_keys_ops: dict[int, list[bytes]] = {}
        # Each device's highest control op seq: an op whose past holds all of them sees the
        # same control state as the whole replica (admission's fast path).
        self._control_heads: dict[bytes, int] = {}
        self.opener = Opener(thread, keyring)
        # The fold keeps a reference to the replica's forks: a control op added to it later
        # (``ControlResolution.extend``) sees forks found since.
        self.control: ControlResolution = control_resolve(
            thread, [], opener=self.opener, refusals={}, forks=self.forks
        )
        # device -> lowest seq of one of its data ops this replica could not decide (no key).
        self.undecided: dict[bytes, int] = {}
        self._data = self._data_checker()
        self._keys_noted = 0  # keys of the keyring told to ``ahead`` so far

    @classmethod
    def for_members(cls, thread: bytes, member_keys: Iterable = (), **kwargs) -> Replica:
        return cls(thread=thread, keyring=Keyring(thread, member_keys), **kwargs)

    def reload(self) -> None:
        """Rebuild the in-memory part from the store, trusting its decisions: after a restart,
        after another process wrote to the same store, or after a rolled-back write."""
        self.heads = self.store.heads()
        self._control_ops = self.store.control_log()
        self._claims, self._claims_scanned, self._claims_unread = set(), 0, []
        self._claims_keys, self._epoch_keys_ops = 0, {}
        self._control_heads = {}
        for op in self._control_ops:
            self._control_heads[op.device] = max(self._control_heads.get(op.device, 0), op.seq)
        tips = [self.store.op((device, seq)) for device, seq in self.heads.items()]
        self.head_hashes = {op.device: op.hash for op in tips if op is not None}
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
        self._new_pending, self._new_pending_bytes = set(), 0
        for op in self.store.held("pending"):
            missing = self._missing(op)
            if missing is None or op.seq <= self.heads.get(op.device, 0):
                self.store.drop(op.hash)  # its slot is taken, or it can go in: offered again
                continue
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
        self.undecided = self.store.undecided_data()
        self._data = self._data_checker()
        # The ordered judge lives in memory: with ordered tables in the thread, the next data
        # op is decided after everything is decided again (which builds the judge).
        self.ordered.reset()
        self._ordered_stale = any(
            policy.ordered for _, policy in self.control.timeline.policy_events
        )

    def _data_checker(self) -> DataChecker:
        return DataChecker(
            self.control,
            self.opener,
            self.store,
            self.rules,
            self.forks,
            self.undecided,
            self._control_heads,
        )

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
        with gc_paused():  # a frame's many short-lived objects: see ``gcpause``
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
        batch = Batch()
        # Per item: its result, or the op itself when admitted (decided below, once settled).
        results: list[IngestResult | Op] = [
            item if isinstance(item, IngestResult) else self._take(item, batch, signed_here)
            for item in items
        ]
        self._keys_note()
        late: dict[bytes, IngestResult] = {}
        rebuilt = self._settle(batch)
        # First ops of devices certified by this batch's control ops: now they can be judged,
        # and what they release may certify more. Ops whose certification this replica could
        # not read yet are tried again whenever control ops were decided (keys may have come).
        while True:
            work, batch.deferred = batch.deferred, []
            if batch.control_changed and self._awaiting_keys:
                work += list(self._awaiting_keys.values())
                self._awaiting_keys.clear()
            batch.control_changed = False
            if not work:
                break
            for op in work:
                # A deferred first op can meet its twin meanwhile (both ops of a fork in one
                # frame): it is then fork evidence, not in the log, and has no decision.
                outcome = self._admit_and_release(op, batch)
                if outcome is not None:
                    late[op.hash] = outcome
            rebuilt |= self._settle(batch)
        decided = tuple(batch.admitted)
        final = []
        decision_of = self.store.decision
        for result in results:
            if type(result) is Op:  # admitted (``_take``): its result is its decision
                op = result
                if op.hash in late:
                    result = late[op.hash]
                elif op.hash in batch.unknown:
                    result = unknown_result(op)
                elif op.hash in self._awaiting_keys:
                    result = IngestResult(
                        "pending", "waiting for the keys to read who certified its device", op
                    )
                else:
                    decision = decision_of(op.hash)
                    assert decision is not None
                    result = IngestResult(
                        decision.status,
                        decision.reason,
                        op,
                        decided,
                        rebuilt,  # type: ignore[arg-type]
                    )
            final.append(result)
        return final

    def _keys_note(self) -> None:
        """Tell ``ahead`` of keys learned since last time: the helper process opens the next
        frames' data bodies with them."""
        count = sum(len(k) for k in self.keyring.by_keys_op.values())
        if count != self._keys_noted:
            ahead.keys_note(self.thread, self.keyring.by_keys_op)
            self._keys_noted = count

    def _take(self, op: Op, batch: Batch, signed_here: bool = False) -> IngestResult | Op:
        """Steps 1-4 for one op: admitted (with anything it releases; then the op itself is
        answered, its result made once it is decided), pending, or turned away."""
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
        # The clock is read once per batch (a frame takes well under a second: against the
        # 15 minutes allowed, an op is at most held that much longer, never taken earlier).
        if batch.now is None:
            batch.now = self.wall()
        early = op.hlc.millis - batch.now
        if early > MAX_AHEAD_MS:
            return IngestResult(
                "held",
                f"stamped {early // 60_000} minutes ahead of this node's clock: taken once the "
                "clock gets there",
                op,
            )
        if op.kind == KIND_KEYS and self.keyring.members:
            # Keys sealed to us are learned on arrival, even before the op can be admitted: a
            # newcomer gets its keys op first and reads the history that follows. A key counts
            # only once its keys op is accepted and in an op's past (``keyring``).
            batch.learned_old_keys |= bool(self.keyring.learn(op) - {op.hash})
        missing = self._missing(op)
        if missing is not None and (fresh or self.store.op(op.id) is None):
            return self._wait(op, missing)
        fork = self._admit_and_release(op, batch)
        if fork is not None:
            return fork
        return op

    def _wait(self, op: Op, missing: OpId) -> IngestResult:
        if self.pending_bytes + len(op.raw) > self.MAX_PENDING_BYTES:
            return IngestResult("dropped", "too many ops are waiting for their past", op)
        if op.device not in self.heads:
            if (
                len(self._new_pending) >= MAX_PENDING_NEW_DEVICES
                or self._new_pending_bytes + len(op.raw) > MAX_PENDING_NEW_DEVICE_BYTES
            ):
                return IngestResult("dropped", "too many ops of new devices are waiting", op)
            self._new_pending.add(op.hash)
            self._new_pending_bytes += len(op.raw)
        self.pending[op.hash] = op
        self.pending_bytes += len(op.raw)
        self.store.keep(op, place="pending")
        self._waiting.setdefault(missing, []).append(op.hash)
        return IngestResult("pending", f"waiting for op {missing[0].hex()[:8]}:{missing[1]}", op)

    def _missing(self, op: Op) -> OpId | None:
        if op.seq > 1 and self.heads.get(op.device, 0) < op.seq - 1:
            return (op.device, op.seq - 1)
        for device, seq in op.deps:
            if self.heads.get(device, 0) < seq and not self._forked(device, seq):
                return (device, seq)
        # A dep into a forked chain past the fork needs nothing more: those ops are refused
        # everywhere, and which branch a replica holds of them is arbitrary.
        return None

    def _admit_and_release(self, first: Op, batch: Batch) -> IngestResult | None:
        """Admit ``first`` and every pending op it completes; the fork result if ``first`` forks."""
        queue = [first]
        outcome = None
        while queue:
            op = queue.pop()
            if op.device not in self.heads:
                verdict = self._certified(op, batch)
                if verdict == "later":
                    batch.deferred.append(op)
                    continue
                if verdict == "keys":
                    self._await_keys(op)
                    continue
                if verdict == "no":
                    batch.unknown.add(op.hash)
                    self._forget_waiting(op)
                    continue
            # Ops released together can collide: recheck the place right before admitting.
            beyond = op.seq > self.heads.get(op.device, 0) and op.device not in self.forks
            twin = None if beyond else self.store.op(op.id)
            before = self.store.op((op.device, op.seq - 1)) if op.seq > 1 else None
            if twin is not None or (before is not None and before.hash != op.prev):
                if twin is not None:
                    result = self._fork(op, op.seq, twin, batch)
                else:
                    result = self._fork(op, op.seq - 1, before, batch)  # type: ignore[arg-type]
                # Ops waiting for this device's ops past the fork need them no more.
                queue.extend(self._release_forked(op.device))
            else:
                result = None
                self._admit(op, batch)
                for waiter_hash in self._waiting.pop(op.id, ()):
                    waiter = self.pending.pop(waiter_hash, None)
                    if waiter is None:
                        continue
                    self._unpend_new(waiter)
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

    def _release_forked(self, device: bytes) -> list[Op]:
        """Pending ops that waited for ``device``'s ops past its fork: now complete or waiting
        for something else."""
        released = []
        for slot in [s for s in self._waiting if s[0] == device and self._forked(*s)]:
            for waiter_hash in self._waiting.pop(slot):
                waiter = self.pending.pop(waiter_hash, None)
                if waiter is None:
                    continue
                missing = self._missing(waiter)
                if missing is None:
                    self.pending_bytes -= len(waiter.raw)
                    self._unpend_new(waiter)
                    released.append(waiter)
                else:
                    self.pending[waiter_hash] = waiter
                    self._waiting.setdefault(missing, []).append(waiter_hash)
        return released

    def _admit(self, op: Op, batch: Batch) -> None:
        """Put an op whose past is complete into the DAG; it is decided when the batch settles."""
        self.store.admit(op)
        self.heads[op.device] = op.seq
        self.head_hashes[op.device] = op.hash
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
            self._control_heads[op.device] = max(self._control_heads.get(op.device, 0), op.seq)
            batch.control.append(op)
            batch.learned_old_keys |= bool(self.keyring.learn(op) - {op.hash})
