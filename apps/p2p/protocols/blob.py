"""``/sereus/blob/1.0.0``: fetch the chunks of a thread's blobs (attachments) from a member node.

The asking node sends ``blobget`` with the thread and up to 16 chunk hashes; the answering node
checks, like sync, that the connected device is an active member device of that thread (anyone
else gets the refusal a stranger gets, and learns nothing), then answers each hash in order with
``chunk``: the ciphertext, or null when it does not have it. Several requests may follow on one
stream. The asking node keeps a chunk only if it matches its hash (``apps.core.blobs``), so a
member node can refuse to help but cannot make another node keep anything false.

A request is small (``blobget``: at most 16 hashes), so the answering node reads each one with
the first-frame size limit, and waits for the first one only briefly (``read_first``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import trio
from libp2p.abc import INetStream

from apps.core import blobs
from apps.p2p import frames, threads_io
from apps.p2p.protocols import BLOB_PROTOCOL
from apps.p2p.wire import PeerFault, StreamEnded

if TYPE_CHECKING:
    from apps.p2p.node import SereusNode

PROTOCOL = BLOB_PROTOCOL
NOT_HERE = "no such thread here"


async def respond(node: SereusNode, stream: INetStream, device: bytes) -> None:
    channel = node.channel(stream, device)
    allowed: set[bytes] = set()
    first = True
    try:
        while True:
            try:
                if first:
                    frame = await channel.read_first()
                else:
                    frame = await channel.read(max_frame=frames.FIRST_FRAME)
            except StreamEnded:
                return
            first = False
            if not isinstance(frame, frames.BlobGet):
                raise PeerFault(f"a blob session asks with blobget, not {type(frame).__name__}")
            if frame.thread not in allowed:
                access, _departure = await node.db(threads_io.access, frame.thread, device)
                if access != "full":
                    await channel.refuse("refused", NOT_HERE)
                    return
                allowed.add(frame.thread)
            for chunk in frame.chunks:
                data = await trio.to_thread.run_sync(blobs.chunk_read, frame.thread, chunk)
                if data is not None:
                    # Served bytes come out of the asking peer's byte budget too: a member
                    # cannot make this node read and send the same chunks without end.
                    delay = channel.limits.byte_delay(channel.peer, len(data))
                    if delay:
                        await trio.sleep(delay)
                await channel.send(frames.Chunk(chunk, data))
    finally:
        await channel.close()


async def fetch(
    node: SereusNode,
    device: bytes,
    thread: bytes,
    wanted: list[bytes],
    arrived: Callable[[], None],
) -> int:
    """Ask ``device`` for ``wanted`` chunks of ``thread``; keep those that come and match their
    hash, calling ``arrived`` after each. Returns how many were kept. A chunk that does not match
    its hash, or answers out of order, is the peer's fault (``PeerFault``)."""
    stream = await node.open_stream(device, PROTOCOL)
    channel = node.channel(stream, device)
    kept = 0
    try:
        for start in range(0, len(wanted), frames.MAX_CHUNKS_ASKED):
            batch = wanted[start : start + frames.MAX_CHUNKS_ASKED]
            await channel.send(frames.BlobGet(thread, batch))
            for expected in batch:
                frame = await channel.read()
                if not isinstance(frame, frames.Chunk) or frame.hash != expected:
                    raise PeerFault("blob answers out of order")
                if frame.data is None:
                    continue
                try:
                    await trio.to_thread.run_sync(blobs.chunk_put, thread, expected, frame.data)
                except blobs.BlobError as exc:
                    raise PeerFault(str(exc)) from exc
                kept += 1
                arrived()
    finally:
        await channel.close()
    return kept
