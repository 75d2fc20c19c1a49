"""The feed index follows the threads: ops written to a timeline refresh its entries and a
timeline joined is backfilled, by a small worker thread (``feed_index.index_batch``). Requests
coalesce per thread, so a burst of frames is one run; the reading never happens inside whoever
wrote the ops (a request, the p2p receive path)."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from apps.core.thread.state import ThreadState

logger = logging.getLogger(__name__)

_pending: dict[bytes, bool] = {}  # thread -> a full refill wanted
_received = [False]  # whether ops from other nodes are among those pending
# This node's own post is in its own feed a moment later: first its push to the followers and
# the answer to whoever posted (the index update would compete with them for the interpreter).
# Ops from other nodes are indexed at once: that is what a follower waits for.
LOCAL_DELAY_S = 0.02
_lock = threading.Lock()
_wake = threading.Event()
_worker: threading.Thread | None = None
_timelines: dict[bytes, bool] = {}  # thread -> it is a timeline (its registry row says)


def connect() -> None:
    """Connect the feed's receivers (from ``TimelineConfig.ready``; connecting twice is once)."""
    from apps.core.threads.signals import ops_written, thread_added

    ops_written.connect(on_ops_written, dispatch_uid="timeline-feed-ops")
    thread_added.connect(on_thread_added, dispatch_uid="timeline-feed-added")


def _is_timeline(thread: bytes, state: ThreadState | None = None) -> bool:
    """Whether a thread is a timeline, from its replica's state in memory (no query). A receiver
    of ``ops_written`` runs inside whoever wrote: it must never raise, whatever the thread."""
    known = _timelines.get(thread)
    if known is None:
        from apps.core.threads.duty_worker import thread_state
        from apps.timeline.policy import APP

        try:
            app = thread_state(thread, state).app
        except Exception:  # a thread not open here, or damaged: not ours to index
            return False
        if not app:
            return False  # not created yet (joining): ``thread_added`` comes when it is
        known = _timelines[thread] = app == APP
    return known


def on_ops_written(
    sender: Any, thread: bytes, alias: str, received: bool = True, **kwargs: Any
) -> None:
    if _is_timeline(thread, kwargs.get("state")):
        from apps.timeline import feed_index

        feed_index.mark_dirty(thread)
        _queue(thread, full=False, received=received)


def on_thread_added(sender: Any, thread: bytes, **kwargs: Any) -> None:
    _timelines.pop(thread, None)
    if _is_timeline(thread):
        _queue(thread, full=True)  # a new follow: backfill


def _queue(thread: bytes, *, full: bool, received: bool = True) -> None:
    global _worker
    with _lock:
        _pending[thread] = _pending.get(thread, False) or full
        _received[0] = _received[0] or received or full
        if _worker is None or not _worker.is_alive():
            _worker = threading.Thread(target=_run, name="timeline-feed", daemon=True)
            _worker.start()
    _wake.set()


def _run() -> None:
    from django.db import close_old_connections

    from apps.timeline import feed_index

    while True:
        _wake.wait(timeout=60)
        _wake.clear()
        with _lock:
            local_only = bool(_pending) and not _received[0]
        if local_only:
            time.sleep(LOCAL_DELAY_S)
        with _lock:
            batch = dict(_pending)
            _pending.clear()
            _received[0] = False
        if not batch:
            continue
        try:
            feed_index.index_batch(batch)
        except Exception:
            logger.exception("timeline feed: the index could not be brought up to date")
        finally:
            close_old_connections()
