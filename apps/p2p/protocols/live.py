"""``/sereus/live/1.0.0``: ephemeral signals between member nodes (a member is typing).

Nothing of it is stored or replicated: a signal that is lost is simply not shown. The sender
opens a stream, sends one ``typing`` frame for a thread and closes; the receiver reads it under
the first-frame limits (4 KiB, 5 s). The receiver takes it only from an active member device of
that thread (anyone else gets the stranger's refusal), at most one per device and thread per
``MIN_INTERVAL`` (more are dropped quietly), and tells the open pages of the thread which member
is typing.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from libp2p.abc import INetStream

from apps.p2p import frames, threads_io
from apps.p2p.protocols import LIVE_PROTOCOL
from apps.p2p.wire import PeerFault

if TYPE_CHECKING:
    from apps.p2p.node import SereusNode

PROTOCOL = LIVE_PROTOCOL
MIN_INTERVAL = 1.0  # seconds between typing signals of one device in one thread
READ_TIMEOUT = 5.0


async def respond(node: SereusNode, stream: INetStream, device: bytes) -> None:
    channel = node.channel(stream, device)
    try:
        frame = await channel.read_first(idle=READ_TIMEOUT)
        if not isinstance(frame, frames.Typing):
            raise PeerFault(f"a live stream carries typing, not {type(frame).__name__}")
        key = (frame.thread, device)
        now = time.monotonic()
        if now - node.typing_seen.get(key, 0.0) < MIN_INTERVAL:
            return
        member = await node.db(threads_io.member_of, frame.thread, device)
        if member is None:
            await channel.refuse("refused", "no such thread here")
            return
        node.typing_seen[key] = now
        node.typing(frame.thread, member)
    finally:
        await channel.close()


async def send_typing(node: SereusNode, device: bytes, thread: bytes) -> None:
    stream = await node.open_stream(device, PROTOCOL)
    channel = node.channel(stream, device)
    try:
        await channel.send(frames.Typing(thread))
    finally:
        await channel.close()
