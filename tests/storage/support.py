"""Helpers the storage tests share (H2 keeps the names stable; ask for more by a REQUEST file).

- ``other_master()``: the master secret of another party (a friend, a stranger).
- ``hold_for(master, quota=...)``: this node holds for that party, as a joined holding would.
- ``holder_request(master, op, requester=..., **fields)``: a holder protocol request with a
  fresh party proof, bound to ``requester`` and this node (or ``responder``), for ``op``'s
  purpose (or ``purpose``), made at ``at_ms`` (now by default).
- ``answer(raw)``: a holder's answer, decoded.
"""

from __future__ import annotations

import time
from typing import Any

import nacl.utils

from apps.cadre import keys as cadre_keys
from apps.storage import keys, wire
from apps.storage.models import HeldParty
from apps.storage.serve import PURPOSES
from apps.storage.space import device_key


def other_master() -> bytes:
    return nacl.utils.random(32)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def hold_for(master: bytes, *, quota: int = 1 << 30, label: str = "Bob") -> HeldParty:
    party = keys.party_id(master).hex()
    row, _ = HeldParty.objects.update_or_create(
        pk=party,
        defaults={"quota": quota, "label": label, "active": True, "hold_thread": "ab" * 32},
    )
    return row


def holder_request(
    master: bytes,
    op: str,
    *,
    requester: bytes,
    responder: bytes | None = None,
    purpose: str | None = None,
    at_ms: int | None = None,
    **fields: Any,
) -> bytes:
    proof = cadre_keys.party_proof_sign(
        master,
        purpose=purpose or PURPOSES.get(op, "storage/put"),
        requester=requester,
        responder=device_key() if responder is None else responder,
        at_ms=now_ms() if at_ms is None else at_ms,
    )
    return wire.encode({**fields, "op": op, "proof": proof})


def answer(raw: bytes) -> dict[str, Any]:
    return wire.decode(raw, max_size=wire.MAX_ANSWER + 1024)
