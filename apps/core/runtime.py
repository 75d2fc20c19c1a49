"""The node process: daphne, plus (in default mode) the p2p worker and the task worker.

Everything shares daphne's Twisted/asyncio event loop: the p2p worker is a task on it, the
embedded Celery worker a thread beside it. Twisted turns SIGINT/SIGTERM into a reactor stop;
"before shutdown" triggers then stop the p2p worker and the task worker, and daphne cancels open
connections, so the process exits 0 with everything closed. A port it cannot listen on (web or
p2p), or another p2p host on this data dir, stops everything the same way and ``run`` raises
``ListenError`` or ``DataDirBusy``: the command exits non-zero.
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
from daphne.http_protocol import HTTPFactory, WebRequest
from django.conf import settings
from twisted.internet import defer, reactor

from apps.core.background import EmbeddedTaskWorker
from apps.core.datadir_lock import DataDirBusy
from apps.core.listen_errors import ListenError, http_listen_error
from apps.p2p import client
from apps.p2p.consumers import P2P_CHANNEL
from apps.p2p.worker import P2PWorker
from sereus_web.config import HttpBind

logger = logging.getLogger(__name__)


class _NodeRequest(WebRequest):
    """daphne's request, without Twisted's parse of a POST's form or multipart body into
    ``args``: daphne never reads them (it hands Django the raw body, which Django parses once).
    Twisted's parse ran on the event loop for every POST, making an ``email`` message just to
    read its Content-Type (~0.3 ms a message POST), and parsed an upload's whole multipart body
    a second time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, parsePOSTFormSubmission=False, **kwargs)


class _NodeHTTPFactory(HTTPFactory):
    def buildProtocol(self, addr: Any) -> Any:
        protocol = super().buildProtocol(addr)
        protocol.requestFactory = _NodeRequest
        return protocol


class _NodeServer(Server):
    """daphne's Server, telling us the address it actually listens on (port 0 picks one), and
    keeping the reason it could not listen (daphne only logs it and stops)."""

    def __init__(
        self, *args: Any, bind: HttpBind, on_listening: Callable[[str, int], None], **kwargs: Any
    ):
        super().__init__(*args, **kwargs)
        self._bind = bind
        self._on_listening = on_listening
        self.listen_failure: ListenError | None = None

    @property
    def http_factory(self) -> HTTPFactory:
        return self._http_factory

    @http_factory.setter
    def http_factory(self, factory: HTTPFactory) -> None:
        # ``Server.run`` makes daphne's factory; ours builds the same protocol with our request.
        self._http_factory = _NodeHTTPFactory(self) if type(factory) is HTTPFactory else factory

    def listen_success(self, port: Any) -> None:
        super().listen_success(port)
        if self.listening_addresses:
            host, port_number = self.listening_addresses[-1]
            self._on_listening(host, port_number)

    def listen_error(self, failure: Any) -> None:
        error = getattr(failure.value, "socketError", None)
        self.listen_failure = http_listen_error(
            self._bind, error if isinstance(error, OSError) else None
        )
        self.stop()


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
        self.failure: ListenError | DataDirBusy | None = None

    def run(self) -> None:
        """Serve until SIGINT/SIGTERM; returns after a clean shutdown."""
        server = _NodeServer(
            application=get_default_application(),
            endpoints=[self.bind.endpoint()],
            signal_handlers=True,
            bind=self.bind,
            on_listening=self.on_listening,
            # Generous for a slow phone on a bad network, bounded so idle sockets are reclaimed.
            http_timeout=120,
            websocket_handshake_timeout=10,
            root_path="",
            server_name="sereus",
        )
        if self.in_process:
            self._tasks_worker = EmbeddedTaskWorker()
            # Started once the reactor runs, which it does only when daphne could listen.
            reactor.callWhenRunning(self._tasks_worker.start)
            reactor.callWhenRunning(self._p2p_start)
            reactor.addSystemEventTrigger("before", "shutdown", self._background_stop)
        server.run()
        if server.listen_failure is not None:
            raise server.listen_failure  # nothing else was started
        logger.info("Sereus node stopped")
        if self.failure is not None:
            raise self.failure

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

    def _p2p_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        error = task.exception()
        if isinstance(error, ListenError | DataDirBusy):
            # Its port is taken, or another process runs this node's p2p host: stop the
            # whole node, and say why.
            self.failure = error
            reactor.stop()
            return
        # Otherwise the web UI stays up so the owner can see what is wrong (the dashboard
        # reports the worker as not answering).
        logger.error("the p2p worker failed", exc_info=error)

    def _background_stop(self) -> defer.Deferred[None]:
        return defer.Deferred.fromFuture(asyncio.ensure_future(self._background_stop_async()))

    async def _background_stop_async(self) -> None:
        if self._p2p_task is not None and not self._p2p_task.done():
            self._p2p_task.cancel()
            await asyncio.gather(self._p2p_task, return_exceptions=True)
        if self._tasks_worker is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._tasks_worker.stop)
