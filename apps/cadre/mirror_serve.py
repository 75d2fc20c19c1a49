"""What a mirror answers (``apps.cadre.protocols`` registers these in mirror mode), and its join.

- ``wire.LOG``: "threads" for a party proof of a party it serves (a node restoring from the
  phrase finds its threads here); "page" of a thread for that party's proof or for a device of
  the thread's roster. Anyone else gets the one answer a thread not kept here gets.
- ``wire.SUBMIT``: ops of a thread of the party, for its party proof (a restored node's first
  writes, so the others get them from here).
- ``wire.MIRROR``: "assign" (a device of a party it serves lists the party's threads, each with
  the party's member key and the roster of devices that may fetch it: threads new to the mirror
  are kept from now on, and the answer is the mirror's device proof for each, with which the
  party certifies it there); "status".

``mirror_joined`` is called once a device link of kind mirror certified this node: it records the
party and its threads and fetches their logs from the device that made the link.

Party proofs are bound to this connection (``requester`` the asking device, ``responder`` this
node's device) and to their purpose; a proof of a party this mirror does not serve opens
nothing. Nothing read here is logged but ids and counts.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.cadre import keys as cadre_keys
from apps.cadre import mirror_store, wire
from apps.cadre.models import MirrorParty, MirrorThread
from apps.core import blobs
from apps.core.thread import keys as thread_keys
from apps.p2p.app_protocols import AppRefused

logger = logging.getLogger(__name__)

NOT_HERE = "This mirror has nothing for you under that thread id."
NOT_SERVED = "This mirror does not serve your party."
MAX_ROSTER = 1024  # devices that may fetch one thread
MAX_CHUNKS = 4096  # attachment chunks named per thread in one assign
LOG_REQUEST = 4 << 10
BIG_REQUEST = 1 << 20


def _own_key() -> Any:
    from apps.core.threads.database import NodeKeys

    return NodeKeys.of_this_node().device


def _own_device() -> bytes:
    """The device this node's p2p connections speak as (a proof names it as the responder)."""
    from apps.p2p import client

    local = client._local
    return bytes(local[1].device) if local is not None else bytes(_own_key().verify_key)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _decode(request: bytes, max_size: int) -> dict[str, Any]:
    try:
        return wire.decode(request, max_size=max_size)
    except wire.WireError as exc:
        raise AppRefused(str(exc)) from exc


def _party(proof: Any, *, purpose: str, peer_device: bytes) -> MirrorParty:
    """The served party whose proof this is; ``AppRefused`` in words otherwise."""
    try:
        party = cadre_keys.party_proof_verify(
            proof,
            purpose=purpose,
            requester=peer_device,
            responder=_own_device(),
            now_ms=_now_ms(),
        )
    except cadre_keys.ProofError as exc:
        raise AppRefused(f"This mirror could not check your party: {exc}.") from exc
    row = MirrorParty.objects.filter(pk=party.hex()).first()
    if row is None:
        raise AppRefused(NOT_SERVED)
    return row


def _roster_devices(row: MirrorThread) -> set[str]:
    return {entry.get("device") for entry in row.roster or [] if isinstance(entry, dict)}


# -- LOG ------------------------------------------------------------------------------------------


def serve_log(peer_device: bytes, request: bytes) -> bytes:
    doc = _decode(request, LOG_REQUEST)
    op = doc.get("op")
    if op == "threads":
        party = _party(doc.get("proof"), purpose="threads", peer_device=peer_device)
        rows = MirrorThread.objects.filter(party=party).order_by("-control", "thread_id")
        threads = [
            {
                "thread": bytes.fromhex(row.thread_id),
                "app": "",  # a mirror never learns a thread's app or name: they are sealed
                "name": "",
                "control": row.control,
                "ops": mirror_store.op_count(bytes.fromhex(row.thread_id)),
            }
            for row in rows[: wire.MAX_THREADS]
        ]
        return wire.encode({"threads": threads})
    if op != "page":
        raise AppRefused("A log request asks for threads or a page.")
    try:
        thread = wire.b32(doc, "thread")
        after = wire.uint(doc, "after")
    except wire.WireError as exc:
        raise AppRefused(str(exc)) from exc
    row = MirrorThread.objects.filter(pk=thread.hex()).first()
    if row is None:
        raise AppRefused(NOT_HERE)
    if peer_device.hex() not in _roster_devices(row):
        proof = doc.get("proof")
        if proof is None:
            raise AppRefused(NOT_HERE)
        party = _party(proof, purpose="page", peer_device=peer_device)
        if party.pk != row.party_id:
            raise AppRefused(NOT_HERE)
    ops, position, done = mirror_store.ops_after(
        thread, after, limit_ops=wire.PAGE_OPS, limit_bytes=wire.PAGE_BYTES
    )
    return wire.encode({"ops": ops, "next": position, "done": done})


