"""Attachments between real nodes (``Peer``): upload files with a message as multipart/form-data,
download them, read the chunks a node keeps, and ask a node for chunks over
``/sereus/blob/1.0.0`` by hand (with a ``RoguePeer``'s host)."""

from __future__ import annotations

import hashlib
import io
import json
import secrets
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
from libp2p.peer.id import ID
from PIL import Image

from apps.p2p import frames
from apps.p2p.limits import PeerLimits
from apps.p2p.protocols import BLOB_PROTOCOL
from apps.p2p.wire import FrameChannel, PeerRefused, StreamEnded
from tests.support.api import ApiError
from tests.support.p2p import Peer
from tests.support.rogue import TIMEOUT, RoguePeer

MiB = 1024 * 1024


# -- files ------------------------------------------------------------------------------------


def png(width: int = 64, height: int = 48) -> bytes:
    """A small PNG with a gradient (not one colour, so it is a real picture to encode)."""
    image = Image.new("RGB", (width, height))
    image.putdata(
        [(x * 4 % 256, y * 5 % 256, (x + y) % 256) for y in range(height) for x in range(width)]
    )
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def random_bytes(size: int) -> bytes:
    return secrets.token_bytes(size)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- HTTP ---------------------------------------------------------------------------------------


def multipart(
    fields: list[tuple[str, str]], files: list[tuple[str, str, bytes]]
) -> tuple[bytes, str]:
    """A multipart/form-data body and its content type; ``files`` are (field, name, bytes)."""
    boundary = f"sereus-test-{secrets.token_hex(16)}"
    parts: list[bytes] = []
    for name, value in fields:
        parts += [
            f"--{boundary}\r\n".encode(),
            f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode(),
            value.encode(),
            b"\r\n",
        ]
    for name, filename, data in files:
        parts += [
            f"--{boundary}\r\n".encode(),
            f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'.encode(),
            b"Content-Type: application/octet-stream\r\n\r\n",
            data,
            b"\r\n",
        ]
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _http(peer: Peer, method: str, path: str, body: bytes | None, headers: dict) -> Response:
    assert peer.token is not None
    request = urllib.request.Request(
        peer.process.url.rstrip("/") + path,
        data=body,
        method=method,
        headers={"Authorization": f"Token {peer.token}", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return Response(
                answer.status, {k.lower(): v for k, v in answer.headers.items()}, answer.read()
            )
    except urllib.error.HTTPError as exc:
        return Response(exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read())


def upload(peer: Peer, thread: str, text: str, files: list[tuple[str, bytes]]) -> dict[str, Any]:
    """Send a message with attachments (``files``: (name, bytes)); the message as the API
    returns it. Anything but 201 raises ``ApiError`` with the JSON error."""
    body, content_type = multipart(
        [("text", text)], [("files", name, data) for name, data in files]
    )
    response = _http(
        peer,
        "POST",
        f"/api/v1/threads/{thread}/messages/",
        body,
        {"Content-Type": content_type, "Accept": "application/json"},
    )
    if response.status != 201:
        try:
            payload = response.json()
        except ValueError:
            payload = response.body.decode(errors="replace")
        raise ApiError(response.status, payload)
    return response.json()


def download(peer: Peer, thread: str, attachment: str) -> Response:
    return _http(peer, "GET", f"/api/v1/threads/{thread}/attachments/{attachment}/", None, {})


# -- chunks -------------------------------------------------------------------------------------


def chunk_files(peer: Peer, thread: str) -> dict[bytes, bytes]:
    """The chunks a node keeps for a thread (``<data>/blobs/<thread>/<hash>``): hash -> data."""
    folder: Path = peer.data_dir / "blobs" / thread
    if not folder.is_dir():
        return {}
    return {
        bytes.fromhex(path.name): path.read_bytes()
        for path in folder.iterdir()
        if len(path.name) == 64 and not path.name.startswith(".")
    }


@dataclass
class BlobAnswer:
    """What a node answered one ``blobget``: chunk frames, or the error that ended the stream."""

    chunks: list[frames.Chunk] = field(default_factory=list)
    refused: str | None = None  # the error code
    ended: bool = False  # the stream ended without an error frame


async def _trailing(channel: FrameChannel, answer: BlobAnswer) -> None:
    """After an error frame nothing more may come: anything that does is kept in ``answer``."""
    try:
        while True:
            answer.chunks.append(await channel.read(idle=2.0))  # type: ignore[arg-type]
    except Exception:  # the end of the stream, however it ends, is the point
        return


async def blob_ask(
    rogue: RoguePeer, peer_id: str, asks: list[tuple[bytes, list[bytes]]]
) -> list[BlobAnswer]:
    """Run in the rogue's trio thread (``rogue.call(blob_ask, rogue, ...)``): one blob stream to
    ``peer_id``, a ``blobget`` per (thread, chunk hashes) in turn, each answer read in full.
    Stops at the first answer that is not chunks."""
    with trio.fail_after(TIMEOUT):
        stream = await rogue.host.new_stream(ID.from_base58(peer_id), [BLOB_PROTOCOL])
    channel = FrameChannel(stream, peer_id, PeerLimits())
    answers: list[BlobAnswer] = []
    try:
        for thread, chunks in asks:
            answer = BlobAnswer()
            answers.append(answer)
            await channel.send(frames.BlobGet(thread, chunks))
            try:
                for _ in chunks:
                    frame = await channel.read(idle=TIMEOUT)
                    assert isinstance(frame, frames.Chunk), frame
                    answer.chunks.append(frame)
            except PeerRefused as exc:
                answer.refused = exc.code
                await _trailing(channel, answer)
                break
            except StreamEnded:
                answer.ended = True
                break
    finally:
        await channel.close()
    return answers
