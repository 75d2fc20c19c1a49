"""The cadre's background work in a running node: joins and restores under way, proofs other
devices left, party threads this node lacks, rosters for the party's mirrors.

One thread, started when the p2p node starts (``node_started``). It runs every step every
``STEP_S`` seconds, and soon after ``wake()`` (a page that queued a join, ops in the control
thread). Steps are named functions registered by dotted path (``STEPS``), imported when first run;
one step failing is logged and never stops the others.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

STEP_S = 5.0
# In order: a join or a restore first (nothing else can happen before), then what keeps the
# party's devices and mirrors in step.
STEPS = (
    "apps.cadre.link:join_step",
    "apps.cadre.restore:restore_step",
    "apps.cadre.control:proofs_step",
    "apps.cadre.control:adopt_step",
    "apps.cadre.mirror_client:rosters_step",
    "apps.cadre.control:settings_step",
)

_steps: list[tuple[str, Callable[[], Any] | None]] = []
_wake = threading.Event()
_thread: threading.Thread | None = None
_lock = threading.Lock()
_control_id: bytes | None = None
# When the control thread is not known (a node not claimed yet, or sealed by a passphrase),
# looking again costs a key file read and a derivation: at most once a second, not per write.
_control_missing_at = float("-inf")
LOOK_AGAIN_S = 1.0


def steps_install() -> None:
    _steps[:] = [(path, None) for path in STEPS]


def step_register(name: str, fn: Callable[[], Any]) -> None:
    """Add a step (tests, or an app of the cadre) after the built-in ones."""
    _steps.append((name, fn))


def _resolve(path: str) -> Callable[[], Any] | None:
    module, _, name = path.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        logger.debug("cadre step %s is not available", path)
        return None


def run_steps() -> None:
    """Every step once (the worker's round; tests call it directly)."""
    from django.db import close_old_connections

    for i, (path, fn) in enumerate(list(_steps)):
        if fn is None:
            fn = _resolve(path)
            if fn is None:
                continue
            _steps[i] = (path, fn)
        try:
            fn()
        except Exception:
            logger.exception("cadre step %s failed", path)
        finally:
            try:
                close_old_connections()
            except Exception:  # the database went away under the worker (a stopping node)
                logger.debug("closing the cadre worker's connections failed", exc_info=True)


def _p2p_running() -> bool:
    """Whether this process still runs the p2p node the steps talk through (in scale-out mode
    it runs in its own process, always)."""
    from django.conf import settings

    from apps.p2p import client

    return settings.SEREUS.scale_out or client._local is not None


def _run() -> None:
    global _thread
    while True:
        _wake.wait(STEP_S)
        _wake.clear()
        if not _p2p_running():
            # The node stopped: so does its worker (the next start starts it again).
            with _lock:
                if _thread is threading.current_thread():
                    _thread = None
            return
        run_steps()


def start() -> None:
    global _thread
    with _lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_run, name="cadre-worker", daemon=True)
            _thread.start()
    _wake.set()


def wake() -> None:
    _wake.set()


def on_node_started(sender: Any, **kwargs: Any) -> None:
    start()


def _is_control(thread: bytes) -> bool:
    global _control_id, _control_missing_at
    if _control_id is None and time.monotonic() - _control_missing_at >= LOOK_AGAIN_S:
        from apps.cadre.control import control_thread_id_here

        _control_id = control_thread_id_here()
        if _control_id is None:
            _control_missing_at = time.monotonic()
    return _control_id is not None and thread == _control_id


def on_ops_written(sender: Any, thread: bytes, **kwargs: Any) -> None:
    try:
        if _is_control(thread):
            _wake.set()
    except Exception:  # a receiver never fails whoever wrote
        return


def on_thread_added(sender: Any, thread: bytes, **kwargs: Any) -> None:
    """A thread this node created, joined or adopted: the control thread lists it and the
    party's other devices are certified there (in the worker, never in the writer)."""
    from apps.cadre import control

    try:
        control.thread_added(thread)
    except Exception:
        logger.exception("recording a new thread in the control thread failed")
    _wake.set()


def forget() -> None:
    """Tests: a node's data dir changed under this process."""
    global _control_id, _control_missing_at
    _control_id = None
    _control_missing_at = float("-inf")
