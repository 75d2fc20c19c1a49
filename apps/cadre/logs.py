"""Whole thread logs between a party's own devices (ADR 24): what a new device, a restored node
or a mirror fetches from a FULL node of the party, and what a restored node sends back.

Serving (``serve_log``, ``serve_submit``; the mirror has its own handlers) is for the party
alone: a *party proof* (``keys.party_proof_sign``) bound to both ends of this connection and
checked against this node's own party id, or, for a page of one thread, a device this node's
member certified in that thread (a mirror, another device of the party). Anyone else is told
the same thing whether or not the thread exists here, so a stranger learns nothing.

Pages follow this node's log order (the ``n`` of ``sereus_ops``): every op comes after its
causal past, so a page can be ingested as it arrives, and ``next`` is where the next page
starts. Fetching (``fetch_log``, ``list_threads``, ``submit``) trusts nothing in an answer:
sizes and shapes are checked here, every op is checked by the thread's rules when ingested.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import base58
from django.db import connections

from apps.cadre import keys as cadre_keys
from apps.cadre import wire
from apps.cadre.control import CadreError, control_thread_id_here, node_keys
from apps.core.models import Thread
from apps.core.thread.op import MAX_OP_SIZE
from apps.core.threads import services as thread_services
from apps.core.threads.database import ThreadDatabaseError
from apps.core.threads.registry import thread_database
from apps.p2p.app_protocols import AppRefused, AppRequestError

logger = logging.getLogger(__name__)

# The bounds ``apps.cadre.protocols`` registers the handlers with.
MAX_REQUEST = 1 << 20  # a submit carries ops (at most 1 MiB, the app protocols' cap)
MAX_LOG_REQUEST = 4096  # threads and page requests are small
MAX_RESPONSE = 4 << 20
PAGE_TIMEOUT = 20.0  # the asking side's wait for one page
MAX_FETCH_OPS = 1_000_000  # a thread's whole log, fetched at once; more is not a log of ours
MAX_FETCH_BYTES = 1 << 30  # ``fetch_log`` holds the log in memory (a restore streams it)
SUBMIT_BUDGET = MAX_REQUEST - 8192  # the ops of one submit; the rest of the request is small
PEER_ID_PREFIX = b"\x00\x24\x08\x01\x12\x20"  # identity multihash of an Ed25519 protobuf key

NOT_SHARED = "This node does not share that thread with you."
NOT_PARTY = "This node serves its own party's devices only."

_KEPT = frozenset({"accepted", "opaque", "waiting", "pending", "duplicate"})


class LogError(CadreError):
    """Fetching or sending a log failed (in words); ``code`` as for ``CadreError``."""


# -- peers ------------------------------------------------------------------------------------


def device_of_peer(peer_id: str) -> bytes:
    """The Ed25519 device key a peer id embeds (the inverse of
    ``identity.peer_id_from_public_key``); ``LogError`` for anything else."""
    try:
        raw = base58.b58decode(peer_id.encode("ascii")) if len(peer_id) <= 100 else b""
    except (ValueError, UnicodeEncodeError):
        raw = b""
    if len(raw) != len(PEER_ID_PREFIX) + 32 or not raw.startswith(PEER_ID_PREFIX):
        raise LogError("invalid", "That is not the peer id of a Sereus node.")
    return raw[len(PEER_ID_PREFIX) :]


def _my_device() -> bytes:
    """The device this process's p2p connections speak as: the party proof names it as the
    requester, and the other side checks it against the connection."""
    from apps.p2p import client

    local = client._local
    return bytes(local[1].device) if local is not None else bytes(node_keys().device.verify_key)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


# -- serving ----------------------------------------------------------------------------------


def _recycle() -> None:
    # Handlers run in the app protocols' long-lived worker threads: a server database
    # connection that broke or aged is replaced (as ``threads_io`` does for sync).
    default = connections["default"]
    if default.vendor != "sqlite":
        default.close_if_unusable_or_obsolete()


def _decode(request: bytes, max_size: int) -> dict[str, Any]:
    try:
        return wire.decode(request, max_size=max_size)
    except wire.WireError as exc:
        raise AppRefused(str(exc)) from exc


def _proof_party(proof: Any, *, purpose: str, peer_device: bytes) -> bytes | None:
    """The party whose secret ``proof`` shows the asking device holds (for this connection and
    purpose, fresh), or None."""
    if proof is None:
        return None
    try:
        return cadre_keys.party_proof_verify(
            proof,
            purpose=purpose,
            requester=peer_device,
            responder=bytes(node_keys().device.verify_key),
            now_ms=_now_ms(),
        )
    except cadre_keys.ProofError:
        return None


def _party_ok(proof: Any, *, purpose: str, peer_device: bytes) -> bool:
    """Whether ``proof`` shows the asking device holds THIS node's party secret."""
    secret = node_keys().master_secret
    if secret is None:
        return False
    party = _proof_party(proof, purpose=purpose, peer_device=peer_device)
    return party is not None and party == cadre_keys.party_id(secret)


