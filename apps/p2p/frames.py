"""The frames of the Sereus protocols: CBOR maps, varint-length-prefixed on a libp2p stream.

Every frame is checked here before the protocol code sees it: its type, every field's type, and
limits on sizes and counts (DESIGN §8, "size limits on every message"). A frame that fails raises
``FrameError`` with a reason; the protocol then answers with an error frame and closes.

- ``hello`` opens a sync session for a thread (versioned); ``redeem`` opens an invite session.
- ``ops`` carries a batch of raw ops, ``vv`` ends a flight with the sender's version vector,
  ``done`` ends the session with it. ``admitted`` answers a redeem; ``err`` ends anything.
- ``blobget`` asks for chunks of a thread's blobs; ``chunk`` answers each (data, or null).
- ``typing`` says the sender's member is typing in a thread (ephemeral, never stored).

A version vector (``vv``, ``done``) states, per device, the last seq the sender holds and the hash
of its op there (null where not stated), and the forks it knows: (device, first forked seq).
Comparing head hashes is how two nodes find that a device signed two different ops at one seq
(version 2 of the protocol; version 1 compared seqs only and never found out).

Decoding is written by hand rather than left to a generic CBOR decoder, because a generic
decoder builds the whole document before any limit can be checked: a 2 MB frame of a million
one-item arrays took 5 s and 150 MB (measured with cbor2, version 1 of this module). Here, in
one pass over the top-level map:

1. the input's size is checked against ``MAX_FRAME``;
2. the frame type is checked as soon as it is read: a known type, and the frame within that
   type's own size limit (``FRAME_LIMITS``: a hello is tiny, an ``ops`` frame may be 4 MiB);
3. each field after the type (always, from our encoder) is read against its schema at once,
   counts checked before anything is built; a field before it, or one the type does not have,
   is stepped over without building anything (counting CBOR items: at most ``MAX_ITEMS`` in a
   frame, enough for the largest vector, far below a million) and read afterwards if it belongs;
4. ops and vector entries, which a frame holds by the hundreds or thousands, are read by a short
   path for the heads our encoder writes, and by the general one otherwise.

So an ``ops`` frame allocates its byte strings and little else, and no frame allocates more than
a small multiple of its size. Errors keep the words of a generic decoder where they apply ("not
valid CBOR: ...").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from apps.core.thread import codec
from apps.core.thread.op import MAX_OP_SIZE
from apps.p2p.cbor_reader import ARRAY, BYTES, MAP, NULL, SIMPLE, TEXT, UINT, Reader, describe
from apps.p2p.cbor_reader import FrameError as FrameError

VERSION = 2
MAX_FRAME = 4 * 1024 * 1024  # an op is at most 1 MiB; a frame carries a batch of them
MAX_OPS_PER_FRAME = 256
MAX_OP = MAX_OP_SIZE  # each op in an ``ops`` frame (DESIGN §4: an op is at most 1 MiB)
BATCH_BYTES = 2 * 1024 * 1024  # the ops put in one frame, at most
MAX_VV = 4096  # devices in a version vector, and forks listed with it
MAX_CHUNKS_ASKED = 16  # chunk hashes in one blob request
MAX_CHUNK = 1024 * 1024 + 16  # a blob chunk: 1 MiB of plaintext and its tag
MAX_DETAIL = 500  # characters of an error's detail kept
# The first frame of an inbound stream (hello, redeem, blobget, typing) is small: read with this
# limit before the peer has shown anything (``FrameChannel.read_first``).
FIRST_FRAME = 4096
MAX_FIELDS = 16  # fields in a frame's map (the largest frame has 9)
MAX_FIELD_NAME = 32  # bytes
# The most CBOR items (heads) a frame may hold: a vector of MAX_VV [device, seq, hash] entries
# and MAX_VV [device, seq] forks, plus the map around them.
MAX_ITEMS = MAX_VV * 4 + MAX_VV * 3 + 64
# The largest encodings of vector entries, with the longest heads CBOR allows (a sender may use
# non-canonical heads): [device, seq, hash] and [device, seq].
_VV_ENTRY = 9 + (9 + 32) + 9 + (9 + 32)
_FORK_ENTRY = 9 + (9 + 32) + 9
VV_FRAME = 256 + MAX_VV * (_VV_ENTRY + _FORK_ENTRY)
# Each frame type's size limit, checked before its fields are decoded.
FRAME_LIMITS = {
    "hello": FIRST_FRAME,
    "redeem": FIRST_FRAME,
    "blobget": FIRST_FRAME,
    "typing": FIRST_FRAME,
    "admitted": FIRST_FRAME,
    "err": 8192,  # a detail of MAX_DETAIL characters is at most 2 000 bytes; longer ones are cut
    "chunk": MAX_CHUNK + 256,
    "vv": VV_FRAME,
    "done": VV_FRAME,
    "ops": MAX_FRAME,
}
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
_MAX_SEQ = 2**63 - 1


@dataclass(frozen=True)
class Hello:
    thread: bytes


@dataclass(frozen=True)
class Ops:
    ops: list[bytes]


@dataclass(frozen=True)
class VersionVector:
    vv: dict[bytes, int]
    # The hash of the sender's op at each device's last seq (devices left out: not stated).
    heads: dict[bytes, bytes] = field(default_factory=dict)
    # The forks the sender knows: device -> the first seq where it signed two different ops.
    forks: dict[bytes, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Done:
    vv: dict[bytes, int]
    heads: dict[bytes, bytes] = field(default_factory=dict)
    forks: dict[bytes, int] = field(default_factory=dict)


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
    device_proof: bytes  # the device's own signature: it holds the key it is admitted with


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


# -- encoding ------------------------------------------------------------------------------------


def _vector_doc(frame: VersionVector | Done) -> tuple[list[list[Any]], list[list[Any]]]:
    entries = [[device, seq, frame.heads.get(device)] for device, seq in sorted(frame.vv.items())]
    forks = [[device, seq] for device, seq in sorted(frame.forks.items())]
    return entries, forks


def encode(frame: Frame) -> bytes:
    match frame:
        case Hello():
            doc: dict[str, Any] = {"t": "hello", "v": VERSION, "thread": frame.thread}
        case Ops():
            doc = {"t": "ops", "ops": frame.ops}
        case VersionVector():
            entries, forks = _vector_doc(frame)
            doc = {"t": "vv", "vv": entries, "forks": forks}
        case Done():
            entries, forks = _vector_doc(frame)
            doc = {"t": "done", "vv": entries, "forks": forks}
        case Error():
            doc = {"t": "err", "code": frame.code, "detail": frame.detail[:MAX_DETAIL]}
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
                "device_proof": frame.device_proof,
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


# -- reading fields --------------------------------------------------------------------------------


def _bytes(reader: Reader, size: int, what: str) -> bytes:
    major, length = reader.head()
    if major != BYTES or length != size:
        raise FrameError(f"{what}: expected {size} bytes")
    return bytes(reader.take(length))


def _seq(reader: Reader, what: str) -> int:
    major, value = reader.head()
    if major != UINT or not 0 < value <= _MAX_SEQ:
        raise FrameError(f"{what}: seq must be a positive integer")
    return value


def _array(reader: Reader, what: str, high: int, low: int = 0) -> int:
    major, count = reader.head()
    if major != ARRAY or not low <= count <= high:
        raise FrameError(what)
    return count


def _text(reader: Reader, what: str) -> str | None:
    """A text string's value; None for anything else."""
    start = reader.pos
    major, size = reader.head()
    if major != TEXT:
        reader.pos = start
        reader.skip()
        return None
    return reader.text(size, what)


