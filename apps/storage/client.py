"""The owner's side of the holder protocol (``wire.py``): put, get, audit, release, usage and
deposit, each request with a fresh party proof bound to this connection and its purpose.

A target that is this node itself is served by ``held`` directly: no network, same answers.
Nothing in an answer is trusted: shapes and sizes are checked here, every share fetched is
checked against its digest. Failures come back as ``HolderError`` in words a person reads.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from apps.cadre import keys as cadre_keys
from apps.storage import held, keys, wire
from apps.storage.models import Holder
from apps.storage.space import StorageError, device_key, master_secret

ANSWER_SIZE = 32  # an audit answer (keys.audit_answer)
MAX_SHARE = (4 << 20) + 64  # one share of the largest chunk, sealed
PUT_TIMEOUT = 60.0
GET_TIMEOUT = 60.0
SMALL_TIMEOUT = 20.0
PUT_SHARES = 256  # shares in one put request (serve takes up to 1024)
_REQUEST_ROOM = 8192  # the proof and the map around a put's or a deposit's bytes


class HolderError(StorageError):
    """A holder request that failed, in words. ``code``: unreachable (no answer: offline, or
    not in time), refused (it said no, or answered nonsense), full (over its quota), busy (too
    many requests now). ``kept``: digests a put had placed before it failed."""

    def __init__(self, code: str, words: str, kept: list[bytes] | None = None) -> None:
        super().__init__(code, words)
        self.kept = list(kept or [])


@dataclass(frozen=True)
class Target:
    device: bytes
    peer_id: str
    addrs: tuple[str, ...]
    name: str = ""  # how errors name it: "Bob's node", "your device Laptop"


def target_of(holder: Holder) -> Target:
    label = " ".join((holder.label or "").split())[:60]
    if holder.kind == Holder.Kind.DEVICE:
        name = f"your device {label}" if label else "your other device"
    else:
        name = f"{label}'s node" if label else "a friend's node"
    return Target(
        device=bytes.fromhex(holder.device) if holder.device else b"",
        peer_id=holder.peer_id,
        addrs=tuple(a for a in holder.addrs or () if isinstance(a, str)),
        name=name,
    )


def _my_device() -> bytes:
    """The device this process's p2p connections speak as (the proof names it as requester)."""
    from apps.p2p import client

    local = client._local
    return bytes(local[1].device) if local is not None else device_key()


def is_self(target: Target) -> bool:
    return target.device in (device_key(), _my_device())


def _name(target: Target) -> str:
    name = target.name or "the holder's node"
    return name[:1].upper() + name[1:]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _malformed(target: Target) -> HolderError:
    return HolderError("refused", f"{_name(target)} answered something this node cannot read.")


def _ask(target: Target, op: str, purpose: str, doc: dict[str, Any], timeout: float) -> dict:
    from apps.p2p.app_protocols import AppRequestError
    from apps.p2p.client import app_request

    if len(target.device) != 32 or not target.peer_id:
        raise HolderError(
            "unreachable", f"{_name(target)} has not said where it can be reached yet."
        )
    proof = cadre_keys.party_proof_sign(
        master_secret(),
        purpose=purpose,
        requester=_my_device(),
        responder=target.device,
        at_ms=_now_ms(),
    )
    payload = wire.encode({**doc, "op": op, "proof": proof})
    try:
        answer = app_request(
            target.peer_id, list(target.addrs), wire.PROTOCOL, payload, timeout=timeout
        )
    except AppRequestError as exc:
        raise _mapped(target, exc.code, exc.words) from None
    try:
        return wire.decode(answer, max_size=wire.MAX_ANSWER + 1024)
    except wire.WireError:
        raise _malformed(target) from None


