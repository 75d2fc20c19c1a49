"""What a holder answers on the holder protocol (``wire.py``; registered by ``protocols.py``).

Every request carries a party proof bound to this connection (the asking device, this node's
device) and to the purpose of its op. A node holds only for its own party and for the parties
whose holding thread it joined (``HeldParty``); anyone else gets one answer whatever it asks,
so a stranger learns nothing of who is held here. Every field is checked before anything is
written; a refusal is a sentence, never an exception's text. Nothing of a share is logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from django.db import connections, transaction
from django.db.models import Sum
from django.db.models.functions import Length

from apps.cadre import keys as cadre_keys
from apps.core.thread.op import MAX_OP_SIZE
from apps.p2p.app_protocols import AppRefused
from apps.storage import held, keys, wire
from apps.storage.models import HeldParty, HeldShare
from apps.storage.space import StorageError

logger = logging.getLogger(__name__)

NOT_HELD = "This node holds nothing for you."
MAX_SHARE = (4 << 20) + 64  # one share of the largest chunk, sealed
MAX_PUT_SHARES = 1024
AUDIT_BYTES = 64 << 20  # shares read to answer one audit request
RELEASE_WINDOW_MS = 600_000  # a release is used at once: an old one is not replayed later

PURPOSES = {  # the purpose a party proof names for each op
    "put": keys.PURPOSE_PUT,
    "get": keys.PURPOSE_GET,
    "audit": keys.PURPOSE_AUDIT,
    "release": keys.PURPOSE_RELEASE,
    "usage": keys.PURPOSE_USAGE,
    "deposit": keys.PURPOSE_DEPOSIT,
}


def _own_devices() -> set[bytes]:
    """The device key(s) this node answers as: what its p2p connections speak as (a proof
    names it as the responder), and its node key (the same, once the p2p host runs)."""
    from apps.p2p import client
    from apps.storage.space import device_key

    found = {device_key()}
    local = client._local
    if local is not None:
        found.add(bytes(local[1].device))
    return found


def _own_device() -> bytes:
    from apps.p2p import client
    from apps.storage.space import device_key

    local = client._local
    return bytes(local[1].device) if local is not None else device_key()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _recycle() -> None:
    # Handlers run in the app protocols' long-lived threads: a broken server connection is
    # replaced (as the cadre's handlers do).
    default = connections["default"]
    if default.vendor != "sqlite":
        default.close_if_unusable_or_obsolete()


def _party(proof: Any, *, purpose: str, peer_device: bytes) -> HeldParty:
    try:
        party = cadre_keys.party_proof_verify(
            proof,
            purpose=purpose,
            requester=peer_device,
            responder=_own_device(),
            now_ms=_now_ms(),
        )
    except cadre_keys.ProofError as exc:
        raise AppRefused(f"This node could not check your party: {exc}.") from None
    row = held.held_party(party)
    if row is None:
        raise AppRefused(NOT_HELD)
    return row


def _digests(doc: dict[str, Any], key: str, limit: int) -> list[bytes]:
    found = wire.items(doc, key, limit)
    if not all(isinstance(d, bytes) and len(d) == 32 for d in found):
        raise wire.WireError(f"each of {key!r} is a 32-byte digest")
    return found


# -- the ops --------------------------------------------------------------------------------------


def _put(party: HeldParty, doc: dict[str, Any]) -> dict[str, Any]:
    shares = wire.items(doc, "shares", MAX_PUT_SHARES)
    if not all(isinstance(s, bytes) and 0 < len(s) <= MAX_SHARE for s in shares):
        raise wire.WireError(f"each share is bytes, at most {MAX_SHARE} of them")
    if sum(len(s) for s in shares) > wire.MAX_PUT_BYTES:
        raise wire.WireError(f"the shares of one put are at most {wire.MAX_PUT_BYTES} bytes")
    kept: list[bytes] = []
    full = ""
    for share in shares:
        try:
            kept.append(held.held_put(party, share))
        except StorageError as exc:
            if exc.code != "full" or not kept:
                raise AppRefused(exc.words) from None
            full = exc.words
            break
    usage = held.held_usage(party)
    answer: dict[str, Any] = {"kept": kept, "used": usage["used"], "quota": usage["quota"]}
    if full:
        answer["full"] = full
    return answer


def _sizes(party: HeldParty, digests: list[bytes]) -> dict[bytes, int]:
    rows = HeldShare.objects.filter(party=party, digest__in=[d.hex() for d in digests])
    return {bytes.fromhex(digest): size for digest, size in rows.values_list("digest", "size")}


def _budgeted(party: HeldParty, digests: list[bytes], budget: int) -> int:
    """How many of ``digests`` (at least one) fit in ``budget`` bytes of shares read: the
    asking side asks again for the rest (``"cut"`` in the answer)."""
    sizes = _sizes(party, digests)
    total = 0
    for index, digest in enumerate(digests):
        size = sizes.get(digest, 0)
        if index and total + size > budget:
            return index
        total += size
    return len(digests)


def _get(party: HeldParty, doc: dict[str, Any]) -> dict[str, Any]:
    digests = _digests(doc, "digests", wire.MAX_GET)
    cut = _budgeted(party, digests, wire.MAX_ANSWER_BYTES)
    shares = [held.held_get(party, digest) for digest in digests[:cut]]
    return {"shares": shares + [None] * (len(digests) - cut), "cut": cut}


def _audit(party: HeldParty, doc: dict[str, Any]) -> dict[str, Any]:
    found = wire.items(doc, "items", wire.MAX_AUDIT)
    pairs = []
    for item in found:
        if not (
            isinstance(item, list)
            and len(item) == 2
            and all(isinstance(part, bytes) and len(part) == 32 for part in item)
        ):
            raise wire.WireError("each audit item is a 32-byte digest and a 32-byte nonce")
        pairs.append((item[0], item[1]))
    # Answering reads every share named: a request reads at most AUDIT_BYTES of them.
    cut = _budgeted(party, [digest for digest, _nonce in pairs], AUDIT_BYTES)
    answers = [held.held_audit(party, digest, nonce) for digest, nonce in pairs[:cut]]
    return {"answers": answers + [None] * (len(pairs) - cut), "cut": cut}


def _release(party: HeldParty, doc: dict[str, Any]) -> dict[str, Any]:
    digests = _digests(doc, "digests", wire.MAX_RELEASE)
    at = wire.uint(doc, "at")
    sig = doc.get("sig")
    if not isinstance(sig, bytes) or len(sig) != 64:
        raise wire.WireError("'sig' must be a 64-byte signature")
    if abs(_now_ms() - at) > RELEASE_WINDOW_MS:
        raise AppRefused(
            "That release is too old or from the future (check the clocks): nothing was deleted."
        )
    for device in _own_devices():
        try:
            keys.release_verify(
                bytes.fromhex(party.pk), sig, holder=device, digests=digests, at_ms=at
            )
            break
        except keys.SignatureError:
            continue
    else:
        raise AppRefused(
            "That release does not carry your party's signature for this node: nothing was deleted."
        )
    released = held.held_release(party, digests)
    return {"released": released, "used": held.held_usage(party)["used"]}


def _usage(party: HeldParty, doc: dict[str, Any]) -> dict[str, Any]:
    return held.held_usage(party)


def _deposited(party: str) -> int:
    """Bytes of ops kept here for ``party``'s deposited threads."""
    from apps.cadre.models import MirrorOp, MirrorThread

    threads = MirrorThread.objects.filter(party_id=party).values_list("thread_id", flat=True)
    total = MirrorOp.objects.filter(thread_id__in=list(threads)).aggregate(n=Sum(Length("raw")))
    return int(total["n"] or 0)