def _mirrored_party(proof: Any, *, purpose: str, peer_device: bytes) -> bool:
    """Whether ``proof`` is a party proof of a party whose threads this full node keeps as a
    mirror does (a friend's control and storage threads deposited with the shares it holds,
    ``apps.storage.deposit``)."""
    from apps.cadre.models import MirrorParty

    party = _proof_party(proof, purpose=purpose, peer_device=peer_device)
    return party is not None and MirrorParty.objects.filter(pk=party.hex()).exists()


def _mirrored_thread(thread: bytes) -> bool:
    """Whether ``thread`` is kept here for another party, as a mirror keeps it."""
    from apps.cadre.models import MirrorThread

    return len(thread) == 32 and MirrorThread.objects.filter(pk=thread.hex()).exists()


def _as_mirror(handler: str, peer_device: bytes, request: bytes, refused: str) -> bytes:
    """Answer as a mirror does (it checks who asks again); any refusal in the words this node
    gives for a thread it does not have, so a stranger cannot tell the two apart."""
    from apps.cadre import mirror_serve

    try:
        return getattr(mirror_serve, handler)(peer_device, request)
    except AppRefused as exc:
        raise AppRefused(refused) from exc


def _held(thread: bytes) -> Thread | None:
    """This node's active thread ``thread`` (the control thread included), if any."""
    return Thread.objects.filter(pk=thread.hex(), state=Thread.State.ACTIVE).first()


def _certified_here(row: Thread, device: bytes) -> bool:
    """Whether ``device`` acts for this node's member in ``row`` (another device of the party,
    or a mirror the party certified there)."""
    database = thread_database(row.thread)
    with database.lock:
        member = database.replica().control.state.device_member(device)
    return member is not None and member.hex() == row.member_id


def _op_count(thread: bytes) -> int:
    connection = thread_database(thread).raw()
    return connection.execute("SELECT count(*) FROM sereus_ops WHERE place = 'log'").fetchone()[0]


def _threads_answer() -> list[dict[str, Any]]:
    control_id = control_thread_id_here()
    rows: list[Thread] = []
    if control_id is not None and (control := _held(control_id)) is not None:
        rows.append(control)
    rows += list(thread_services.thread_list().filter(state=Thread.State.ACTIVE).order_by("id"))
    out = []
    for row in rows[: wire.MAX_THREADS]:
        try:
            ops = _op_count(row.thread)
        except ThreadDatabaseError:
            continue  # a damaged file is reported elsewhere; the others still go
        out.append(
            {
                "thread": row.thread,
                "app": row.app,
                "name": row.name,
                "control": row.thread == control_id,
                "ops": ops,
            }
        )
    return out


def page_read(thread: bytes, after: int) -> tuple[list[bytes], int, bool]:
    """This node's log of ``thread`` after position ``after``: at most ``wire.PAGE_OPS`` ops
    and ``wire.PAGE_BYTES`` bytes (at least one op), the position of the last one, and whether
    nothing follows it."""
    connection = thread_database(thread).raw()
    found = connection.execute(
        "SELECT n, raw FROM sereus_ops WHERE place = 'log' AND n > ? ORDER BY n LIMIT ?",
        (after, wire.PAGE_OPS + 1),
    ).fetchall()
    ops: list[bytes] = []
    size, position = 0, after
    for n, raw in found[: wire.PAGE_OPS]:
        if ops and size + len(raw) > wire.PAGE_BYTES:
            return ops, position, False
        ops.append(bytes(raw))
        size += len(raw)
        position = n
    return ops, position, len(found) <= wire.PAGE_OPS


