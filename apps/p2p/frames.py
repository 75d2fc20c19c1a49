"""The frames of the Sereus protocols: CBOR maps, varint-length-prefixed on a libp2p stream.

Every frame is checked here before the protocol code sees it: its type, every field's type, and
limits on sizes and counts (DESIGN §8, "size limits on every message"). A frame that fails raises
``FrameError`` with a reason; the protocol then answers with an error frame and closes.

- ``hello`` opens a sync session for a thread (versioned); ``redeem`` opens an invite session.
- ``ops`` carries a batch of raw ops, ``vv`` ends a flight with the sender's version vector,
  ``done`` ends the session with it. ``admitted`` answers a redeem; ``err`` ends anything.
- ``blobget`` asks for chunks of a thread's blobs; ``chunk`` answers each (data, or null).
- ``typing`` says the sender's member is typing in a thread (ephemeral, never stored).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apps.core.thread import codec

VERSION = 1
MAX_FRAME = 4 * 1024 * 1024  # an op is at most 1 MiB; a frame carries a batch of them
MAX_OPS_PER_FRAME = 256
BATCH_BYTES = 2 * 1024 * 1024  # the ops put in one frame, at most
MAX_VV = 4096
MAX_CHUNKS_ASKED = 16  # chunk hashes in one blob request
MAX_CHUNK = 1024 * 1024 + 16  # a blob chunk: 1 MiB of plaintext and its tag
ERROR_CODES = frozenset(
    {
        "refused",
        "malformed",
        "busy",
        "expired",
        "revoked",
        "used",
        "unknown",
        "forbidden",
        "unavailable",
        "conflict",
    }
)


class FrameError(ValueError):
    """A frame that is not acceptable; the message says why."""


@dataclass(frozen=True)
class Hello:
    thread: bytes


@dataclass(frozen=True)
class Ops:
    ops: list[bytes]


@dataclass(frozen=True)
class VersionVector:
    vv: dict[bytes, int]


@dataclass(frozen=True)
class Done:
    vv: dict[bytes, int]


@dataclass(frozen=True)
class Error:
    code: str
    detail: str


@dataclass(frozen=True)
class Redeem:
    thread: bytes
    invite: bytes
    member: bytes
    device: bytes
    cert: bytes
    proof: bytes


@dataclass(frozen=True)
class Admitted:
    pass


@dataclass(frozen=True)
class BlobGet:
    thread: bytes
    chunks: list[bytes]


@dataclass(frozen=True)
class Chunk:
    hash: bytes
    data: bytes | None  # None: not on this node


@dataclass(frozen=True)
class Typing:
    thread: bytes


Frame = Hello | Ops | VersionVector | Done | Error | Redeem | Admitted | BlobGet | Chunk | Typing


def _vv_doc(vv: dict[bytes, int]) -> list[list[Any]]:
    return [[device, seq] for device, seq in sorted(vv.items())]


def encode(frame: Frame) -> bytes:
    match frame:
        case Hello():
            doc: dict[str, Any] = {"t": "hello", "v": VERSION, "thread": frame.thread}
        case Ops():
            doc = {"t": "ops", "ops": frame.ops}
        case VersionVector():
            doc = {"t": "vv", "vv": _vv_doc(frame.vv)}
        case Done():
            doc = {"t": "done", "vv": _vv_doc(frame.vv)}
        case Error():
            doc = {"t": "err", "code": frame.code, "detail": frame.detail[:500]}
        case Redeem():
            doc = {
                "t": "redeem",
                "v": VERSION,
                "thread": frame.thread,
                "invite": frame.invite,
                "member": frame.member,
                "device": frame.device,
                "cert": frame.cert,
                "proof": frame.proof,
            }
        case Admitted():
            doc = {"t": "admitted"}
        case BlobGet():
            doc = {"t": "blobget", "v": VERSION, "thread": frame.thread, "chunks": frame.chunks}
        case Chunk():
            doc = {"t": "chunk", "hash": frame.hash, "data": frame.data}
        case Typing():
            doc = {"t": "typing", "v": VERSION, "thread": frame.thread}
        case _:
            raise TypeError(f"not a frame: {frame!r}")
    return codec.encode(doc)


def _fields(doc: dict[str, Any], *names: str) -> None:
    if set(doc) != {"t", *names}:
        raise FrameError(f"frame {doc.get('t')!r}: fields {sorted(map(str, doc))}")


def _bytes(value: Any, size: int, what: str) -> bytes:
    if type(value) is not bytes or len(value) != size:
        raise FrameError(f"{what}: expected {size} bytes")
    return value


def _version(doc: dict[str, Any]) -> None:
    if type(doc.get("v")) is not int or doc["v"] != VERSION:
        raise FrameError(f"protocol version {doc.get('v')!r} is not spoken here")


def _vv(value: Any) -> dict[bytes, int]:
    if type(value) is not list or len(value) > MAX_VV:
        raise FrameError(f"vv: expected a list of at most {MAX_VV} entries")
    vv: dict[bytes, int] = {}
    for entry in value:
        if type(entry) is not list or len(entry) != 2:
            raise FrameError("vv: entries are [device, seq]")
        device = _bytes(entry[0], 32, "vv device")
        if device in vv:
            raise FrameError("vv: a device appears twice")
        if type(entry[1]) is not int or not 0 < entry[1] < 2**63:
            raise FrameError("vv: seq must be a positive integer")
        vv[device] = entry[1]
    return vv


def decode(data: bytes) -> Frame:
    try:
        # Not canonical: nothing is signed over a frame, and every field is checked below.
        doc = codec.decode(data, max_size=MAX_FRAME, canonical=False, plain=False)
    except codec.DecodeError as exc:
        raise FrameError(str(exc)) from exc
    if type(doc) is not dict or type(doc.get("t")) is not str:
        raise FrameError("a frame is a map with a type")
    kind = doc["t"]
    if kind == "hello":
        _fields(doc, "v", "thread")
        _version(doc)
        return Hello(_bytes(doc["thread"], 32, "thread"))
    if kind == "ops":
        _fields(doc, "ops")
        ops = doc["ops"]
        if type(ops) is not list or len(ops) > MAX_OPS_PER_FRAME:
            raise FrameError(f"ops: expected a list of at most {MAX_OPS_PER_FRAME}")
        if any(type(op) is not bytes for op in ops):
            raise FrameError("ops: each op is bytes")
        return Ops(ops)
    if kind == "vv":
        _fields(doc, "vv")
        return VersionVector(_vv(doc["vv"]))
    if kind == "done":
        _fields(doc, "vv")
        return Done(_vv(doc["vv"]))
    if kind == "err":
        _fields(doc, "code", "detail")
        if (
            type(doc["code"]) is not str
            or doc["code"] not in ERROR_CODES
            or type(doc["detail"]) is not str
        ):
            raise FrameError("err: unknown code")
        return Error(doc["code"], doc["detail"][:500])
    if kind == "redeem":
        _fields(doc, "v", "thread", "invite", "member", "device", "cert", "proof")
        _version(doc)
        return Redeem(
            _bytes(doc["thread"], 32, "thread"),
            _bytes(doc["invite"], 32, "invite"),
            _bytes(doc["member"], 32, "member"),
            _bytes(doc["device"], 32, "device"),
            _bytes(doc["cert"], 64, "cert"),
            _bytes(doc["proof"], 64, "proof"),
        )
    if kind == "admitted":
        _fields(doc)
        return Admitted()
    if kind == "blobget":
        _fields(doc, "v", "thread", "chunks")
        _version(doc)
        chunks = doc["chunks"]
        if type(chunks) is not list or not 0 < len(chunks) <= MAX_CHUNKS_ASKED:
            raise FrameError(f"chunks: expected a list of 1 to {MAX_CHUNKS_ASKED} hashes")
        return BlobGet(
            _bytes(doc["thread"], 32, "thread"), [_bytes(c, 32, "chunk") for c in chunks]
        )
    if kind == "typing":
        _fields(doc, "v", "thread")
        _version(doc)
        return Typing(_bytes(doc["thread"], 32, "thread"))
    if kind == "chunk":
        _fields(doc, "hash", "data")
        data = doc["data"]
        if data is not None and (type(data) is not bytes or len(data) > MAX_CHUNK):
            raise FrameError(f"chunk data: bytes, at most {MAX_CHUNK}, or null")
        return Chunk(_bytes(doc["hash"], 32, "hash"), data)
    raise FrameError(f"unknown frame type {kind!r}")