def _mapped(target: Target, code: str, words: str) -> HolderError:
    name = _name(target)
    if code == "refused" and words.startswith(held.FULL_START):
        return HolderError("full", f"{name} is full: {words}")
    if code == "refused":
        return HolderError("refused", f"{name} refused: {words}")
    if code == "busy":
        return HolderError("busy", f"{name} is busy: this node tries again later.")
    if code == "unavailable":
        return HolderError("unreachable", f"{name} did not answer in time: it may be offline.")
    if code == "malformed":
        return HolderError("refused", f"{name} answered something this node cannot read.")
    return HolderError("unreachable", f"{name} did not answer: it may be offline.")


def _uint(doc: dict[str, Any], key: str, target: Target) -> int:
    try:
        return wire.uint(doc, key)
    except wire.WireError:
        raise _malformed(target) from None


def _list(doc: dict[str, Any], key: str, size: int, target: Target) -> list[Any]:
    try:
        return wire.items(doc, key, size)
    except wire.WireError:
        raise _malformed(target) from None


def _batches(values: list[bytes], *, count: int, size: int) -> Iterator[list[bytes]]:
    """``values`` in runs of at most ``count`` items and ``size`` bytes (one item at least)."""
    batch: list[bytes] = []
    total = 0
    for value in values:
        if batch and (len(batch) >= count or total + len(value) > size):
            yield batch
            batch, total = [], 0
        batch.append(value)
        total += len(value)
    if batch:
        yield batch


# -- the operations -------------------------------------------------------------------------------


def put(target: Target, shares: list[bytes], digests: list[bytes] | None = None) -> dict:
    """Place ``shares`` with the holder: ``{"kept": [digest], "used", "quota"}``. ``digests``:
    the shares' digests when the caller made them from these very bytes (the packer did), so
    that they are not hashed again here; a remote holder hashes what it receives itself."""
    if any(len(share) > MAX_SHARE for share in shares):
        raise HolderError("refused", "A share is larger than a holder takes.")
    if digests is None:
        digests = [keys.share_digest(share) for share in shares]
    elif len(digests) != len(shares):
        raise ValueError("one digest per share")
    kept: list[bytes] = []
    if is_self(target):
        party = held.own_party()
        for share, digest in zip(shares, digests, strict=True):
            try:
                kept.append(held.held_put(party, share, digest=digest))
            except StorageError as exc:
                raise HolderError(exc.code, exc.words, kept) from None
        usage = held.held_usage(party)
        return {"kept": kept, "used": usage["used"], "quota": usage["quota"]}
    used = quota = at = 0
    for batch in _batches(shares, count=PUT_SHARES, size=wire.MAX_PUT_BYTES):
        expected = set(digests[at : at + len(batch)])  # the batches are runs of ``shares``
        at += len(batch)
        try:
            doc = _ask(target, "put", keys.PURPOSE_PUT, {"shares": batch}, PUT_TIMEOUT)
        except HolderError as exc:
            raise HolderError(exc.code, exc.words, kept) from None
        said = _list(doc, "kept", len(batch), target)
        if not all(isinstance(d, bytes) and d in expected for d in said):
            raise _malformed(target)
        kept += said
        used, quota = _uint(doc, "used", target), _uint(doc, "quota", target)
        if len(said) < len(batch):
            words = doc.get("full") if isinstance(doc.get("full"), str) else ""
            raise HolderError("full", f"{_name(target)} is full: {words[:300]}".strip(), kept)
    return {"kept": kept, "used": used, "quota": quota}