def serve_log(peer_device: bytes, request: bytes) -> bytes:
    """wire.LOG on a FULL node: the party's threads, or a page of one thread's log."""
    try:
        doc = _decode(request, MAX_LOG_REQUEST)
        op = doc.get("op")
        if op == "threads":
            if not _party_ok(doc.get("proof"), purpose="threads", peer_device=peer_device):
                if _mirrored_party(doc.get("proof"), purpose="threads", peer_device=peer_device):
                    return _as_mirror("serve_log", peer_device, request, NOT_PARTY)
                raise AppRefused(NOT_PARTY)
            return wire.encode({"threads": _threads_answer()})
        if op != "page":
            raise AppRefused("Unknown request: ask for 'threads' or a 'page'.")
        try:
            thread, after = wire.b32(doc, "thread"), wire.uint(doc, "after")
        except wire.WireError as exc:
            raise AppRefused(str(exc)) from exc
        row = _held(thread)
        if row is None and _mirrored_thread(thread):
            return _as_mirror("serve_log", peer_device, request, NOT_SHARED)
        if row is None or not (
            _certified_here(row, peer_device)
            or _party_ok(doc.get("proof"), purpose="page", peer_device=peer_device)
        ):
            raise AppRefused(NOT_SHARED)
        ops, position, done = page_read(thread, after)
        return wire.encode({"ops": ops, "next": position, "done": done})
    finally:
        _recycle()


def _counts(results: Iterable[Any]) -> dict[str, int]:
    counts = {"admitted": 0, "refused": 0, "other": 0}
    for result in results:
        if result.status in _KEPT:
            counts["admitted"] += 1
        elif result.status == "refused":
            counts["refused"] += 1
        else:
            counts["other"] += 1
    return counts


def serve_submit(peer_device: bytes, request: bytes) -> bytes:
    """wire.SUBMIT on a FULL node: ops of the party (a restored device's, its takeover) into a
    thread this node holds. Every op is checked by the thread's rules; junk is only counted."""
    try:
        doc = _decode(request, MAX_REQUEST)
        if not _party_ok(doc.get("proof"), purpose="submit", peer_device=peer_device):
            thread = doc.get("thread")
            if isinstance(thread, bytes) and _held(thread) is None and _mirrored_thread(thread):
                return _as_mirror("serve_submit", peer_device, request, NOT_PARTY)
            raise AppRefused(NOT_PARTY)
        try:
            thread = wire.b32(doc, "thread")
            raws = wire.items(doc, "ops", wire.PAGE_OPS)
        except wire.WireError as exc:
            raise AppRefused(str(exc)) from exc
        row = _held(thread)
        if row is None:
            raise AppRefused(NOT_SHARED)
        good = [r for r in raws if isinstance(r, bytes) and 0 < len(r) <= MAX_OP_SIZE]
        counts = _counts(thread_services.thread_ingest(thread=row, raws=good) if good else [])
        counts["other"] += len(raws) - len(good)
        return wire.encode(counts)
    finally:
        _recycle()


# -- asking -----------------------------------------------------------------------------------


def _ask(peer: str, addrs: list[str], protocol: str, doc: dict[str, Any], timeout: float) -> dict:
    from apps.p2p.client import app_request

    try:
        answer = app_request(peer, list(addrs), protocol, wire.encode(doc), timeout=timeout)
    except AppRequestError as exc:
        code = {"refused": "forbidden", "malformed": "invalid", "invalid": "invalid"}
        raise LogError(code.get(exc.code, "unavailable"), exc.words) from exc
    try:
        return wire.decode(answer, max_size=MAX_RESPONSE + 1024)
    except wire.WireError as exc:
        raise LogError("invalid", f"That node's answer is not readable ({exc}).") from exc


def _proof(purpose: str, peer: str) -> dict[str, Any] | None:
    secret = node_keys().master_secret
    if secret is None:
        return None  # a mirror: it asks as a device certified in the thread
    return cadre_keys.party_proof_sign(
        secret,
        purpose=purpose,
        requester=_my_device(),
        responder=device_of_peer(peer),
        at_ms=_now_ms(),
    )


def _page_check(doc: dict[str, Any], after: int) -> tuple[list[bytes], int, bool]:
    try:
        ops = wire.items(doc, "ops", wire.PAGE_OPS)
        position = wire.uint(doc, "next")
    except wire.WireError as exc:
        raise LogError("invalid", f"That node's page is malformed ({exc}).") from exc
    done = doc.get("done")
    if type(done) is not bool:
        raise LogError("invalid", "That node's page does not say whether it is the last.")
    if not all(isinstance(op, bytes) and 0 < len(op) <= MAX_OP_SIZE for op in ops):
        raise LogError("invalid", "That node's page holds something that is not an op.")
    if sum(len(op) for op in ops) > wire.PAGE_BYTES + MAX_OP_SIZE:
        raise LogError("invalid", "That node's page is larger than allowed.")
    if not done and (not ops or position <= after):
        # A page that does not move on would have us ask forever.
        raise LogError("invalid", "That node's log pages do not advance.")
    return ops, position, done