def _version(reader: Reader) -> int:
    start = reader.pos
    major, value = reader.head()
    if major != UINT or value != VERSION:
        raise FrameError(f"protocol version {describe(reader, start)} is not spoken here")
    return value


# Ops are read by a short path, inline, for heads of byte strings as our encoder writes them
# (0x40-0x57 hold the length, 0x58-0x5a are followed by it in 1, 2 or 4 bytes): a catch-up reads
# thousands a second. Any other head (or one within 5 bytes of the end) takes the general path,
# which says what is wrong with it.


def _ops(reader: Reader) -> list[bytes]:
    what = f"ops: expected a list of at most {MAX_OPS_PER_FRAME}"
    count = _array(reader, what, MAX_OPS_PER_FRAME)
    raw, data, end, pos = reader.raw, reader.data, reader.end, reader.pos
    ops: list[bytes] = []
    for _ in range(count):
        initial = raw[pos] if pos + 5 <= end else -1
        if 0x40 <= initial < 0x58:
            size, pos = initial - 0x40, pos + 1
        elif initial == 0x58:
            size, pos = raw[pos + 1], pos + 2
        elif initial == 0x59:
            size, pos = raw[pos + 1] << 8 | raw[pos + 2], pos + 3
        elif initial == 0x5A:
            size = raw[pos + 1] << 24 | raw[pos + 2] << 16 | raw[pos + 3] << 8 | raw[pos + 4]
            pos += 5
        else:
            reader.pos = pos
            major, size = reader.head()
            if major != BYTES:
                raise FrameError("ops: each op is bytes")
            pos = reader.pos
        if size > MAX_OP:
            raise FrameError(f"ops: an op of {size} bytes (the limit is {MAX_OP})")
        if size > end - pos:
            raise FrameError("not valid CBOR: the frame ends inside a string")
        ops.append(bytes(data[pos : pos + size]))
        pos += size
    reader.pos = pos
    reader.items += count
    return ops


