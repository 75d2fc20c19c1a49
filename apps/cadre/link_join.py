"""The joining node's half of a device link (``apps.cadre.link`` says what a link is).

``join_start`` checks the link here and queues the join; ``join_step`` (the cadre worker's step)
claims the link from the inviting node, keeps the master secret it sends a full device, leaves
this device's proof for every thread, and fetches and adopts each thread (the control thread
first), a ``SyncProgress`` row per thread. The other device being away or busy is tried again
with a backoff; its refusal (expired, used by another device), or an answer that does not check
out, ends the join with its words. The link (it holds the link key's secret) is cleared when the
join ends.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

from apps.cadre import control, wire, worker
from apps.cadre import keys as cadre_keys
from apps.cadre.link import (
    EXPIRED,
    NOT_FRESH,
    LinkData,
    LinkError,
    device_of_peer,
    link_parse,
    node_addresses,
    now_ms,
)
from apps.cadre.models import PendingJoin, SyncProgress
from apps.core import identity
from apps.core.models import Thread
from apps.core.thread import keys as thread_keys
from apps.core.threads import services as thread_services

logger = logging.getLogger(__name__)

MAX_ANSWER = 1 << 20
CLAIM_TIMEOUT, CERTIFY_TIMEOUT = 20.0, 120.0
MAX_ATTEMPTS = 30  # after the claim; before it, the link's expiry ends the tries
RUNNING = (PendingJoin.State.PENDING, PendingJoin.State.CLAIMED, PendingJoin.State.FETCHING)


def join_start(*, link: str) -> PendingJoin:
    """Check ``link`` here, then let the cadre worker join the party with it."""
    data = link_parse(link)
    if now_ms() >= data.expires_ms:
        raise LinkError("invalid", EXPIRED)
    mirror = settings.SEREUS.mirror
    if data.kind == "mirror" and not mirror:
        raise LinkError(
            "invalid",
            "This link adds a mirror; start this node as a mirror (SEREUS_MIRROR=on) to use it.",
        )
    if data.kind == "full" and mirror:
        raise LinkError(
            "invalid", "This node is a mirror; a link for a full device joins only a full node."
        )
    if data.peer == identity.peer_id_from_public_key(control.this_device()):
        raise LinkError("invalid", "This link was made on this node; open it on your new device.")
    if data.kind == "full" and Thread.objects.exists():
        raise LinkError("conflict", NOT_FRESH)
    running = PendingJoin.objects.filter(state__in=RUNNING).first()
    if running is not None:
        if running.link == link.strip():
            return running
        raise LinkError("conflict", "This node is joining your other device already; wait.")
    SyncProgress.objects.filter(run="join").delete()
    join = PendingJoin.objects.create(link=link.strip(), kind=data.kind)
    worker.wake()
    return join


class _Retry(Exception):
    """Something to try again later (the other device is away or busy), in words."""


class _Refused(Exception):
    """The other device said no, or its answer is not to be trusted: the join ends."""


@dataclass(frozen=True)
class _Claim:
    kind: str
    master: bytes | None
    party: bytes
    control: bytes
    threads: list[dict[str, Any]]  # {thread, member, app, name, control}
    peer: str
    addrs: list[str]


def _ask(data: LinkData, doc: dict[str, Any], timeout: float) -> dict[str, Any]:
    from apps.p2p.app_protocols import AppRequestError
    from apps.p2p.client import app_request

    try:
        raw = app_request(data.peer, list(data.addrs), wire.LINK, wire.encode(doc), timeout=timeout)
    except AppRequestError as exc:
        if exc.code in ("refused", "invalid"):  # its words, or a request that can never work
            raise _Refused(exc.words) from exc
        raise _Retry(f"Your other device cannot be reached yet ({exc.words}).") from exc
    try:
        return wire.decode(raw, max_size=MAX_ANSWER)
    except wire.WireError as exc:
        raise _Refused(f"Your other device's answer is not readable ({exc}).") from exc


def _claim_check(answer: dict[str, Any], data: LinkData) -> _Claim:
    """The claim's answer, checked: nothing in it is trusted beyond what it proves."""
    try:
        kind = wire.text(answer, "kind", 16)
        master = wire.b32(answer, "master") if kind == "full" else None
        party, control_id = wire.b32(answer, "party"), wire.b32(answer, "control")
        threads = []
        for item in wire.items(answer, "threads", wire.MAX_THREADS):
            if not isinstance(item, dict):
                raise wire.WireError("each thread is a map")
            thread = wire.b32(item, "thread")
            threads.append(
                {
                    "thread": thread,
                    "member": wire.b32(item, "member"),
                    "app": wire.text(item, "app", 64),
                    "name": wire.text(item, "name", 200),
                    "control": thread == control_id,
                }
            )
        peer = wire.text(answer, "peer", 128)
        addrs = wire.addrs(answer)
    except wire.WireError as exc:
        raise _Refused(f"Your other device's answer is not readable ({exc}).") from exc
    if kind != data.kind or not threads or threads[0]["thread"] != control_id:
        raise _Refused("Your other device's answer does not match the link.")
    if master is not None:
        # A full device can check everything against the secret it was given.
        wrong = cadre_keys.party_id(master) != party or (
            cadre_keys.control_thread_id(master) != control_id
        )
        for item in threads:
            member = thread_keys.member_key(master, item["thread"]).verify_key
            wrong = wrong or bytes(member) != item["member"]
        if wrong:
            raise _Refused("Your other device's answer does not match its recovery secret.")
    return _Claim(kind, master, party, control_id, threads, peer, addrs or list(data.addrs))


