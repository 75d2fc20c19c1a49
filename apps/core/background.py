"""Celery without a broker server: a worker thread inside runnode (default mode).

The broker is kombu's filesystem transport in ``<data>/tasks/`` (settings), so ``.delay()`` from a
request only writes a small file and returns; this thread picks tasks up and runs them on a small
thread pool. Tasks survive a restart (the files stay until consumed). In scale-out mode a separate
``celery -A sereus_web worker`` consumes Redis instead and this is not used.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from django.conf import settings

from sereus_web.celery import app as celery_app

logger = logging.getLogger(__name__)

STOP_TIMEOUT_SECONDS = 15.0


def queue_dirs_prepare() -> None:
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        Path(options[key]).mkdir(mode=0o700, parents=True, exist_ok=True)


class EmbeddedTaskWorker:
    """A Celery worker running in a thread of this process."""

    def __init__(self, *, concurrency: int = 2) -> None:
        queue_dirs_prepare()
        # The worker's Django fixup runs every system check again (12 % of a node's start-up,
        # measured with py-spy); the command that embeds it (runnode) has just run them.
        os.environ.setdefault("CELERY_SKIP_CHECKS", "1")
        # Mingle, gossip, heartbeats and remote control need a broadcast-capable broker; the
        # filesystem transport has none, and a single embedded worker needs none of them.
        self._controller = celery_app.WorkController(
            pool_cls="threads",
            concurrency=concurrency,
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
            hostname="embedded@sereus",
        )
        self._thread = threading.Thread(
            target=self._controller.start, name="sereus-tasks", daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        logger.info("background tasks: embedded worker started (filesystem queue)")

    def stop(self) -> None:
        self._controller.stop(in_sighandler=False)
        self._thread.join(STOP_TIMEOUT_SECONDS)
        if self._thread.is_alive():
            logger.warning("background tasks: worker did not stop in %ss", STOP_TIMEOUT_SECONDS)
        else:
            logger.info("background tasks: embedded worker stopped")