# Vector entries as our encoder writes them (canonical heads): read by a short path, since a
# vector may hold thousands; any other encoding takes the general one.
_ENTRY_OPEN = b"\x83\x58\x20"  # a 3-item array, then a 32-byte string (the device)
_FORK_OPEN = b"\x82\x58\x20"  # a 2-item array, then the device
_HASH_OPEN = b"\x58\x20"  # a 32-byte string


def _entry_device(reader: Reader, opening: bytes, what: str) -> bytes:
    """The device that opens a vector entry ``[device, ...]`` of ``len(opening)`` items."""
    pos = reader.pos
    if reader.raw.startswith(opening, pos) and pos + 35 <= reader.end:
        reader.pos = pos + 35
        reader.items += 2
        return bytes(reader.data[pos + 3 : pos + 35])
    items = opening[0] & 0x1F
    names = "device, seq, hash" if items == 3 else "device, seq"
    _array(reader, f"{what}: entries are [{names}]", items, items)
    return _bytes(reader, 32, f"{what} device")


def _entry_hash(reader: Reader) -> bytes | None:
    pos = reader.pos
    if reader.raw.startswith(_HASH_OPEN, pos) and pos + 34 <= reader.end:
        reader.pos = pos + 34
        reader.items += 1
        return bytes(reader.data[pos + 2 : pos + 34])
    major, size = reader.head()
    if major == BYTES and size == 32:
        return bytes(reader.take(size))
    if (major, size) != (SIMPLE, NULL):
        raise FrameError("vv hash: expected 32 bytes or null")
    return None


def _vector(reader: Reader) -> tuple[dict[bytes, int], dict[bytes, bytes]]:
    what = f"vv: expected a list of at most {MAX_VV} entries"
    seqs: dict[bytes, int] = {}
    heads: dict[bytes, bytes] = {}
    for _ in range(_array(reader, what, MAX_VV)):
        device = _entry_device(reader, _ENTRY_OPEN, "vv")
        if device in seqs:
            raise FrameError("vv: a device appears twice")
        seqs[device] = _seq(reader, "vv")
        digest = _entry_hash(reader)
        if digest is not None:
            heads[device] = digest
    return seqs, heads


def _forks(reader: Reader) -> dict[bytes, int]:
    what = f"forks: expected a list of at most {MAX_VV} entries"
    forks: dict[bytes, int] = {}
    for _ in range(_array(reader, what, MAX_VV)):
        device = _entry_device(reader, _FORK_OPEN, "forks")
        if device in forks:
            raise FrameError("forks: a device appears twice")
        forks[device] = _seq(reader, "forks")
    return forks


def _chunks(reader: Reader) -> list[bytes]:
    what = f"chunks: expected a list of 1 to {MAX_CHUNKS_ASKED} hashes"
    return [_bytes(reader, 32, "chunk") for _ in range(_array(reader, what, MAX_CHUNKS_ASKED, 1))]


def _data(reader: Reader) -> bytes | None:
    major, size = reader.head()
    if (major, size) == (SIMPLE, NULL):
        return None
    if major != BYTES or size > MAX_CHUNK:
        raise FrameError(f"chunk data: bytes, at most {MAX_CHUNK}, or null")
    return bytes(reader.take(size))


def _key(name: str, size: int) -> Callable[[Reader], bytes]:
    return partial(_bytes, size=size, what=name)


# How to read each field, by name (a name means the same in every frame that has it).
_READERS: dict[str, Callable[[Reader], Any]] = {
    "v": _version,
    "thread": _key("thread", 32),
    "invite": _key("invite", 32),
    "member": _key("member", 32),
    "device": _key("device", 32),
    "hash": _key("hash", 32),
    "cert": _key("cert", 64),
    "proof": _key("proof", 64),
    "device_proof": _key("device_proof", 64),
    "ops": _ops,
    "vv": _vector,
    "forks": _forks,
    "code": partial(_text, what="the error code"),
    "detail": partial(_text, what="the error detail"),
    "chunks": _chunks,
    "data": _data,
}
FIELDS = {
    "hello": ("v", "thread"),
    "ops": ("ops",),
    "vv": ("vv", "forks"),
    "done": ("vv", "forks"),
    "err": ("code", "detail"),
    "redeem": ("v", "thread", "invite", "member", "device", "cert", "proof", "device_proof"),
    "admitted": (),
    "blobget": ("v", "thread", "chunks"),
    "typing": ("v", "thread"),
    "chunk": ("hash", "data"),
}


