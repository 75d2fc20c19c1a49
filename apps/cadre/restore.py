"""A node restored from the recovery phrase becomes a device of its party again (issue 17 §3).

``manage.py node_restore --from <multiaddr>/p2p/<peer id>`` stores the master secret and a
``RestoreRun`` naming where the party's devices or mirrors are; the running node's cadre worker
finishes it here (``restore_step``), one stage per round, every stage safe to run again after a
restart:

1. *listing*: a source lists the party's threads (a party proof: only this party is answered);
   the control thread must be among them.
2. *fetching*: each thread's log, the control thread first, page by page into the thread's
   database, not yet adopted: this device is not certified anywhere, so nothing is this node's
   yet. Progress is kept per thread (``SyncProgress``, run "restore").
3. *takeover*: the control thread names the party's current *standby* key (derived from the
   phrase, certified in every thread). In each thread, control first, this node writes once AS
   that standby a ``CertifyDevice`` for its own device key, then adopts the thread. Then the
   standby is marked spent, this device recorded, the next standby recorded and certified
   everywhere, and the ops this node wrote sent to the source, which serves them to the others.

A source that is away is tried again with a growing pause; a hard refusal (the source serves
another party, the party has no device list or no standby) ends the run in words.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.cadre import control, logs
from apps.cadre import keys as cadre_keys
from apps.cadre.control import CadreError
from apps.cadre.models import PartyDevice, RestoreRun, SyncProgress
from apps.core.models import Thread
from apps.core.thread import keys as thread_keys
from apps.core.threads import services as thread_services
from apps.core.threads.context import thread_context
from apps.core.threads.database import ThreadDatabaseError
from apps.core.threads.registry import thread_database

logger = logging.getLogger(__name__)

RUN = "restore"
RESTORED_LABEL = "Restored from the recovery phrase"
LEFT_WORDS = "You are no longer a member of this thread; it is not restored."
MAX_SOURCES = 8
BACKOFF_S = (5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
MAX_ATTEMPTS = 60  # about four hours of a source away, then the run says so and stops
_not_before: dict[int, float] = {}  # run id -> monotonic time of its next try

ACTIVE_STATES = (
    RestoreRun.State.PENDING,
    RestoreRun.State.LISTING,
    RestoreRun.State.FETCHING,
    RestoreRun.State.TAKEOVER,
)


class RestoreError(CadreError):
    """A restore that cannot go on (in words)."""


class _Hard(Exception):
    """Ends the run: trying again would not help."""


class _NotMember(Exception):
    """The party left (or was removed from) a thread a source still holds: not restored, and
    not a failure either."""


# -- starting -----------------------------------------------------------------------------------


def sources_parse(texts: Iterable[str]) -> list[dict[str, Any]]:
    """``/ip4/…/tcp/…/p2p/<peer id>`` addresses, grouped by peer: [{peer, addrs}]."""
    import multiaddr

    found: dict[str, list[str]] = {}
    for text in texts:
        text = text.strip()
        where, _, peer = text.rpartition("/p2p/")
        if not where or not peer or "/" in peer:
            raise RestoreError(
                "invalid",
                f"{text[:100]!r} is not an address of a node: it must end in /p2p/<peer id>.",
            )
        logs.device_of_peer(peer)  # LogError in words for a peer id that is not a device's
        try:
            multiaddr.Multiaddr(where)
        except Exception as exc:
            raise RestoreError(
                "invalid", f"{where[:100]!r} is not a network address (a multiaddr)."
            ) from exc
        if len(where) > 300:
            raise RestoreError("invalid", "That address is too long.")
        addrs = found.setdefault(peer, [])
        if where not in addrs and len(addrs) < 16:
            addrs.append(where)
    if len(found) > MAX_SOURCES:
        raise RestoreError("invalid", f"Give at most {MAX_SOURCES} devices or mirrors.")
    return [{"peer": peer, "addrs": addrs} for peer, addrs in found.items()]


def restore_queue(sources: list[dict[str, Any]]) -> RestoreRun:
    """A run for the worker (after ``node_restore`` stored the master secret)."""
    if not sources:
        raise RestoreError(
            "invalid", "Name at least one device or mirror of yours to restore from."
        )
    if RestoreRun.objects.filter(state__in=ACTIVE_STATES).exists():
        raise RestoreError("conflict", "A restore is under way already.")
    return RestoreRun.objects.create(sources=sources)


def restore_status() -> dict[str, Any]:
    """The latest restore, for the pages and the API."""
    from apps.cadre.selectors import restore_status as status

    return status()


# -- the worker step --------------------------------------------------------------------------


def restore_step() -> None:
    """Worker step: move the restore under way one stage on (or try it again after a pause)."""
    run = RestoreRun.objects.filter(state__in=ACTIVE_STATES).order_by("started_at", "pk").first()
    if run is None or time.monotonic() < _not_before.get(run.pk, 0.0):
        return
    try:
        _advance(run)
    except _Hard as exc:
        _end(run, RestoreRun.State.FAILED, str(exc))
    except (CadreError, thread_services.ThreadServiceError, ThreadDatabaseError) as exc:
        _again(run, getattr(exc, "words", None) or str(exc))
    except Exception:
        # A bug, or an answer nobody foresaw: said in the log, tried again after a pause
        # rather than every round.
        logger.exception("restore: a step failed")
        _again(run, "Something went wrong on this node; it tries again shortly.")


def _again(run: RestoreRun, words: str) -> None:
    run.attempts += 1
    if run.attempts >= MAX_ATTEMPTS:
        _end(run, RestoreRun.State.FAILED, f"Gave up after {run.attempts} tries: {words}")
        return
    run.problem = words
    run.save(update_fields=["attempts", "problem"])
    pause = BACKOFF_S[min(run.attempts - 1, len(BACKOFF_S) - 1)]
    _not_before[run.pk] = time.monotonic() + pause
    logger.info("restore: %s (trying again in %g s)", words, pause)


def _end(run: RestoreRun, state: str, problem: str = "") -> None:
    run.state, run.problem, run.finished_at = state, problem, timezone.now()
    run.save(update_fields=["state", "problem", "finished_at"])
    _not_before.pop(run.pk, None)


def _set(run: RestoreRun, state: str) -> None:
    run.state, run.problem = state, ""
    run.save(update_fields=["state", "problem"])


def _advance(run: RestoreRun) -> None:
    master = control.master_secret()  # sealed: tried again once it is unlocked
    if run.state in (RestoreRun.State.PENDING, RestoreRun.State.LISTING):
        _set(run, RestoreRun.State.LISTING)
        _listing(run, master)
        _set(run, RestoreRun.State.FETCHING)
    if run.state == RestoreRun.State.FETCHING:
        _fetching(run, master)
        _set(run, RestoreRun.State.TAKEOVER)
    if run.state == RestoreRun.State.TAKEOVER:
        taken = _takeover(master)
        _submit(run, master, taken)
        failed = SyncProgress.objects.filter(run=RUN, state=SyncProgress.State.FAILED)
        words = ", ".join(row.name or row.thread_id[:12] for row in failed[:5])
        problem = f"Some threads could not be restored: {words}." if words else ""
        _end(run, RestoreRun.State.DONE, problem)


# -- listing ------------------------------------------------------------------------------------


def _listing(run: RestoreRun, master: bytes) -> None:
    control_id = cadre_keys.control_thread_id(master)
    refusals: list[str] = []
    away: list[str] = []
    for index, source in enumerate(run.sources):
        try:
            listed = logs.list_threads(peer=source["peer"], addrs=source["addrs"])
        except CadreError as exc:
            (refusals if exc.code in ("forbidden", "invalid") else away).append(exc.words)
            continue
        if not any(item["thread"] == control_id and item["control"] for item in listed):
            refusals.append("it does not hold your device list")
            continue
        # The source that answered is asked first from now on.
        run.sources = [source, *run.sources[:index], *run.sources[index + 1 :]]
        run.save(update_fields=["sources"])
        _progress_rows(listed, control_id)
        return
    if away:
        raise RestoreError("unavailable", f"Cannot reach your device or mirror yet: {away[0]}")
    raise _Hard(
        "None of the devices or mirrors named serves your party "
        f"({refusals[0] if refusals else 'no answer'}). Check the recovery phrase and the address."
    )


def _progress_rows(listed: list[dict[str, Any]], control_id: bytes) -> None:
    with transaction.atomic():
        for item in listed:
            SyncProgress.objects.update_or_create(
                run=RUN,
                thread_id=item["thread"].hex(),
                defaults={
                    "name": "Your devices" if item["thread"] == control_id else item["name"],
                    "app": item["app"],
                    "control": item["thread"] == control_id,
                    "ops_total": item["ops"],
                },
            )


# -- fetching -------------------------------------------------------------------------------------


def _fetching(run: RestoreRun, master: bytes) -> None:
    control_hex = cadre_keys.control_thread_id(master).hex()
    rows = SyncProgress.objects.filter(run=RUN).exclude(state=SyncProgress.State.DONE)
    # The control thread first: without it nothing else can be taken over.
    for row in sorted(rows, key=lambda r: r.thread_id != control_hex):
        if row.state == SyncProgress.State.FAILED and row.thread_id != control_hex:
            continue
        try:
            _fetch_one(run, row)
        except CadreError as exc:
            if exc.code != "forbidden":
                raise  # away: the whole run is tried again later
            if row.thread_id == control_hex:
                raise _Hard(f"Your device list could not be fetched: {exc.words}") from exc
            row.state, row.problem = SyncProgress.State.FAILED, exc.words
            row.save(update_fields=["state", "problem", "updated_at"])


def _fetch_one(run: RestoreRun, row: SyncProgress) -> None:
    thread = bytes.fromhex(row.thread_id)
    database = thread_database(thread)
    last: CadreError | None = None
    for source in run.sources:
        # From the start at each source: positions are each source's own log order.
        row.state, row.problem, row.ops_fetched = SyncProgress.State.FETCHING, "", 0
        row.save(update_fields=["state", "problem", "ops_fetched", "updated_at"])
        try:
            for ops, _next in logs.log_pages(
                thread=thread, peer=source["peer"], addrs=source["addrs"]
            ):
                # Each page follows its causal past: ingested as it comes, checked by the rules.
                if ops:
                    database.ingest(ops)
                row.ops_fetched += len(ops)
                row.save(update_fields=["ops_fetched", "updated_at"])
        except CadreError as exc:
            last = exc
            continue
        row.state = SyncProgress.State.DONE
        row.save(update_fields=["state", "updated_at"])
        return
    assert last is not None
    raise last


# -- takeover -------------------------------------------------------------------------------------


def _standby_rows(control_id: bytes) -> list[PartyDevice]:
    """The standby keys the (not yet adopted) control thread lists, active or spent."""
    with thread_context(control_id):
        return list(PartyDevice.objects.filter(kind=PartyDevice.Kind.STANDBY))


def _certifier(thread: bytes, device: bytes) -> bytes | None:
    """The device whose op certified ``device`` in ``thread`` (None: not certified)."""
    database = thread_database(thread)
    with database.lock:
        replica = database.replica()
        state = replica.control.state
        if state.device_member(device) is None:
            return None
        op = replica.store.op_by_hash(state.devices[device].certified_by)
    return None if op is None else op.device


def _standby_index(master: bytes, control_id: bytes, me: bytes) -> int:
    """The standby this restore acts as: the one that certified this device already (a run
    resumed after a restart), else the party's current one."""
    rows = _standby_rows(control_id)
    indexes = sorted({r.standby_index for r in rows if r.standby_index is not None})
    by_key = {bytes(cadre_keys.standby_key(master, i).verify_key): i for i in indexes}
    certifier = _certifier(control_id, me)
    if certifier is not None and certifier in by_key:
        return by_key[certifier]
    active = [
        r.standby_index
        for r in rows
        if r.state == PartyDevice.State.ACTIVE and r.standby_index is not None
    ]
    if not active:
        raise _Hard(
            "Your device list names no recovery key, so the phrase alone cannot make this node "
            "one of your devices. Add it with a device link from a device you still have."
        )
    return max(active)