def _deposit_thread(party: HeldParty, *, thread: bytes, member: bytes, control: bool) -> None:
    """Keep ``thread`` for ``party`` (new here, or deposited by the same party before)."""
    from apps.cadre.models import MirrorParty, MirrorThread

    with transaction.atomic():
        row = MirrorThread.objects.select_for_update().filter(pk=thread.hex()).first()
        if row is not None and row.party_id != party.pk:
            raise AppRefused("That thread is kept here for another party.")
        if row is not None:
            return
        if control and MirrorThread.objects.filter(party_id=party.pk, control=True).exists():
            raise AppRefused("Your party's control thread is already kept here.")
        mirror_party, _ = MirrorParty.objects.get_or_create(
            pk=party.pk, defaults={"label": party.label}
        )
        MirrorThread.objects.create(
            thread_id=thread.hex(), party=mirror_party, member=member.hex(), control=control
        )


def _deposit(party: HeldParty, doc: dict[str, Any]) -> dict[str, Any]:
    from apps.cadre import mirror_store

    thread = wire.b32(doc, "thread")
    member = wire.b32(doc, "member")
    control = doc.get("control")
    if type(control) is not bool:
        raise wire.WireError("'control' must be true or false")
    ops = wire.items(doc, "ops", wire.MAX_DEPOSIT_OPS)
    if not all(isinstance(op, bytes) and 0 < len(op) <= MAX_OP_SIZE for op in ops):
        raise wire.WireError(f"each op is bytes, at most {MAX_OP_SIZE} of them")
    if party.pk == (held.own_party_id() or b"").hex():
        # This node's own party: it has the thread itself, nothing to keep apart.
        usage = held.held_usage(party)
        return {"admitted": 0, "refused": 0, "other": len(ops), **_quota(usage)}
    size = sum(len(op) for op in ops)
    try:
        held.held_charge(party, size)  # at most this much; what was here already is given back
    except StorageError as exc:
        raise AppRefused(exc.words) from None
    before = _deposited(party.pk)
    added = 0
    try:
        _deposit_thread(party, thread=thread, member=member, control=control)
        counts = mirror_store.ingest(thread, ops, trusted=True, notify=False)
        added = max(0, _deposited(party.pk) - before)
    finally:
        held.held_uncharge(party, size - min(size, added))
    usage = held.held_usage(party)
    return {
        "admitted": counts.accepted,
        "refused": counts.refused + counts.malformed + counts.foreign,
        "other": counts.duplicate + counts.held + counts.dropped,
        **_quota(usage),
    }


def _quota(usage: dict) -> dict[str, int]:
    return {"used": usage["used"], "quota": usage["quota"]}


_OPS: dict[str, Callable[[HeldParty, dict[str, Any]], dict[str, Any]]] = {
    "put": _put,
    "get": _get,
    "audit": _audit,
    "release": _release,
    "usage": _usage,
    "deposit": _deposit,
}


def serve(peer_device: bytes, request: bytes) -> bytes:
    """One request of the holder protocol; its answer, or ``AppRefused`` in words."""
    _recycle()
    try:
        doc = wire.decode(request, max_size=wire.MAX_REQUEST)
    except wire.WireError as exc:
        raise AppRefused(f"This request is not readable: {exc}.") from None
    op = doc.get("op")
    if not isinstance(op, str) or op not in _OPS:
        raise AppRefused(
            "A storage request puts, gets, audits or releases shares, asks the usage, or "
            "deposits ops."
        )
    party = _party(doc.get("proof"), purpose=PURPOSES[op], peer_device=peer_device)
    try:
        answer = _OPS[op](party, doc)
    except wire.WireError as exc:
        raise AppRefused(f"This {op} request is malformed: {exc}.") from None
    return wire.encode(answer)