def _secret_store(master: bytes) -> None:
    data_dir = Path(settings.DATA_DIR)
    current = None
    if identity.master_secret_exists(data_dir):
        try:
            current = identity.master_secret_load(data_dir)
        except identity.KeyFileError:
            current = None  # sealed or damaged: a fresh node's secret guards nothing
    if current != master:
        identity.master_secret_replace(data_dir, master)
        worker.forget()


def _progress(claim: _Claim) -> None:
    for item in claim.threads:
        SyncProgress.objects.get_or_create(
            run="join",
            thread_id=item["thread"].hex(),
            # A mirror keeps no thread's name or app, even from a full node that sent them.
            defaults={
                "name": "" if settings.SEREUS.mirror else item["name"],
                "app": "" if settings.SEREUS.mirror else item["app"],
                "control": item["control"],
            },
        )


def _join_run(join: PendingJoin) -> None:
    try:
        data = link_parse(join.link)
    except LinkError as exc:
        raise _Refused(exc.words) from exc
    if join.state == PendingJoin.State.FETCHING:
        # Certified already: only logs are left, from the same device (the link may have
        # expired since; it is not claimed again).
        rows = SyncProgress.objects.filter(run="join")  # the control thread first
        threads = [
            {"thread": bytes.fromhex(r.thread_id), "name": r.name, "control": r.control}
            for r in rows
        ]
        _fetch_all(threads, data.peer, list(data.addrs))
        return
    me = control.node_keys().device
    mine, inviter = bytes(me.verify_key), device_of_peer(data.peer)

    def sig(step: str) -> bytes:
        return cadre_keys.link_proof_sign(data.seed, step=step, requester=mine, responder=inviter)

    claim = _claim_check(
        _ask(data, {"op": "claim", "link": data.id, "sig": sig("claim")}, CLAIM_TIMEOUT), data
    )
    if claim.master is not None:
        _secret_store(claim.master)
    _progress(claim)
    proofs = [
        {
            "thread": t["thread"],
            "proof": thread_keys.device_proof_sign(me, t["thread"], t["member"]),
        }
        for t in claim.threads
    ]
    request = {"op": "certify", "link": data.id, "sig": sig("certify"), "label": data.name}
    request.update(proofs=proofs, addrs=list(node_addresses()))
    _ask(data, request, CERTIFY_TIMEOUT)
    PendingJoin.objects.filter(pk=join.pk).update(state=PendingJoin.State.CLAIMED)
    if claim.kind == "mirror":
        from apps.cadre import mirror_serve

        mirror_serve.mirror_joined(
            party=claim.party, threads=claim.threads, peer=claim.peer, addrs=claim.addrs
        )
        SyncProgress.objects.filter(run="join").update(state=SyncProgress.State.DONE)
        return
    PendingJoin.objects.filter(pk=join.pk).update(state=PendingJoin.State.FETCHING)
    _fetch_all(claim.threads, claim.peer, claim.addrs)


