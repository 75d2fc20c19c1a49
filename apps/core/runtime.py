"""The node process: daphne, plus (in default mode) the p2p worker and the task worker.

Everything shares daphne's Twisted/asyncio event loop: the p2p worker is a task on it, the
embedded Celery worker a thread beside it. Twisted turns SIGINT/SIGTERM into a reactor stop;
"before shutdown" triggers then stop the p2p worker and the task worker, and daphne cancels open
connections, so the process exits 0 with everything closed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

# daphne.server installs the asyncio reactor: it must come before anything imports twisted's.
from daphne.server import Server  # isort: skip
from channels.layers import get_channel_layer
from channels.routing import get_default_application
from django.conf import settings
from twisted.internet import defer, reactor

from apps.core.background import EmbeddedTaskWorker
from apps.p2p import client
from apps.p2p.consumers import P2P_CHANNEL
from apps.p2p.worker import P2PWorker
from sereus_web.config import HttpBind

logger = logging.getLogger(__name__)


class _NodeServer(Server):
    """daphne's Server, telling us the address it actually listens on (port 0 picks one)."""

    def __init__(self, *args: Any, on_listening: Callable[[str, int], None], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._on_listening = on_listening

    def listen_success(self, port: Any) -> None:
        super().listen_success(port)
        if self.listening_addresses:
            host, port_number = self.listening_addresses[-1]
            self._on_listening(host, port_number)


class NodeRuntime:
    def __init__(
        self,
        *,
        bind: HttpBind,
        p2p_listen: str,
        on_listening: Callable[[str, int], None],
    ) -> None:
        self.bind = bind
        self.p2p_listen = p2p_listen
        self.on_listening = on_listening
        self.in_process = not settings.SEREUS.scale_out
        self._p2p_task: asyncio.Task[None] | None = None
        self._tasks_worker: EmbeddedTaskWorker | None = None

    def run(self) -> None:
        """Serve until SIGINT/SIGTERM; returns after a clean shutdown."""
        server = _NodeServer(
            application=get_default_application(),
            endpoints=[self.bind.endpoint()],
            signal_handlers=True,
            on_listening=self.on_listening,
            # Generous for a slow phone on a bad network, bounded so idle sockets are reclaimed.
            http_timeout=120,
            websocket_handshake_timeout=10,
            root_path="",
            server_name="sereus",
        )
        if self.in_process:
            self._tasks_worker = EmbeddedTaskWorker()
            self._tasks_worker.start()
            reactor.callWhenRunning(self._p2p_start)
            reactor.addSystemEventTrigger("before", "shutdown", self._background_stop)
        server.run()
        logger.info("Sereus node stopped")

    def _p2p_start(self) -> None:
        # Pages are told of new ops on this loop, where the in-memory channel layer lives.
        client.home_loop = asyncio.get_event_loop()
        worker = P2PWorker(
            application=get_default_application(),
            channels=[P2P_CHANNEL],
            channel_layer=get_channel_layer(),
            listen=self.p2p_listen,
            mode="in-process",
        )
        self._p2p_task = asyncio.ensure_future(worker.arun())
        self._p2p_task.add_done_callback(self._p2p_done)

    @staticmethod
    def _p2p_done(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            # The web UI stays up so the owner can see what is wrong (the dashboard reports
            # the worker as not answering).
            logger.error("the p2p worker failed", exc_info=task.exception())

    def _background_stop(self) -> defer.Deferred[None]:
        return defer.Deferred.fromFuture(asyncio.ensure_future(self._background_stop_async()))

    async def _background_stop_async(self) -> None:
        if self._p2p_task is not None and not self._p2p_task.done():
            self._p2p_task.cancel()
            await asyncio.gather(self._p2p_task, return_exceptions=True)
        if self._tasks_worker is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._tasks_worker.stop)
