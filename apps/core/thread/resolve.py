"""The deterministic resolver: a set of ops in, decisions and state out (DESIGN §4-§5).

Three parts, each in its own module:

- ``keyring``: the epoch keys a replica holds (each checked against its epoch's public check
  value) and opening op bodies with them;
- ``control``: control and keys ops in one deterministic total order, folded into the thread's
  state, with restrictions for the removals and demotions ops did not see;
- ``data``: data ops, each decided against its own causal past plus the restrictions, with row
  ownership read from row ids.

Every function here is pure in the op set: replicas holding the same ops (and the same keys)
decide the same.
"""

from __future__ import annotations

from apps.core.thread.control import (
    ACCEPTED,
    ControlResolution,
    Restriction,
    Timeline,
    control_resolve,
    genesis_action,
)
from apps.core.thread.data import DataChecker, RowRules, Wait
from apps.core.thread.keyring import BadSeal, Keyring, KeysEvent, Opener, refused
from apps.core.thread.op import KIND_CONTROL, KIND_DATA, KIND_KEYS, Op, OpId
from apps.core.thread.store import Decision


def is_control(op: Op) -> bool:
    return op.kind in (KIND_CONTROL, KIND_KEYS)


def is_data(op: Op) -> bool:
    return op.kind == KIND_DATA


__all__ = [
    "ACCEPTED",
    "BadSeal",
    "ControlResolution",
    "DataChecker",
    "Decision",
    "Keyring",
    "KeysEvent",
    "OpId",
    "Opener",
    "Restriction",
    "RowRules",
    "Timeline",
    "Wait",
    "control_resolve",
    "genesis_action",
    "is_control",
    "is_data",
    "refused",
]
