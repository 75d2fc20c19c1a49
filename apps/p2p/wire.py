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
from libp2p.io.exceptions import IncompleteReadError
from libp2p.network.stream.exceptions import StreamEOF
from libp2p.utils import encode_varint_prefixed

from apps.p2p import frames
from apps.p2p.limits import PeerLimits

IDLE_TIMEOUT = 30.0  # the longest wait for the next frame (or for a frame to be taken)
FIRST_IDLE = 5.0  # the wait for the first frame of an inbound stream (sent right after opening)
CLOSE_TIMEOUT = 2.0
READ_CHUNK = 1 << 20
MAX_VARINT = 10  # bytes of a 64-bit varint


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
        self._buffer = bytearray()  # read from the stream, not yet taken as frames

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
            while (header := _length(self._buffer)) is None:
                if not await self._fill():
                    if self._buffer:
                        raise IncompleteReadError("the stream ended inside a frame length")
                    raise StreamEnded
            size, start = header
            if size > limit:
                raise PeerFault(f"a frame of {size} bytes (the limit is {limit})")
            while len(self._buffer) - start < size:
                if not await self._fill():
                    raise PeerFault("the stream ended inside a frame")
            data = bytes(self._buffer[start : start + size])
            del self._buffer[: start + size]
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

    async def _fill(self) -> bool:
        """Whatever has arrived (up to ``READ_CHUNK``), after what is buffered; False at the
        stream's end. One read per arrival, not one per length byte and one per body: each
        read of the muxer's stream sends the peer a window update, a write of its own."""
        try:
            chunk = await self.stream.read(READ_CHUNK)
        except StreamEOF:
            return False
        if not chunk:
            return False
        self._buffer += chunk
        return True

    def frame_buffered(self) -> bool:
        """Whether a whole frame has arrived already, after those read (it came in the same
        write as the last one): reading it waits for nothing from the peer."""
        try:
            header = _length(self._buffer)
        except PeerFault:
            return False  # the read says so
        return header is not None and len(self._buffer) - header[1] >= header[0]

    @property
    def leftover(self) -> bool:
        """Whether bytes past the last frame read are buffered here (a stream handed on to
        another channel would lose them)."""
        return bool(self._buffer)

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


def _length(buffer: bytearray) -> tuple[int, int] | None:
    """The frame length at the start of ``buffer`` and where the frame starts; None while the
    varint is incomplete."""
    size = 0
    for index in range(min(len(buffer), MAX_VARINT)):
        byte = buffer[index]
        size |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            return size, index + 1
    if len(buffer) >= MAX_VARINT:
        raise PeerFault("bad frame length: over-long varint")
    return None