def get(target: Target, digests: list[bytes]) -> dict[bytes, bytes | Literal["corrupt"] | None]:
    """Every digest asked → its share, None (the holder does not have it) or "corrupt" (bytes
    came back that do not hash to the digest)."""
    out: dict[bytes, bytes | Literal["corrupt"] | None] = {}
    if is_self(target):
        party = held.own_party()
        for digest in digests:
            out[digest] = held.held_get(party, digest)
        return out
    wanted = list(dict.fromkeys(digests))
    while wanted:
        batch = wanted[: wire.MAX_GET]
        doc = _ask(target, "get", keys.PURPOSE_GET, {"digests": batch}, GET_TIMEOUT)
        found = _list(doc, "shares", len(batch), target)
        if len(found) != len(batch):
            raise _malformed(target)
        cut = doc.get("cut", len(batch))
        if type(cut) is not int or not 1 <= cut <= len(batch):
            raise _malformed(target)
        for digest, share in zip(batch[:cut], found[:cut], strict=True):
            if share is None:
                out[digest] = None
            elif isinstance(share, bytes) and keys.share_digest(share) == digest:
                out[digest] = share
            else:
                out[digest] = "corrupt"
        wanted = wanted[cut:]
    return out


def audit(target: Target, items: list[tuple[bytes, bytes]]) -> list[bytes | None]:
    """The holder's answer to each (digest, nonce): 32 bytes, or None (it does not have it)."""
    if is_self(target):
        party = held.own_party()
        return [held.held_audit(party, digest, nonce) for digest, nonce in items]
    out: list[bytes | None] = []
    left = list(items)
    while left:
        batch = left[: wire.MAX_AUDIT]
        doc = _ask(
            target,
            "audit",
            keys.PURPOSE_AUDIT,
            {"items": [[digest, nonce] for digest, nonce in batch]},
            SMALL_TIMEOUT,
        )
        answers = _list(doc, "answers", len(batch), target)
        cut = doc.get("cut", len(batch))
        if len(answers) != len(batch) or type(cut) is not int or not 1 <= cut <= len(batch):
            raise _malformed(target)
        for answer in answers[:cut]:
            if answer is not None and not (isinstance(answer, bytes) and len(answer) == 32):
                raise _malformed(target)
            out.append(answer)
        left = left[cut:]
    return out


def release(target: Target, digests: list[bytes]) -> int:
    """Let the holder delete these shares (signed by the party key, naming this holder); how
    many it had."""
    if is_self(target):
        return held.held_release(held.own_party(), digests)
    released = 0
    wanted = list(dict.fromkeys(digests))
    for start in range(0, len(wanted), wire.MAX_RELEASE):
        batch = wanted[start : start + wire.MAX_RELEASE]
        at = _now_ms()
        sig = keys.release_sign(master_secret(), holder=target.device, digests=batch, at_ms=at)
        doc = _ask(
            target,
            "release",
            keys.PURPOSE_RELEASE,
            {"digests": batch, "at": at, "sig": sig},
            SMALL_TIMEOUT,
        )
        released += _uint(doc, "released", target)
    return released


def usage(target: Target) -> dict:
    """``{"used", "quota", "shares"}`` of this party on the holder."""
    if is_self(target):
        return held.held_usage(held.own_party())
    doc = _ask(target, "usage", keys.PURPOSE_USAGE, {}, SMALL_TIMEOUT)
    return {key: _uint(doc, key, target) for key in ("used", "quota", "shares")}


def deposit(
    target: Target, *, thread: bytes, control: bool, member: bytes, ops: list[bytes]
) -> dict:
    """Leave raw ops of one of the party's threads with the holder (kept like a mirror keeps
    them): ``{"admitted", "refused", "other", "used", "quota"}``."""
    totals = {"admitted": 0, "refused": 0, "other": 0, "used": 0, "quota": 0}
    if is_self(target):
        totals["other"] = len(ops)  # this node has the thread itself
        return totals
    budget = wire.MAX_REQUEST - _REQUEST_ROOM
    for batch in _batches(ops, count=wire.MAX_DEPOSIT_OPS, size=budget):
        doc = _ask(
            target,
            "deposit",
            keys.PURPOSE_DEPOSIT,
            {"thread": thread, "control": control, "member": member, "ops": batch},
            PUT_TIMEOUT,
        )
        for key in totals:
            value = _uint(doc, key, target)
            totals[key] = value if key in ("used", "quota") else totals[key] + value
    return totals