# -- frames ----------------------------------------------------------------------------------------


def _name(reader: Reader) -> str:
    major, size = reader.head()
    if major != TEXT or size > MAX_FIELD_NAME:
        raise FrameError("a frame's field names are short text strings")
    return reader.text(size, "a field name")


def _kind(reader: Reader, size: int) -> str:
    """The frame type, checked at once: known, and the frame within its type's size limit."""
    major, length = reader.head()
    if major != TEXT or length > MAX_FIELD_NAME:
        raise FrameError("a frame is a map with a type")
    kind = reader.text(length, "the frame type")
    if kind not in FIELDS:
        raise FrameError(f"unknown frame type {kind!r}")
    if size > FRAME_LIMITS[kind]:
        raise FrameError(f"a {kind!r} frame of {size} bytes (the limit is {FRAME_LIMITS[kind]})")
    return kind


def _fields(reader: Reader, size: int) -> tuple[str, dict[str, Any]]:
    """The frame type and its fields' values, in one pass over the map.

    A field that comes after the type (always, in canonical CBOR) is read against its schema
    right away; one before it, or one the type does not have, is stepped over (counted, nothing
    built) and read afterwards if it belongs."""
    major, count = reader.head()
    if major != MAP:
        raise FrameError("a frame is a map with a type")
    if count > MAX_FIELDS:
        raise FrameError(f"a frame has at most {MAX_FIELDS} fields")
    kind: str | None = None
    values: dict[str, Any] = {}
    later: dict[str, int] = {}
    for _ in range(count):
        name = _name(reader)
        if name in values or name in later or (name == "t" and kind is not None):
            raise FrameError(f"not valid CBOR: the field {name!r} appears twice")
        if name == "t":
            kind = _kind(reader, size)
        elif kind is not None and name in FIELDS[kind]:
            values[name] = _READERS[name](reader)
        else:
            later[name] = reader.pos
            reader.skip()
    if reader.pos != reader.end:
        raise FrameError(f"not valid CBOR: {reader.end - reader.pos} bytes after the frame")
    if kind is None:
        raise FrameError("a frame is a map with a type")
    if set(values) | set(later) != set(FIELDS[kind]):
        raise FrameError(f"frame {kind!r}: fields {sorted(['t', *values, *later])}")
    reader.items = 0  # fields read again are counted by their own schema
    for name, pos in later.items():
        values[name] = _READERS[name](reader.at(pos))
    return kind, values


def _frame(kind: str, values: dict[str, Any]) -> Frame:
    """The frame of a type whose fields were read and checked."""
    match kind:
        case "hello":
            return Hello(values["thread"])
        case "typing":
            return Typing(values["thread"])
        case "ops":
            return Ops(values["ops"])
        case "vv" | "done":
            seqs, heads = values["vv"]
            return (VersionVector if kind == "vv" else Done)(seqs, heads, values["forks"])
        case "err":
            code, detail = values["code"], values["detail"]
            if code not in ERROR_CODES:
                raise FrameError("err: unknown code")
            if detail is None:
                raise FrameError("err: the detail is text")
            return Error(code, detail[:MAX_DETAIL])
        case "redeem":
            names = ("thread", "invite", "member", "device", "cert", "proof", "device_proof")
            return Redeem(*(values[name] for name in names))
        case "admitted":
            return Admitted()
        case "blobget":
            return BlobGet(values["thread"], values["chunks"])
        case "chunk":
            return Chunk(values["hash"], values["data"])
    raise AssertionError(kind)


def decode(data: bytes | bytearray) -> Frame:
    """The frame in ``data`` (one whole CBOR document), or ``FrameError`` saying why not.

    Not canonical CBOR necessarily: nothing is signed over a frame, and every field is checked.
    """
    if len(data) > MAX_FRAME:
        raise FrameError(f"{len(data)} bytes, more than the limit of {MAX_FRAME}")
    kind, values = _fields(Reader(data, MAX_ITEMS), len(data))
    return _frame(kind, values)
