"""The node's live sockets: owner only, p2p worker status polled, htmx out-of-band fragments.

``OwnerStatusSocket`` is the common part (who may connect, asking the p2p worker for its status);
``NodeStatusConsumer`` is the dashboard's socket. Thread pages have their own socket
(``apps.core.threads.consumers``) built on the same base.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.exceptions import ChannelFull
from channels.generic.websocket import AsyncWebsocketConsumer
from django.template.loader import render_to_string

from apps.core.selectors import is_node_owner
from apps.core.threads.selectors import thread_sync_states
from apps.p2p.consumers import P2P_CHANNEL

logger = logging.getLogger(__name__)

REFRESH_SECONDS = 10.0
REPLY_TIMEOUT_SECONDS = 3.0
CLOSE_FORBIDDEN = 4403
SILENT_WORKER = {"running": False, "detail": "The p2p worker does not answer."}


class OwnerStatusSocket(AsyncWebsocketConsumer):
    """Owner only. Asks the p2p worker for its status at connect and every few seconds, and
    hands each answer to ``status_received``."""

    async def connect(self) -> None:
        code = await self.refusal()
        if code is not None:
            await self.close(code=code)
            return
        await self.accept()
        await self.opened()
        self._reply = asyncio.Event()
        self._poller = asyncio.ensure_future(self._poll())

    async def opened(self) -> None:
        """Called once the socket is accepted, before the first status request."""

    async def refusal(self) -> int | None:
        """The close code if this socket must not open, else None (subclasses add checks)."""
        if not await database_sync_to_async(is_node_owner)(self.scope.get("user")):
            return CLOSE_FORBIDDEN
        return None

    async def disconnect(self, code: int) -> None:
        poller = getattr(self, "_poller", None)
        if poller is not None:
            poller.cancel()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        # The page sends nothing we act on; input is ignored rather than trusted.
        return

    async def _poll(self) -> None:
        while True:
            self._reply.clear()
            try:
                await self.channel_layer.send(
                    P2P_CHANNEL, {"type": "p2p.status", "reply_channel": self.channel_name}
                )
                await asyncio.wait_for(self._reply.wait(), REPLY_TIMEOUT_SECONDS)
            except (TimeoutError, ChannelFull):
                await self.status_received(SILENT_WORKER)
            await asyncio.sleep(REFRESH_SECONDS)

    async def p2p_status_reply(self, message: dict[str, Any]) -> None:
        self._reply.set()
        await self.status_received(message)

    async def status_received(self, status: dict[str, Any]) -> None:
        raise NotImplementedError


class NodeStatusConsumer(OwnerStatusSocket):
    """The dashboard: the p2p worker's addresses, peers and per-thread sync state."""

    async def status_received(self, status: dict[str, Any]) -> None:
        await self.send(text_data=await database_sync_to_async(node_status_html)(status))


def node_status_html(status: dict[str, Any]) -> str:
    """The dashboard's p2p fragment for a ``p2p.status`` answer, as an out-of-band swap."""
    context = {"status": status, "sync": thread_sync_states(status), "oob": True}
    return render_to_string("core/_p2p_status.html", context)