def _certify_me(thread: bytes, master: bytes, standby: int, me_key: Any) -> None:
    """This device certified for the party in ``thread``, written once as the standby."""
    me = bytes(me_key.verify_key)
    member = bytes(thread_keys.member_key(master, thread).verify_key)
    database = thread_database(thread)
    with database.lock:
        state = database.replica().control.state
        if state.device_member(me) == member:
            return
        if state.role_of(member) is None:
            raise _NotMember(LEFT_WORDS)
        key = cadre_keys.standby_key(master, standby)
        if state.device_member(bytes(key.verify_key)) != member:
            raise RestoreError("forbidden", "your recovery key is not certified in this thread")
    database.write(lambda writer: writer.certify_device(me_key), device_key=key)


def _adopt(thread: bytes) -> Thread:
    found = Thread.objects.filter(pk=thread.hex(), state=Thread.State.ACTIVE).first()
    return found if found is not None else thread_services.thread_adopt(thread=thread)


def _takeover(master: bytes) -> list[Thread]:
    """Certify this device everywhere as the standby, adopt, then pass the standby on.
    Returns the threads taken over (the control thread first)."""
    control_id = cadre_keys.control_thread_id(master)
    me_key = control.node_keys().device
    me = bytes(me_key.verify_key)
    standby = _standby_index(master, control_id, me)
    try:
        _certify_me(control_id, master, standby, me_key)
    except RestoreError as exc:
        raise _Hard(f"Your device list does not accept your recovery key ({exc.words}).") from exc
    taken = [_adopt(control_id)]
    rows = SyncProgress.objects.filter(run=RUN, state=SyncProgress.State.DONE, control=False)
    for row in rows:
        thread = bytes.fromhex(row.thread_id)
        try:
            _certify_me(thread, master, standby, me_key)
            adopted = _adopt(thread)
        except _NotMember as exc:
            row.problem = str(exc)
            row.save(update_fields=["problem", "updated_at"])
            continue
        except (RestoreError, thread_services.ThreadServiceError, ThreadDatabaseError) as exc:
            row.state, row.problem = SyncProgress.State.FAILED, str(exc)
            row.save(update_fields=["state", "problem", "updated_at"])
            continue
        taken.append(adopted)
        if row.name != adopted.name:  # a mirror cannot read names: the thread's own, now
            row.name = adopted.name
            row.save(update_fields=["name", "updated_at"])
    # The next standby first, then the spent one: a restart in between still finds a current
    # standby, and ``_standby_index`` finds the spent one through its certificate of this device.
    spent = bytes(cadre_keys.standby_key(master, standby).verify_key)
    after = bytes(cadre_keys.standby_key(master, standby + 1).verify_key)
    kind = PartyDevice.Kind.STANDBY
    control.device_record(device=after, kind=kind, standby_index=standby + 1)
    control.device_record(
        device=spent, kind=kind, standby_index=standby, state=PartyDevice.State.SPENT
    )
    control.device_record(device=me, kind=PartyDevice.Kind.FULL, label=RESTORED_LABEL)
    for thread in taken:
        control.certify_standby(thread)
    return taken


def _submit(run: RestoreRun, master: bytes, taken: list[Thread]) -> None:
    """Send what this node wrote (as itself and as the standby) to the source, which serves
    it to the party's other devices and mirrors."""
    me = control.this_device()
    writers = {me}
    for row in _standby_rows(cadre_keys.control_thread_id(master)):
        if row.standby_index is not None:
            writers.add(bytes(cadre_keys.standby_key(master, row.standby_index).verify_key))
    for thread in taken:
        connection = thread_database(thread.thread).raw()
        found = [
            (n, bytes(raw))
            for device in writers
            for n, raw in connection.execute(
                "SELECT n, raw FROM sereus_ops WHERE place = 'log' AND device = ?", (device,)
            )
        ]
        raws = [raw for _n, raw in sorted(found)]  # log order: each after its causal past
        if not raws:
            continue
        last: CadreError | None = None
        for source in run.sources:
            try:
                logs.submit(
                    thread=thread.thread, raws=raws, peer=source["peer"], addrs=source["addrs"]
                )
            except CadreError as exc:
                last = exc
                continue
            last = None
            break
        if last is not None:
            raise last