def _fetch_all(threads: list[dict[str, Any]], peer: str, addrs: list[str]) -> None:
    """Fetch and adopt each thread not done yet (the control thread first) from ``peer``."""
    from apps.cadre import logs

    failed = []
    for item in threads:
        thread, hex_id = item["thread"], item["thread"].hex()
        row = SyncProgress.objects.get(run="join", thread_id=hex_id)
        if row.state == SyncProgress.State.DONE:
            continue
        SyncProgress.objects.filter(pk=row.pk).update(state=SyncProgress.State.FETCHING)

        def progress(n: int, pk: int = row.pk) -> None:
            SyncProgress.objects.filter(pk=pk).update(ops_fetched=n)

        try:
            raws = logs.fetch_log(thread=thread, peer=peer, addrs=addrs, progress=progress)
            thread_services.thread_adopt(thread=thread, raws=raws)
        except Exception as exc:  # that device is away, or did not certify this one yet
            logger.info("join: fetching %s failed: %s", hex_id[:12], exc)
            words = getattr(exc, "words", None) or str(exc) or type(exc).__name__
            SyncProgress.objects.filter(pk=row.pk).update(
                state=SyncProgress.State.FAILED, problem=words[:500]
            )
            failed.append(item["name"] or hex_id[:12])
            if item["control"]:
                break  # nothing else can be adopted before the device list
            continue
        SyncProgress.objects.filter(pk=row.pk).update(state=SyncProgress.State.DONE, problem="")
    if failed:
        raise _Retry(f"Not fetched yet: {', '.join(failed[:5])}; this node keeps trying.")


def _due(join: PendingJoin) -> bool:
    if not join.attempts:
        return True
    wait = min(60, 2 ** min(join.attempts, 6))
    return timezone.now() >= join.updated_at + timedelta(seconds=wait)


def _end(join: PendingJoin, state: str, problem: str = "") -> None:
    # The link holds the link key's secret: never kept past the join.
    PendingJoin.objects.filter(pk=join.pk).update(
        state=state, problem=problem, link="", updated_at=timezone.now()
    )


def join_step() -> None:
    """Worker step: carry the join under way one step further (claim, certify, fetch)."""
    join = PendingJoin.objects.filter(state__in=RUNNING).order_by("created_at").first()
    if join is None or not _due(join):
        return
    try:
        _join_run(join)
    except _Refused as exc:
        _end(join, PendingJoin.State.FAILED, str(exc))
        return
    except Exception as exc:  # a retry, or a failure of this node's own (logged, tried again)
        if not isinstance(exc, _Retry):
            logger.exception("join: a step failed")
        join.refresh_from_db()
        attempts = join.attempts + 1
        claimed = join.state != PendingJoin.State.PENDING
        expired = not claimed and _link_expired(join.link)
        if expired or attempts >= MAX_ATTEMPTS:
            why = EXPIRED if expired else str(exc)
            _end(join, PendingJoin.State.FAILED, why)
            return
        PendingJoin.objects.filter(pk=join.pk).update(
            attempts=attempts, problem=str(exc), updated_at=timezone.now()
        )
        return
    _end(join, PendingJoin.State.DONE)


def _link_expired(text: str) -> bool:
    try:
        return now_ms() >= link_parse(text).expires_ms
    except LinkError:
        return True
