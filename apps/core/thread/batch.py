"""What one ingest call of a replica works with and returns: its result per op, and the batch of
ops it admitted, decided together when it settles."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from apps.core.thread.op import Op

IngestStatus = Literal[
    "accepted",
    "refused",
    "opaque",
    "waiting",  # its app's schema version is unknown here: decided after an upgrade
    "pending",
    "duplicate",
    "malformed",
    "fork",
    "foreign",
    "dropped",  # would wait for its past, but too much already waits: fetch it again later
    "unknown",  # its device is not certified in its causal past: not kept, never forwarded
    "held",  # stamped too far ahead of this node's clock: not kept, taken once time catches up
]


# Not frozen: one is made per op ingested, and a frozen dataclass's ``__init__`` costs four
# times a plain one's (2.2 against 0.6 us); nothing changes a result once made, and it stays
# hashable by its fields as a frozen one was.
@dataclass(slots=True, unsafe_hash=True)
class IngestResult:
    status: IngestStatus
    reason: str = ""
    op: Op | None = None
    # Every op the ingest call admitted (the op itself and pending ops it released), in order.
    decided: tuple[Op, ...] = ()
    # True when earlier decisions changed (a control op reordered things).
    rebuilt: bool = False


@dataclass
class Batch:
    """What one ingest call admitted, to be decided together."""

    admitted: list[Op] = field(default_factory=list)
    control: list[Op] = field(default_factory=list)
    data: list[Op] = field(default_factory=list)
    learned_old_keys: bool = False
    # (device, seq) of forks found in this batch
    forked: list[tuple[bytes, int]] = field(default_factory=list)
    # First ops of new devices, waiting for the batch's control ops to be decided.
    deferred: list[Op] = field(default_factory=list)
    # Ops turned away at admission (their device is not certified in their past).
    unknown: set[bytes] = field(default_factory=set)
    # Whether control ops were decided since ops waiting for keys were last tried.
    control_changed: bool = False
    # This node's clock (ms) when the batch's first op was taken: ops stamped far beyond it wait.
    now: int | None = None

    @property
    def unsettled(self) -> bool:
        return bool(self.control)


def unknown_result(op: Op) -> IngestResult:
    return IngestResult("unknown", "its device is not certified in its causal past: not kept", op)