# -- SUBMIT ---------------------------------------------------------------------------------------


def serve_submit(peer_device: bytes, request: bytes) -> bytes:
    doc = _decode(request, BIG_REQUEST)
    try:
        thread = wire.b32(doc, "thread")
        raws = wire.items(doc, "ops", wire.PAGE_OPS)
    except wire.WireError as exc:
        raise AppRefused(str(exc)) from exc
    party = _party(doc.get("proof"), purpose="submit", peer_device=peer_device)
    row = MirrorThread.objects.filter(pk=thread.hex()).first()
    if row is None or row.party_id != party.pk:
        raise AppRefused(NOT_HERE)
    ops = [raw for raw in raws if isinstance(raw, bytes)]
    counts = mirror_store.ingest(thread, ops, trusted=True)
    not_ops = len(raws) - len(ops)
    return wire.encode(
        {
            "admitted": counts.accepted,
            "refused": counts.refused + counts.malformed + counts.foreign + not_ops,
            "other": counts.duplicate + counts.held + counts.dropped,
        }
    )


# -- MIRROR ---------------------------------------------------------------------------------------


def _assigned(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The threads of an assign request, every field checked before anything is written."""
    out = []
    for item in wire.items(doc, "threads", wire.MAX_THREADS):
        if not isinstance(item, dict):
            raise wire.WireError("each thread is a map")
        if type(item.get("control")) is not bool:
            raise wire.WireError("'control' must be true or false")
        roster = []
        for entry in wire.items(item, "roster", MAX_ROSTER):
            if not isinstance(entry, dict):
                raise wire.WireError("each roster entry is a map")
            roster.append({"device": wire.b32(entry, "device").hex(), "addrs": wire.addrs(entry)})
        chunks = item.get("chunks", [])
        if not isinstance(chunks, list) or len(chunks) > MAX_CHUNKS:
            raise wire.WireError(f"'chunks' must be a list of at most {MAX_CHUNKS} hashes")
        if not all(isinstance(c, bytes) and len(c) == blobs.HASH for c in chunks):
            raise wire.WireError("each chunk is named by its 32-byte hash")
        out.append(
            {
                "thread": wire.b32(item, "thread"),
                "member": wire.b32(item, "member"),
                "control": item["control"],
                "roster": roster,
                "chunks": chunks,
            }
        )
    if sum(1 for item in out if item["control"]) > 1:
        raise wire.WireError("a party has one control thread")
    return out


def _assign(party: MirrorParty, threads: list[dict[str, Any]]) -> list[dict[str, bytes]]:
    """Keep ``threads`` for ``party`` with their rosters; this mirror's device proof for each
    (a thread kept for another party is left as it is, with no proof)."""
    key = _own_key()
    now = timezone.now()
    proofs = []
    changed: list[bytes] = []
    with transaction.atomic():
        for item in threads:
            thread, member = item["thread"], item["member"]
            row = MirrorThread.objects.select_for_update().filter(pk=thread.hex()).first()
            if row is not None and row.party_id != party.pk:
                logger.info("mirror: %s is kept for another party", thread.hex()[:12])
                continue
            fields = {"member": member.hex(), "control": item["control"], "roster": item["roster"]}
            if row is None:
                MirrorThread.objects.create(
                    thread_id=thread.hex(), party=party, roster_at=now, **fields
                )
                changed.append(thread)
            else:
                if any(getattr(row, name) != value for name, value in fields.items()):
                    changed.append(thread)
                MirrorThread.objects.filter(pk=row.pk).update(roster_at=now, **fields)
            proofs.append(
                {"thread": thread, "proof": thread_keys.device_proof_sign(key, thread, member)}
            )
    for thread in changed:
        mirror_store.thread_changed(thread)
    given = {item["thread"] for item in proofs}
    _chunks_want([item for item in threads if item["thread"] in given])
    return proofs


def _chunks_want(threads: list[dict[str, Any]]) -> None:
    """Fetch the attachment chunks (ciphertext, named by their hash) the party's device holds
    and this mirror does not, from the thread's devices, in the background."""
    from apps.p2p.client import NetworkClient

    for item in threads:
        wanted = blobs.missing(item["thread"], item["chunks"])
        if wanted:
            NetworkClient().blobs_want(item["thread"], wanted)


def serve_mirror(peer_device: bytes, request: bytes) -> bytes:
    if not settings.SEREUS.mirror:
        # Registered on full nodes too: they ask it (the asking side needs its bounds).
        raise AppRefused("This node is not a mirror.")
    doc = _decode(request, BIG_REQUEST)
    op = doc.get("op")
    if op not in ("assign", "status"):
        raise AppRefused("A mirror request assigns threads or asks for the status.")
    party = _party(doc.get("proof"), purpose=op, peer_device=peer_device)
    if op == "status":
        rows = MirrorThread.objects.filter(party=party).order_by("-control", "thread_id")
        found = {item["thread"]: item for item in mirror_store.status()}
        threads = []
        for row in rows[: wire.MAX_THREADS]:
            item = found.get(row.thread_id, {})
            last = item.get("last_received")
            threads.append(
                {
                    "thread": bytes.fromhex(row.thread_id),
                    "ops": item.get("ops", 0),
                    "last_ms": 0 if last is None else int(last.timestamp() * 1000),
                }
            )
        return wire.encode({"threads": threads})
    try:
        threads = _assigned(doc)
    except wire.WireError as exc:
        raise AppRefused(str(exc)) from exc
    return wire.encode({"proofs": _assign(party, threads)})


# -- joining a party ------------------------------------------------------------------------------


def mirror_joined(
    *, party: bytes, threads: list[dict[str, Any]], peer: str, addrs: list[str]
) -> None:
    """A device link of kind mirror certified this node for ``party`` in ``threads`` (control
    thread first: [{thread, member, ...}]; names and apps are not kept): keep them, with the
    linking device (``peer``, at ``addrs``) on their rosters until the party sends its own, and
    fetch each log from it (what cannot be fetched now comes by sync later)."""
    from apps.cadre import logs

    device = logs.device_of_peer(peer)
    entry = {"device": device.hex(), "addrs": list(addrs)[: wire.MAX_ADDRS]}
    row, _made = MirrorParty.objects.get_or_create(pk=party.hex())
    kept: list[bytes] = []
    with transaction.atomic():
        for index, item in enumerate(threads[: wire.MAX_THREADS]):
            thread, member = bytes(item["thread"]), bytes(item["member"])
            existing = MirrorThread.objects.filter(pk=thread.hex()).first()
            if existing is not None and existing.party_id != row.pk:
                continue
            roster = [] if existing is None else list(existing.roster or [])
            if entry["device"] not in {e.get("device") for e in roster}:
                roster.append(entry)
            MirrorThread.objects.update_or_create(
                thread_id=thread.hex(),
                defaults={
                    "party": row,
                    "member": member.hex(),
                    "control": bool(item.get("control", index == 0)),
                    "roster": roster,
                    "roster_at": timezone.now(),
                },
            )
            kept.append(thread)
    for thread in kept:
        try:
            raws = logs.fetch_log(thread=thread, peer=peer, addrs=list(addrs))
        except Exception as exc:  # that device went away: sync brings the log later
            logger.info("mirror: fetching %s failed: %s", thread.hex()[:12], exc)
            mirror_store.thread_changed(thread)
            continue
        counts = mirror_store.ingest(thread, raws, trusted=True)
        logger.info(
            "mirror: %s: %d ops kept, %d refused",
            thread.hex()[:12],
            counts.accepted,
            counts.refused,
        )
        mirror_store.thread_changed(thread)
