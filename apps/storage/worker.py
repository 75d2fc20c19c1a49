"""The storage app's background work in a running node: holders kept current, shares waiting in
the outbox placed, the party's threads deposited with friends, audits, repair, and (at most
hourly) retention.

One thread, started when the p2p node starts (``node_started``), like ``apps.cadre.worker``. It
runs every step every ``STEP_S`` seconds, and soon after ``wake()`` (ops in the storage thread
or a holding thread). Steps are named by dotted path, imported when first run; one step failing
is logged and never stops the others.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

STEP_S = 30.0
MIN_GAP_S = 5.0  # at least this long between rounds, however often woken
PRUNE_S = 3600.0  # retention drops snapshots: at most once an hour is plenty

# In order: who holds what first (placing needs holders), then what waits in the outbox, the
# deposits a restore from the phrase needs, then checks and what they found.
STEPS = (
    "apps.storage.hold:holders_refresh",
    "apps.storage.placement:place_pending",
    "apps.storage.deposit:deposit_step",
    "apps.storage.audit:audit_step",
    "apps.storage.repair:repair_round",  # repair_step, on one device of the party
)
PRUNE = "apps.storage.retention:prune"

_resolved: dict[str, Callable[[], Any] | None] = {}
_wake = threading.Event()
_thread: threading.Thread | None = None
_lock = threading.Lock()
_last_prune: float | None = None
# Thread ids (32 bytes) that wake the worker: the storage thread and the holding threads. Kept
# here so a write in any other thread costs a set lookup, not a query.
_watched: set[bytes] | None = None
_watch_failed_at = float("-inf")
LOOK_AGAIN_S = 1.0


def _resolve(path: str) -> Callable[[], Any] | None:
    if path in _resolved:
        return _resolved[path]
    module, _, name = path.partition(":")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        # Not written yet (another part of the app); tried again next round.
        logger.debug("storage step %s is not available", path)
        return None
    _resolved[path] = fn
    return fn


def _run_one(path: str) -> None:
    from django.db import close_old_connections

    fn = _resolve(path)
    if fn is None:
        return
    try:
        fn()
    except Exception:
        logger.exception("storage step %s failed", path)
    finally:
        try:
            close_old_connections()
        except Exception:  # the database went away under the worker (a stopping node)
            logger.debug("closing the storage worker's connections failed", exc_info=True)


def run_steps(*, prune: bool | None = None) -> None:
    """Every step once (the worker's round; tests call it directly). Retention runs when
    ``prune`` is True, or (None) when the last prune was more than ``PRUNE_S`` ago."""
    global _last_prune
    for path in STEPS:
        _run_one(path)
    now = time.monotonic()
    if prune is None:
        prune = _last_prune is None or now - _last_prune >= PRUNE_S
    if prune:
        _last_prune = now
        _run_one(PRUNE)
    _watch_refresh()


def _run() -> None:
    global _thread
    # Whether this process still runs the p2p node the steps talk through: as the cadre's.
    from apps.cadre.worker import _p2p_running

    last = float("-inf")
    while True:
        _wake.wait(STEP_S)
        # A backup writes op after op, each waking the worker: rounds stay MIN_GAP_S apart.
        time.sleep(max(0.0, MIN_GAP_S - (time.monotonic() - last)))
        _wake.clear()
        if not _p2p_running():
            # The node stopped: so does its worker (the next start starts it again).
            with _lock:
                if _thread is threading.current_thread():
                    _thread = None
            return
        last = time.monotonic()
        run_steps()


def start() -> None:
    global _thread
    with _lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_run, name="storage-worker", daemon=True)
            _thread.start()
    _wake.set()


def wake() -> None:
    _wake.set()


def _watch_refresh() -> None:
    """The thread ids whose ops wake the worker, read again (after each round: a holding
    thread joined or made meanwhile is seen within a round)."""
    global _watched, _watch_failed_at
    try:
        from apps.core.models import Thread
        from apps.storage.policy import HOLD_SHAPE, SHAPE

        rows = Thread.objects.filter(app__in=(SHAPE, HOLD_SHAPE), state=Thread.State.ACTIVE)
        _watched = {bytes.fromhex(t) for t in rows.values_list("id", flat=True)}
    except Exception:  # no database yet, or it went away: look again next round
        _watch_failed_at = time.monotonic()  # and not on every write meanwhile
        logger.debug("reading the storage threads failed", exc_info=True)


def on_ops_written(thread: bytes) -> None:
    """Ops written in ``thread`` (any thread of this node): wake the worker when it is the
    storage thread or a holding thread. Cheap: a set lookup once the ids are known."""
    try:
        if _watched is None and time.monotonic() - _watch_failed_at >= LOOK_AGAIN_S:
            _watch_refresh()
        if _watched is None or thread in _watched:
            # Unknown yet (no database read), or one of ours: a round too many costs little.
            _wake.set()
    except Exception:  # a receiver never fails whoever wrote
        return


def forget() -> None:
    """Tests: a node's data dir changed under this process."""
    global _watched, _last_prune, _watch_failed_at
    _watched = None
    _watch_failed_at = float("-inf")
    _last_prune = None
