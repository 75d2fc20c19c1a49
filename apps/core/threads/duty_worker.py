"""A node's duties in its threads, done without anyone opening a page: when ops arrive in a
thread an app cares about, a small worker thread runs the app's duty for that thread (sign
what this party agreed to, send again what another write overtook, ...). Requests coalesce, so
a burst of frames in one thread is one run, and the duty never runs inside whoever wrote the ops
(a request, the p2p receive path)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from apps.core.models import Thread
from apps.core.thread.state import ThreadState

logger = logging.getLogger(__name__)


def thread_state(thread: bytes, given: ThreadState | None = None) -> ThreadState:
    """The thread's resolved control state: the one ``ops_written`` carried (the writer's
    replica, current after the commit) or else the replica's, which may cost a query."""
    if given is not None:
        return given
    from apps.core.threads.registry import thread_database

    return thread_database(thread).replica().control.state


class DutyWorker:
    def __init__(
        self,
        name: str,
        wanted: Callable[[ThreadState], bool],
        duty: Callable[[Thread], None],
        *,
        settle_s: float = 0.0,
    ):
        self.name = name
        # Waited after waking, before the duty: what made the ops (a request, the sync that
        # pushes them on) finishes first instead of sharing the interpreter with the duty, and
        # a burst of ops is one run.
        self.settle_s = settle_s
        # Asked of the thread's state on every ``ops_written``: it must be a cheap look.
        self.wanted = wanted
        self.duty = duty
        self._pending: set[bytes] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._worker: threading.Thread | None = None

    def on_ops_written(self, sender: Any, thread: bytes, alias: str, **kwargs: Any) -> None:
        try:
            if not self.wanted(thread_state(thread, kwargs.get("state"))):
                return
        except Exception:  # a receiver must never fail whoever wrote
            return
        self.wake(thread)

    def wake(self, thread: bytes) -> None:
        """Run the duty for ``thread`` soon (a timer's, or after ops)."""
        with self._lock:
            self._pending.add(thread)
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._worker.start()
        self._wake.set()

    def _run(self) -> None:
        from django.db import close_old_connections

        while True:
            self._wake.wait(timeout=60)
            self._wake.clear()
            if self.settle_s:
                time.sleep(self.settle_s)
            with self._lock:
                batch = list(self._pending)
                self._pending.clear()
            for thread_id in batch:
                try:
                    thread = Thread.objects.filter(pk=thread_id.hex()).first()
                    if thread is not None and thread.state == Thread.State.ACTIVE:
                        self.duty(thread)
                except Exception:
                    logger.exception("%s: a duty failed in one thread", self.name)
                finally:
                    try:
                        close_old_connections()
                    except Exception:  # the worker must outlive one thread's bad connection
                        logger.warning("%s: could not close a database connection", self.name)
