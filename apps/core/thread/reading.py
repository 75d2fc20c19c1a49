"""What a replica holds, read: the log, decisions and held ops as mappings over its store, the
version vector, the control state and the fork evidence (a mixin of ``Replica``)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from apps.core.thread import payloads as p
from apps.core.thread.forks import ForkEvidence
from apps.core.thread.op import Op, OpId
from apps.core.thread.state import Snapshot
from apps.core.thread.store import Decision


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


class Reading:
    """The replica's read side; a mixin of ``Replica``."""

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

    @property
    def waiting(self) -> int:
        """Ops held outside the log until their past, or the keys to judge them, arrive."""
        return len(self.pending) + len(self._awaiting_keys)

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
