"""A trustee's node does its part without anyone opening a page: when ops arrive in a thread
with voting enabled, a small worker thread runs ``services.duties`` for that thread (its key
share for a new secret poll naming it; its partial decryption once the poll closes). Requests
coalesce: a burst of frames in one thread is one run. The work is slow cryptography and must not
run inside whoever wrote the ops (a request, the p2p receive path)."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from apps.core.thread.state import ThreadState

logger = logging.getLogger(__name__)

_pending: set[bytes] = set()
_lock = threading.Lock()
_wake = threading.Event()
_worker: threading.Thread | None = None


def on_ops_written(sender: Any, thread: bytes, alias: str, **kwargs: Any) -> None:
    if not _voting_enabled(thread, kwargs.get("state")):
        return
    global _worker
    with _lock:
        _pending.add(thread)
        if _worker is None or not _worker.is_alive():
            _worker = threading.Thread(target=_run, name="voting-duties", daemon=True)
            _worker.start()
    _wake.set()


def _voting_enabled(thread: bytes, state: ThreadState | None = None) -> bool:
    from apps.core.threads.duty_worker import thread_state
    from apps.voting.policy import APP

    try:
        return APP in thread_state(thread, state).apps
    except Exception:
        return False


def _run() -> None:
    from django.db import close_old_connections

    from apps.core.models import Thread
    from apps.voting import services

    while True:
        _wake.wait(timeout=60)
        _wake.clear()
        with _lock:
            batch = list(_pending)
            _pending.clear()
        for thread_id in batch:
            try:
                thread = Thread.objects.filter(pk=thread_id.hex()).first()
                if thread is not None:
                    services.duties(thread=thread)
            except Exception:
                logger.exception("voting: a trustee's duties failed in one thread")
            finally:
                close_old_connections()
