"""Inbound streams: which a peer may open (its budget, a session slot), and serving them.

Every protocol's streams come in through ``_serve``: the peer must be a device with a budget left
(members their own, strangers one shared budget) and get an inbound slot (``slots``: strangers
have a small pool of their own); a stream that breaks the protocol is answered "malformed" and
costs the peer a strike. A mixin of ``SereusNode``, whose state it uses.
"""

from __future__ import annotations

import contextlib
import logging

import trio
from libp2p.abc import INetStream
from libp2p.peer.id import ID

from apps.p2p.bridge import unwrap
from apps.p2p.host import device_of, peer_id_of
from apps.p2p.protocols import blob as blob_protocol
from apps.p2p.protocols import invite as invite_protocol
from apps.p2p.protocols import live as live_protocol
from apps.p2p.protocols import sync
from apps.p2p.slots import Pool
from apps.p2p.wire import FrameChannel, PeerFault

logger = logging.getLogger(__name__)


class InboundStreams:
    """Admitting and serving the streams that other peers open to this node."""

    def session_allowed(self, device: bytes) -> bool:
        """Another session on a stream already open: it pays like a new stream."""
        return self._allow(peer_id_of(device), device)

    def _allow(self, peer_id: ID, device: bytes | None) -> bool:
        """A new stream or session: from the peer's own budget if it is a member device, else
        from the strangers' shared one (new identities cost nothing to make)."""
        peer = str(peer_id)
        if device is not None and device in self.peers:
            return self.limits.allow_stream(peer)
        return self.limits.allow_stranger_stream(peer)

    async def _admit_stream(self, stream: INetStream) -> tuple[bytes, str, Pool] | None:
        """A slot for a new inbound stream (``slots``: strangers have a small pool of their
        own), or the stream is reset."""
        peer_id = stream.muxed_conn.peer_id
        device = device_of(peer_id)
        pool: Pool = "member" if device is not None and device in self.peers else "stranger"
        if (
            device is None
            or self.limits.banned(str(peer_id))
            or not self._allow(peer_id, device)
            or not self.slots.take(str(peer_id), pool)
        ):
            self.stats["refused_streams"] += 1
            with trio.move_on_after(1):
                await stream.reset()
            if device is not None and self.limits.banned(str(peer_id)):
                await self._ban(device)
            return None
        return device, str(peer_id), pool

    async def _serve(self, stream: INetStream, handler) -> None:
        admitted = await self._admit_stream(stream)
        if admitted is None:
            return
        device, peer, pool = admitted
        try:
            await handler(self, stream, device)
        except Exception as error:  # whatever happened, it ends this stream only
            exc = unwrap(error)
            if isinstance(exc, PeerFault):
                logger.info("peer %s broke the protocol: %s", peer, exc)
                await FrameChannel(stream, peer, self.limits).refuse("malformed", str(exc))
                if self.limits.strike(peer, str(exc)):
                    await self._ban(device)
            else:
                logger.debug("session with %s ended: %r", peer, exc)
        finally:
            self.slots.give(peer, pool)
            with trio.move_on_after(1):
                with contextlib.suppress(Exception):  # already closed
                    await stream.reset()

    async def _on_sync_stream(self, stream: INetStream) -> None:
        await self._serve(stream, sync.respond)

    async def _on_invite_stream(self, stream: INetStream) -> None:
        await self._serve(stream, invite_protocol.respond)

    async def _on_blob_stream(self, stream: INetStream) -> None:
        await self._serve(stream, blob_protocol.respond)

    async def _on_live_stream(self, stream: INetStream) -> None:
        await self._serve(stream, live_protocol.respond)