def log_pages(
    *, thread: bytes, peer: str, addrs: list[str], after: int = 0
) -> Iterator[tuple[list[bytes], int]]:
    """The pages of ``thread``'s log at ``peer`` from position ``after``: (ops, next)."""
    if len(thread) != 32:
        raise LogError("invalid", "A thread id is 32 bytes.")
    device_of_peer(peer)  # a peer id that is not a device's: said before any dialing
    total = 0
    while True:
        request: dict[str, Any] = {"op": "page", "thread": thread, "after": after}
        proof = _proof("page", peer)
        if proof is not None:
            request["proof"] = proof
        ops, after, done = _page_check(_ask(peer, addrs, wire.LOG, request, PAGE_TIMEOUT), after)
        total += len(ops)
        if total > MAX_FETCH_OPS:
            raise LogError(
                "invalid", f"That node sent more than {MAX_FETCH_OPS:,} ops of one thread."
            )
        yield ops, after
        if done:
            return


def fetch_log(
    *,
    thread: bytes,
    peer: str,
    addrs: list[str],
    progress: Callable[[int], Any] | None = None,
) -> list[bytes]:
    """``thread``'s whole log as ``peer`` holds it, in its log order (raw ops, unchecked:
    ingesting them checks them). ``progress(n)`` after each page: ops so far."""
    raws: list[bytes] = []
    size = 0
    for ops, _next in log_pages(thread=thread, peer=peer, addrs=addrs):
        raws.extend(ops)
        size += sum(len(op) for op in ops)
        if size > MAX_FETCH_BYTES:
            raise LogError("invalid", "That node sent more of one thread than this node holds.")
        if progress is not None:
            progress(len(raws))
    return raws


def list_threads(*, peer: str, addrs: list[str]) -> list[dict[str, Any]]:
    """The party's threads ``peer`` holds: [{thread, app, name, control, ops}]."""
    proof = _proof("threads", peer)
    if proof is None:
        raise LogError("unavailable", "This node has no usable recovery secret.")
    doc = _ask(peer, addrs, wire.LOG, {"op": "threads", "proof": proof}, PAGE_TIMEOUT)
    out = []
    try:
        for item in wire.items(doc, "threads", wire.MAX_THREADS):
            if not isinstance(item, dict) or type(item.get("control")) is not bool:
                raise wire.WireError("a thread in the list is malformed")
            out.append(
                {
                    "thread": wire.b32(item, "thread"),
                    "app": wire.text(item, "app", 64),
                    "name": wire.text(item, "name", 200),
                    "control": item["control"],
                    "ops": wire.uint(item, "ops"),
                }
            )
    except wire.WireError as exc:
        raise LogError("invalid", f"That node's list of threads is malformed ({exc}).") from exc
    return out


def _chunks(raws: list[bytes]) -> Iterator[list[bytes]]:
    chunk: list[bytes] = []
    size = 0
    for raw in raws:
        if len(raw) > SUBMIT_BUDGET:
            logger.warning("an op of %d bytes is too large to submit; left out", len(raw))
            continue
        if chunk and (size + len(raw) > SUBMIT_BUDGET or len(chunk) >= wire.PAGE_OPS):
            yield chunk
            chunk, size = [], 0
        chunk.append(raw)
        size += len(raw)
    if chunk:
        yield chunk


def submit(*, thread: bytes, raws: list[bytes], peer: str, addrs: list[str]) -> dict[str, int]:
    """Send ops of ``thread`` to ``peer`` (in order, in requests under 1 MiB); the counts it
    answered, summed."""
    totals = {"admitted": 0, "refused": 0, "other": 0}
    for chunk in _chunks(raws):
        proof = _proof("submit", peer)
        if proof is None:
            raise LogError("unavailable", "This node has no usable recovery secret.")
        doc = _ask(peer, addrs, wire.SUBMIT, {"thread": thread, "ops": chunk, "proof": proof}, 60.0)
        try:
            for key in totals:
                totals[key] += wire.uint(doc, key, high=wire.PAGE_OPS)
        except wire.WireError as exc:
            raise LogError("invalid", f"That node's answer is malformed ({exc}).") from exc
    return totals
