"""The ``sereus-p2p`` channel: how web processes talk to the p2p worker over the channel layer.

Messages (``type`` names the handler):
- ``p2p.status`` with ``reply_channel``: the worker answers ``p2p.status.reply`` with its status.
- ``p2p.push`` with ``thread`` (hex): another process wrote ops to that thread; push them.
- ``p2p.fetch`` with ``thread`` and ``chunks`` (hex): fetch those blob chunks from members.
- ``p2p.typing`` with ``thread`` (hex): this member is typing there; tell connected members.
- ``p2p.redeem`` with ``reply_channel``, the invite ``link`` and the redemption request fields:
  redeem it over the network (the log lands in the thread database, which every process of
  the node shares); the answer is ``p2p.redeem.reply`` with ``error`` and ``detail`` or nothing.
- ``p2p.app`` with ``reply_channel``, ``peer``, ``addrs``, ``protocol``, ``payload`` (bytes) and
  ``timeout``: an app protocol's request (``app_protocols``); the answer is ``p2p.app.reply``
  with ``payload``, or ``error`` and ``detail``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels.consumer import AsyncConsumer

from apps.core.thread.invite import InviteError, invite_parse
from apps.core.thread.writer import RedemptionRequest
from apps.core.threads.services import ThreadServiceError
from apps.p2p.client import MAX_FETCH_MESSAGE, P2P_CHANNEL
from apps.p2p.service import P2PService

logger = logging.getLogger(__name__)

__all__ = ["P2P_CHANNEL", "SCOPE_SERVICE_KEY", "P2PConsumer"]

SCOPE_SERVICE_KEY = "sereus.p2p_service"
REQUEST_FIELDS = ("invite", "member", "device", "device_cert", "proof", "device_proof")


class P2PConsumer(AsyncConsumer):
    """One long-lived instance per worker; the worker puts its service in the scope."""

    @property
    def service(self) -> P2PService:
        return self.scope[SCOPE_SERVICE_KEY]

    async def p2p_status(self, message: dict[str, Any]) -> None:
        reply_channel = message.get("reply_channel")
        if not isinstance(reply_channel, str):
            logger.warning("p2p.status without a reply_channel: ignored")
            return
        status = await self.service.status()
        await self.channel_layer.send(reply_channel, {"type": "p2p.status.reply", **status})

    async def p2p_push(self, message: dict[str, Any]) -> None:
        thread = _thread_of(message, "p2p.push")
        if thread is not None:
            self.service.push(thread)

    async def p2p_typing(self, message: dict[str, Any]) -> None:
        thread = _thread_of(message, "p2p.typing")
        if thread is not None:
            self.service.typing(thread)

    async def p2p_fetch(self, message: dict[str, Any]) -> None:
        try:
            thread = bytes.fromhex(message.get("thread", ""))
            chunks = [bytes.fromhex(c) for c in message.get("chunks", [])[:MAX_FETCH_MESSAGE]]
        except (TypeError, ValueError, AttributeError):
            thread, chunks = b"", []
        if len(thread) != 32 or not chunks or any(len(c) != 32 for c in chunks):
            logger.warning("p2p.fetch without a valid thread and chunks: ignored")
            return
        self.service.blobs_want(thread, chunks)

    async def p2p_redeem(self, message: dict[str, Any]) -> None:
        reply_channel = message.get("reply_channel")
        if not isinstance(reply_channel, str):
            logger.warning("p2p.redeem without a reply_channel: ignored")
            return
        # Messages are handled one at a time: a redemption (seconds) must not hold up the rest.
        task = asyncio.ensure_future(self._redeem(message, reply_channel))
        self._tasks = getattr(self, "_tasks", set())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def p2p_app(self, message: dict[str, Any]) -> None:
        reply_channel = message.get("reply_channel")
        if not isinstance(reply_channel, str):
            logger.warning("p2p.app without a reply_channel: ignored")
            return
        task = asyncio.ensure_future(self._app(message, reply_channel))
        self._tasks = getattr(self, "_tasks", set())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _app(self, message: dict[str, Any], reply_channel: str) -> None:
        from apps.p2p.app_protocols import AppRequestError

        reply: dict[str, Any] = {"type": "p2p.app.reply"}
        peer, addrs = message.get("peer"), message.get("addrs")
        protocol, payload = message.get("protocol"), message.get("payload")
        timeout = message.get("timeout")
        try:
            if not (
                isinstance(peer, str)
                and isinstance(addrs, list)
                and all(isinstance(a, str) for a in addrs)
                and isinstance(protocol, str)
                and isinstance(payload, bytes)
                and isinstance(timeout, int | float)
            ):
                raise AppRequestError("invalid", "the app request is incomplete")
            reply["payload"] = await self.service.app_request(
                peer, addrs, protocol, payload, min(float(timeout), 60.0)
            )
        except AppRequestError as exc:
            reply.update(error=exc.code, detail=exc.words)
        except Exception:  # the p2p host stopped under it: the asking process still hears
            logger.warning("p2p.app failed", exc_info=True)
            reply.update(error="unavailable", detail="this node's p2p host stopped")
        await self.channel_layer.send(reply_channel, reply)

    async def _redeem(self, message: dict[str, Any], reply_channel: str) -> None:
        reply: dict[str, Any] = {"type": "p2p.redeem.reply"}
        try:
            invite = invite_parse(message.get("link", ""))
            fields = [message.get(name) for name in REQUEST_FIELDS]
            if not all(isinstance(value, bytes) for value in fields):
                raise InviteError("malformed", "the redemption request is incomplete")
            await self.service.redeem(invite, RedemptionRequest(*fields))
        except (InviteError, ThreadServiceError) as exc:
            reply.update(error=exc.code, detail=str(exc))
        await self.channel_layer.send(reply_channel, reply)


def _thread_of(message: dict[str, Any], kind: str) -> bytes | None:
    try:
        thread = bytes.fromhex(message.get("thread", ""))
    except (TypeError, ValueError):
        thread = b""
    if len(thread) != 32:
        logger.warning("%s without a valid thread id: ignored", kind)
        return None
    return thread
