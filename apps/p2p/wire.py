"""Frames on a libp2p stream: a varint length, then the frame; every read bounded in size and
time, and paid for from the peer's byte bucket (``limits``).

The first frame of an inbound stream (hello, redeem, blobget, typing: all small) is read with a
small size limit and a short wait (``read_first``): before it, the peer has shown nothing, so a
stream that announces megabytes or sends nothing for seconds is ended early instead of holding
a session slot and a 4 MiB buffer for 30 s.
"""

from __future__ import annotations

import contextlib

import trio
from libp2p.abc import INetStream
from libp2p.exceptions import ParseError
from libp2p.network.stream.exceptions import StreamEOF
from libp2p.utils import decode_uvarint_from_stream, encode_varint_prefixed

from apps.p2p import frames
from apps.p2p.limits import PeerLimits

IDLE_TIMEOUT = 30.0  # the longest wait for the next frame (or for a frame to be taken)
FIRST_IDLE = 5.0  # the wait for the first frame of an inbound stream (sent right after opening)
CLOSE_TIMEOUT = 2.0
READ_CHUNK = 1 << 20


class PeerFault(Exception):
    """The peer broke the protocol (a malformed or oversized frame, an unexpected one)."""


class StreamEnded(Exception):
    """The peer closed the stream between frames (a normal end)."""


class PeerRefused(Exception):
    """The peer answered with an error frame."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class _Prefixed:
    """A reader that first returns bytes already read (the varint's first byte)."""

    def __init__(self, head: bytes, stream: INetStream) -> None:
        self.head = head
        self.stream = stream

    async def read(self, n: int | None = None) -> bytes:
        if self.head:
            head, self.head = self.head, b""
            return head
        return await self.stream.read(n)


class FrameChannel:
    def __init__(
        self,
        stream: INetStream,
        peer: str,
        limits: PeerLimits,
        *,
        idle: float = IDLE_TIMEOUT,
        max_frame: int = frames.MAX_FRAME,
    ) -> None:
        self.stream = stream
        self.peer = peer
        self.limits = limits
        self.idle = idle
        self.max_frame = max_frame
        self.bytes_in = 0
        self.bytes_out = 0

    async def read_first(
        self, *, idle: float = FIRST_IDLE, max_frame: int = frames.FIRST_FRAME
    ) -> frames.Frame:
        """The first frame of an inbound stream, under the first-read limits."""
        return await self.read(idle=idle, max_frame=max_frame)

    async def read(
        self, *, idle: float | None = None, max_frame: int | None = None
    ) -> frames.Frame:
        """The next frame: at most ``max_frame`` bytes (the channel's limit by default), which
        must start within ``idle`` seconds and arrive within as many."""
        limit = self.max_frame if max_frame is None else max_frame
        with trio.fail_after(self.idle if idle is None else idle):
            try:
                first = await self.stream.read(1)
            except StreamEOF:
                raise StreamEnded from None
            if not first:
                raise StreamEnded
            try:
                size = await decode_uvarint_from_stream(_Prefixed(first, self.stream))
            except ParseError as exc:
                raise PeerFault(f"bad frame length: {exc}") from exc
            if size > limit:
                raise PeerFault(f"a frame of {size} bytes (the limit is {limit})")
            data = bytearray()
            while len(data) < size:
                chunk = await self.stream.read(min(size - len(data), READ_CHUNK))
                if not chunk:
                    raise PeerFault("the stream ended inside a frame")
                data.extend(chunk)
        self.bytes_in += size
        delay = self.limits.byte_delay(self.peer, size)
        if delay:
            await trio.sleep(delay)
        try:
            frame = frames.decode(data)
        except frames.FrameError as exc:
            raise PeerFault(str(exc)) from exc
        if isinstance(frame, frames.Error):
            raise PeerRefused(frame.code, frame.detail)
        return frame

    async def send(self, *frame: frames.Frame) -> None:
        """Send the frames in one write: the bytes on the stream are the same as one write per
        frame, but each write costs a muxer frame, a Noise message and a system call."""
        data = b"".join(encode_varint_prefixed(frames.encode(f)) for f in frame)
        with trio.fail_after(self.idle):
            await self.stream.write(data)
        self.bytes_out += len(data)

    async def refuse(self, code: str, detail: str) -> None:
        """Send an error frame, best effort: the peer may be gone or may not be reading."""
        data = encode_varint_prefixed(frames.encode(frames.Error(code, detail)))
        with contextlib.suppress(Exception), trio.move_on_after(CLOSE_TIMEOUT):
            await self.stream.write(data)  # a courtesy: the peer may be gone

    async def close(self) -> None:
        with trio.move_on_after(CLOSE_TIMEOUT) as scope:
            try:
                await self.stream.close()
            except Exception:  # closing a broken stream: reset it instead
                scope.cancel()
        if scope.cancelled_caught:
            await self.reset()

    async def reset(self) -> None:
        with trio.move_on_after(CLOSE_TIMEOUT):
            with contextlib.suppress(Exception):  # already gone
                await self.stream.reset()
