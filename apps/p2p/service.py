"""The p2p service: what the ``sereus-p2p`` worker runs for as long as it lives.

It starts the libp2p host (``SereusNode``) in its trio thread, makes it this process's network
(``client.local_set``: pushes, invite redemptions and status go straight to it), and stops it.
runnode (in-process) and ``runworker sereus-p2p`` (scale-out) run the exact same code.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from django.conf import settings

from apps.core.datadir_lock import P2P, DataDirLock
from apps.core.identity import device_key_ensure
from apps.core.listen_errors import ListenError
from apps.core.node_addresses import p2p_note
from apps.core.thread.invite import Invite
from apps.core.thread.writer import RedemptionRequest
from apps.core.threads.services import ThreadServiceError
from apps.p2p import client
from apps.p2p.bridge import BridgeStopped, TrioThread
from apps.p2p.state import state_load

logger = logging.getLogger(__name__)

WorkerMode = Literal["in-process", "worker process"]
STATUS_TIMEOUT = 3.0


@dataclass
class P2PService:
    data_dir: Path
    listen: str
    mode: WorkerMode
    started_at: datetime | None = None
    peer_id: str | None = None
    error: str | None = None
    _bridge: TrioThread | None = field(default=None, repr=False)
    _node: Any = field(default=None, repr=False)
    _lock: DataDirLock | None = field(default=None, repr=False)

    async def start(self) -> None:
        from apps.p2p.host import quiet_libp2p_logs  # libp2p costs ~1 s to import: only here
        from apps.p2p.node import NodeSettings, SereusNode

        quiet_libp2p_logs()
        device = device_key_ensure(self.data_dir)
        self.peer_id = device.peer_id
        config = settings.SEREUS
        node = SereusNode(
            device.signing_key,
            NodeSettings(
                data_dir=self.data_dir,
                listen=self.listen,
                announce=config.p2p_announce,
                relays=config.p2p_relays,
                relay=config.relay,
                mdns=config.mdns,
                dht=config.dht,
                sync_interval=config.sync_interval,
            ),
        )
        node.blob_progress = client.pages_tell
        node.pages_tell = client.pages_tell
        node.typing = client.pages_typing
        bridge = TrioThread()
        loop = asyncio.get_running_loop()
        # One p2p host per identity: a second one (another runnode, a stray runworker) on this
        # data dir would answer for the same peer id.
        self._lock = DataDirLock.acquire(self.data_dir, P2P)
        try:
            await loop.run_in_executor(None, lambda: bridge.start(node.run))
        except ListenError:
            # Told where to listen and cannot: the process stops and says why.
            self._lock.release()
            raise
        except Exception as exc:
            # The web UI stays up and says why; the worker keeps answering.
            self.error = f"the p2p host did not start: {exc}"
            logger.error("%s", self.error)
            return
        self._bridge, self._node = bridge, node
        # Where it really listens (port 0 picks one), for the pages of every process.
        self._lock.note(**p2p_note(self.listen, state_load(self.data_dir).port))
        client.local_set(bridge, node)
        self.started_at = datetime.now(UTC)
        await loop.run_in_executor(None, _started_tell)
        logger.info(
            "p2p worker started (%s): peer id %s, addresses %s",
            self.mode,
            self.peer_id,
            ", ".join(node.addrs) or "none",
        )

    async def stop(self) -> None:
        bridge = self._bridge
        self._bridge = self._node = None
        client.local_clear()
        if bridge is not None:
            await asyncio.get_running_loop().run_in_executor(None, bridge.stop)
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        if self.started_at is not None:
            self.started_at = None
            logger.info("p2p worker stopped")

    @property
    def running(self) -> bool:
        return self.started_at is not None and self._bridge is not None and self._bridge.running

    def push(self, thread: bytes) -> None:
        if self._bridge is not None:
            self._bridge.call_soon(self._node.notify, thread)

    def typing(self, thread: bytes) -> None:
        if self._bridge is not None:
            self._bridge.call_soon(self._node.typing_send, thread)

    def blobs_want(self, thread: bytes, chunks: list[bytes]) -> None:
        if self._bridge is not None:
            self._bridge.call_soon(self._node.blob_want, thread, chunks)

    async def redeem(self, invite: Invite, request: RedemptionRequest) -> None:
        if not self.running:
            raise ThreadServiceError("unreachable", self.error or "the p2p host is not running")
        assert self._bridge is not None
        await asyncio.wrap_future(self._bridge.submit(self._node.redeem, invite, request))

    async def app_request(
        self, peer: str, addrs: list[str], protocol: str, payload: bytes, timeout: float
    ) -> bytes:
        """An app protocol's request (``app_protocols.request``) from another process."""
        from apps.p2p.app_protocols import AppRequestError, request

        if not self.running:
            raise AppRequestError("unreachable", self.error or "the p2p host is not running")
        assert self._bridge is not None
        future = self._bridge.submit(request, self._node, peer, addrs, protocol, payload, timeout)
        return await asyncio.wrap_future(future)

    async def status(self) -> dict[str, Any]:
        """A JSON-safe summary (it crosses the channel layer, possibly through Redis)."""
        summary: dict[str, Any] = {
            "running": self.running,
            "mode": self.mode,
            "listen": self.listen,
            "peer_id": self.peer_id,
            "started_at": self.started_at.isoformat() if self.started_at else None,
        }
        if self.error:
            summary["detail"] = self.error
        if self.running:
            assert self._bridge is not None
            try:
                node_status = await asyncio.wait_for(
                    asyncio.wrap_future(self._bridge.submit(self._node.status)), STATUS_TIMEOUT
                )
            except (TimeoutError, BridgeStopped) as exc:
                summary["detail"] = f"the p2p host does not answer ({exc!r})"
            else:
                summary.update(node_status)
        return summary


def _started_tell() -> None:
    """Tell the apps the node runs (``signals.node_started``); one failing app never stops it."""
    from apps.core.threads.signals import node_started

    for receiver, outcome in node_started.send_robust(sender=P2PService):
        if isinstance(outcome, Exception):
            logger.error("%s failed at the node's start: %r", receiver, outcome)
