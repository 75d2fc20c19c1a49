"""A full node keeping its party's mirrors in step (``rosters_step``, a cadre worker step).

For each active mirror of the party, this node sends ``MIRROR assign`` with a party proof: every
party thread it holds (the control thread first), the party's member key there and the roster,
the thread's active member devices (every member's, the mirror's own included) with the
addresses they published. It sends again when that changes (a digest is kept in memory) and at
least every ``PUSH_EVERY`` seconds; a mirror that does not answer is asked again later and later.
The mirror answers its device proof for each thread, and this node certifies it where it is not
yet: so a thread new to the party reaches its mirrors without anyone doing anything.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from apps.cadre import control, wire
from apps.cadre import keys as cadre_keys
from apps.cadre.models import PartyDevice
from apps.core.models import Thread
from apps.core.thread import codec, crypto
from apps.core.threads.registry import thread_database

logger = logging.getLogger(__name__)

PUSH_EVERY = 60.0  # seconds: an unchanged roster is sent again this often
RETRY_MOST = 300.0  # seconds between tries at a mirror that does not answer, at most
TIMEOUT = 20.0
BATCH_BYTES = 900 << 10  # an assign request stays under the mirror's 1 MiB
MAX_ROSTER = 1024
MAX_CHUNKS = 4096


@dataclass
class _Sent:
    digest: bytes | None  # of the last assignment the mirror took (None: none yet)
    at: float  # monotonic: when it was sent or last tried
    failures: int = 0


_sent: dict[str, _Sent] = {}  # mirror device hex -> what it last got


def forget() -> None:
    """Tests: start again as if nothing was sent."""
    _sent.clear()


def _roster(
    thread: Thread, recorded: dict[str, list[str]], offline: set[bytes]
) -> list[dict[str, Any]]:
    database = thread_database(thread.thread)
    with database.lock:
        state = database.replica().control.state
        devices = [
            d
            for d in sorted(state.devices)
            if state.device_member(d) is not None and d not in offline
        ]
        published = {d: list(state.addresses.get(d, ())) for d in devices}
    roster = []
    for device in devices[:MAX_ROSTER]:
        # A mirror cannot publish its addresses in a thread: the party recorded them.
        addrs = published[device] or recorded.get(device.hex(), [])
        addrs = [a for a in addrs if isinstance(a, str) and 0 < len(a) <= wire.MAX_ADDR]
        roster.append({"device": device, "addrs": addrs[: wire.MAX_ADDRS]})
    return roster


def _chunks(thread: bytes) -> list[bytes]:
    """The attachment chunks this node holds of ``thread`` (their hashes, at most
    ``MAX_CHUNKS``): the mirror fetches those it lacks."""
    folder = Path(settings.DATA_DIR) / "blobs" / thread.hex()
    try:
        names = sorted(entry.name for entry in os.scandir(folder) if entry.is_file())
    except OSError:
        return []
    found = []
    for name in names:
        try:
            chunk = bytes.fromhex(name)
        except ValueError:
            continue  # a partial write's temporary file
        if len(chunk) == 32:
            found.append(chunk)
        if len(found) == MAX_CHUNKS:
            break
    return found


def assignment() -> list[dict[str, Any]]:
    """Every party thread this node holds, the control thread first, with its member key and
    roster (what ``MIRROR assign`` carries, less the proof)."""
    found = control.control_thread()
    if found is None:
        return []
    recorded = control.device_addresses()
    # Keys that never come online (the standby keys, the control thread's genesis key): a
    # mirror would only try to dial them.
    secret = control.master_secret()
    offline = {bytes(cadre_keys.genesis_key(secret).verify_key)} | {
        bytes.fromhex(d.device)
        for d in control.party_devices(include_gone=True)
        if d.kind == PartyDevice.Kind.STANDBY
    }
    threads = [found] + [t for t in control.party_thread_records() if t.pk != found.pk]
    return [
        {
            "thread": t.thread,
            "member": bytes.fromhex(t.member_id),
            "control": t.pk == found.pk,
            "roster": _roster(t, recorded, offline),
            "chunks": _chunks(t.thread),
        }
        for t in threads[: wire.MAX_THREADS]
    ]


def _batches(threads: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    out: list[list[dict[str, Any]]] = [[]]
    size = 0
    for item in threads:
        weight = len(codec.encode(item))
        while weight > BATCH_BYTES and item["roster"]:
            # A roster too large for one request (thousands of devices with many addresses):
            # the first half goes, the rest fetch from the party's devices.
            item = {**item, "roster": item["roster"][: len(item["roster"]) // 2]}
            weight = len(codec.encode(item))
        if out[-1] and size + weight > BATCH_BYTES:
            out.append([])
            size = 0
        out[-1].append(item)
        size += weight
    return out


def _due(device: str, digest: bytes, now: float) -> bool:
    sent = _sent.get(device)
    if sent is None:
        return True
    if sent.failures:
        return now - sent.at >= min(RETRY_MOST, 5.0 * 2**sent.failures)
    return sent.digest != digest or now - sent.at >= PUSH_EVERY


def rosters_step(*, urgent: bool = False) -> None:
    """Worker step: send each active mirror of the party its assignment when it changed, or
    every ``PUSH_EVERY`` seconds; certify the mirror with the proofs it answers.

    ``urgent``: send now, even to a mirror whose last push failed and is backing off. A
    removal uses it: a mirror left waiting for its retry would pass the removed device what is
    written meanwhile."""
    if settings.SEREUS.mirror or control.control_thread() is None:
        return
    mirrors = [d for d in control.party_devices() if d.kind == PartyDevice.Kind.MIRROR]
    if not mirrors:
        return
    threads = assignment()
    digest = crypto.blake2b256(codec.encode({"threads": threads}))
    now = time.monotonic()
    for mirror in mirrors:
        if not urgent and not _due(mirror.device, digest, now):
            continue
        try:
            certified = assign(mirror, threads)
        except Exception as exc:  # away, or refusing: asked again later and later
            sent = _sent.get(mirror.device) or _Sent(None, now)
            _sent[mirror.device] = _Sent(sent.digest, now, sent.failures + 1)
            logger.info("mirror %s: %s", mirror.device[:12], exc)
            continue
        _sent[mirror.device] = _Sent(digest, now)
        if certified:
            logger.info("mirror %s certified in %d threads", mirror.device[:12], certified)


def assign(mirror: PartyDevice, threads: list[dict[str, Any]]) -> int:
    """Send ``threads`` to ``mirror``; certify it with the proofs it answers. Returns in how
    many threads it was certified now."""
    from apps.p2p.client import app_request

    device = bytes.fromhex(mirror.device)
    addrs = list(mirror.addrs or []) or control.device_addresses().get(mirror.device, [])
    secret = control.master_secret()
    me = control.this_device()
    certified = 0
    for batch in _batches(threads):
        proof = cadre_keys.party_proof_sign(
            secret,
            purpose="assign",
            requester=me,
            responder=device,
            at_ms=time.time_ns() // 1_000_000,
        )
        request = wire.encode({"op": "assign", "proof": proof, "threads": batch})
        answer = app_request(mirror.peer_id, addrs, wire.MIRROR, request, timeout=TIMEOUT)
        certified += _certify(device, batch, wire.decode(answer, max_size=256 << 10))
    return certified


def _certify(device: bytes, batch: list[dict[str, Any]], answer: dict[str, Any]) -> int:
    """Certify the mirror with each proof it answered for a thread of ``batch``."""
    asked = {item["thread"] for item in batch}
    certified = 0
    for item in wire.items(answer, "proofs", wire.MAX_THREADS):
        if not isinstance(item, dict):
            raise wire.WireError("each proof is a map")
        thread_id, proof = wire.b32(item, "thread"), wire.b32(item, "proof", 64)
        if thread_id not in asked:
            continue
        thread = Thread.objects.filter(pk=thread_id.hex(), state=Thread.State.ACTIVE).first()
        if thread is None:
            continue
        try:
            certified += control.certify(thread, device, proof)
        except control.CadreError as exc:  # a proof that does not verify: not certified
            logger.warning("certifying mirror %s failed: %s", device.hex()[:12], exc)
    return certified
