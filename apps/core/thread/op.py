"""The op (DESIGN §3): one device's change to one thread, canonical CBOR, signed, hash-chained.

``op_decode`` is validation step 1 (shape and size) for bytes from anywhere; ``op_verify`` is the
signature half of step 2. Chains, forks and everything that needs other ops live in the resolver.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import nacl.signing

from apps.core.thread import codec, crypto
from apps.core.thread.hlc import MAX_COUNTER, MAX_MILLIS, Stamp
from apps.core.thread.opread import op_fields

OP_VERSION = 1
MAX_OP_SIZE = 1 << 20
MAX_DEPS = 4096
MAX_SEQ = 2**63 - 1
MAX_EPOCH = 2**32 - 1
KIND_DATA = "data"
KIND_CONTROL = "control"
KIND_KEYS = "keys"
KINDS = frozenset({KIND_DATA, KIND_CONTROL, KIND_KEYS})
FIELDS = frozenset(
    {"v", "thread", "device", "seq", "prev", "deps", "hlc", "epoch", "kind", "body", "sig"}
)
# RFC 8949 deterministic order of the op's keys (all text, so length first, then bytewise).
CANONICAL_ORDER = sorted(FIELDS, key=lambda k: (len(k), k))

OpId = tuple[bytes, int]  # (device, seq)


class OpShapeError(ValueError):
    """An op that is malformed: validation step 1. The message says which field and why."""


class Op:
    """A decoded op. Immutable by convention; ``raw`` is its canonical encoding."""

    __slots__ = (
        "_aad",
        "_layout_cache",
        "body",
        "deps",
        "deps_map",
        "device",
        "epoch",
        "hash",
        "hlc",
        "kind",
        "prev",
        "raw",
        "seq",
        "sig",
        "thread",
        "v",
    )

    def __init__(
        self,
        thread: bytes,
        device: bytes,
        seq: int,
        prev: bytes | None,
        deps: tuple[tuple[bytes, int], ...],
        hlc: Stamp,
        epoch: int,
        kind: str,
        body: bytes,
        sig: bytes,
        raw: bytes,
    ) -> None:
        self.v = OP_VERSION
        self.thread = thread
        self.device = device
        self.seq = seq
        self.prev = prev
        self.deps = deps
        self.deps_map = dict(deps)
        self.hlc = hlc
        self.epoch = epoch
        self.kind = kind
        self.body = body
        self.sig = sig
        self.raw = raw
        self.hash = crypto.blake2b256(raw)
        self._aad: bytes | None = None
        self._layout_cache: tuple[int, int, int] | None = None

    @property
    def id(self) -> OpId:
        return (self.device, self.seq)

    def header(self) -> dict[str, Any]:
        return _header(
            self.thread,
            self.device,
            self.seq,
            self.prev,
            self.deps,
            self.hlc,
            self.epoch,
            self.kind,
        )

    def _layout(self) -> tuple[int, int, int]:
        """Where the sig and body entries sit in ``raw``.

        ``raw`` is canonical (checked when decoded, made so when signed), so its map entries
        come in the fixed order v, hlc, seq, sig, body, deps, kind, prev, epoch, device, thread
        and their sizes follow from the values: the signed bytes and the associated data are
        slices of ``raw``, never a re-encoding (and so are exactly the bytes that were sent).
        """
        if self._layout_cache is not None:
            return self._layout_cache
        start = (
            1  # map head
            + 2  # "v"
            + codec.head_size(self.v)
            + 4  # "hlc"
            + 1  # array head
            + codec.head_size(self.hlc.millis)
            + codec.head_size(self.hlc.counter)
            + 4  # "seq"
            + codec.head_size(self.seq)
        )
        sig_end = start + 4 + 2 + crypto.SIG_SIZE
        body_end = sig_end + 5 + codec.head_size(len(self.body)) + len(self.body)
        self._layout_cache = (start, sig_end, body_end)
        return self._layout_cache

    def signed_bytes(self) -> bytes:
        """The encoding of every field but sig: what the device signed."""
        start, sig_end, _ = self._layout()
        return b"\xaa" + self.raw[1:start] + self.raw[sig_end:]

    def header_bytes(self) -> bytes:
        """The associated data of the body's encryption: every field but body and sig."""
        if self._aad is None:
            start, _, body_end = self._layout()
            self._aad = b"\xa9" + self.raw[1:start] + self.raw[body_end:]
        return self._aad

    def in_past(self, device: bytes, seq: int) -> bool:
        """Whether op (device, seq) is in this op's causal past."""
        if device == self.device:
            return seq < self.seq
        return self.deps_map.get(device, 0) >= seq

    def __repr__(self) -> str:
        return f"<Op {self.kind} {self.device.hex()[:8]}:{self.seq} {self.hash.hex()[:8]}>"


def _header(
    thread: bytes,
    device: bytes,
    seq: int,
    prev: bytes | None,
    deps: Iterable[tuple[bytes, int]],
    hlc: Stamp,
    epoch: int,
    kind: str,
) -> dict[str, Any]:
    return {
        "v": OP_VERSION,
        "thread": thread,
        "device": device,
        "seq": seq,
        "prev": prev,
        "deps": [[d, s] for d, s in deps],
        "hlc": [hlc.millis, hlc.counter],
        "epoch": epoch,
        "kind": kind,
    }


def _uint_bytes(value: int) -> bytes:
    """The canonical encoding of an unsigned integer (``codec.head(0, value)``, inlined)."""
    if value < 24:
        return bytes((value,))
    if value < 0x100:
        return bytes((24, value))
    if value < 0x10000:
        return b"\x19" + value.to_bytes(2, "big")
    if value < 0x100000000:
        return b"\x1a" + value.to_bytes(4, "big")
    return b"\x1b" + value.to_bytes(8, "big")


# thread, device, seq, prev, deps, hlc, epoch, kind: the header's fields in ``_header``'s order.
Deps = tuple[tuple[bytes, int], ...]
HeaderFields = tuple[bytes, bytes, int, bytes | None, Deps, Stamp, int, str]


def _header_bytes(fields: HeaderFields) -> bytes:
    """``codec.encode(_header(...))``, written out by hand (a quarter of its cost) for every op
    a peer could take: its fields are then of fixed types, so the canonical bytes are their
    entries in the fixed key order v, hlc, seq, deps, kind, prev, epoch, device, thread. The
    hostile tests seal ops of the wrong shape on purpose: those go through the codec as ever."""
    thread, device, seq, prev, deps, hlc, epoch, kind = fields
    keys = (thread, device, prev, *(dep for dep, _seq in deps))
    numbers = (seq, epoch, hlc.millis, hlc.counter, *(dep_seq for _dep, dep_seq in deps))
    if not (
        all(type(k) is bytes and len(k) == 32 for k in keys if k is not None)
        and all(type(n) is int and 0 <= n < 1 << 64 for n in numbers)
        and type(kind) is str
    ):
        return codec.encode(_header(*fields))
    kind_bytes = kind.encode()
    return b"".join(
        (
            b"\xa9\x61v\x01\x63hlc\x82",
            _uint_bytes(hlc.millis),
            _uint_bytes(hlc.counter),
            b"\x63seq",
            _uint_bytes(seq),
            b"\x64deps",
            codec.head(4, len(deps)),
            *[b"\x82\x58\x20" + dep + _uint_bytes(dep_seq) for dep, dep_seq in deps],
            b"\x64kind",
            codec.head(3, len(kind_bytes)),
            kind_bytes,
            b"\x64prev",
            b"\xf6" if prev is None else b"\x58\x20" + prev,
            b"\x65epoch",
            _uint_bytes(epoch),
            b"\x66device\x58\x20",
            device,
            b"\x66thread\x58\x20",
            thread,
        )
    )


def op_seal(
    key: nacl.signing.SigningKey,
    *,
    thread: bytes,
    seq: int,
    prev: bytes | None,
    deps: Iterable[tuple[bytes, int]],
    hlc: Stamp,
    epoch: int,
    kind: str,
    seal: Callable[[bytes], bytes],
) -> Op:
    """Assemble and sign an op authored by ``key``'s device. ``seal`` turns the encoded header
    (the associated data) into the body: it encrypts the payload, or returns it as it is."""
    device = bytes(key.verify_key)
    deps = tuple(sorted((bytes(d), int(s)) for d, s in deps))
    header = _header_bytes((thread, device, seq, prev, deps, hlc, epoch, kind))
    body = seal(header)
    # The header is encoded once: in canonical order "sig" and then "body" come right after the
    # v, hlc and seq entries, so the signed map (header + body) and the op (signed map + sig)
    # are the header's bytes with those entries spliced in, not encodings of their own.
    split = (
        1
        + 2
        + codec.head_size(OP_VERSION)
        + 4
        + 1
        + codec.head_size(hlc.millis)
        + codec.head_size(hlc.counter)
        + 4
        + codec.head_size(seq)
    )
    entries, rest = header[1:split], header[split:]
    body_entry = b"\x64body" + codec.head(2, len(body)) + body
    sig = crypto.sign(key, "op", thread, b"\xaa" + entries + body_entry + rest)
    raw = b"\xab" + entries + b"\x63sig\x58\x40" + sig + body_entry + rest
    return Op(
        thread=thread,
        device=device,
        seq=seq,
        prev=prev,
        deps=deps,
        hlc=hlc,
        epoch=epoch,
        kind=kind,
        body=body,
        sig=sig,
        raw=raw,
    )


def op_sign(key: nacl.signing.SigningKey, *, body: bytes, **header: Any) -> Op:
    """``op_seal`` with a body that is already sealed."""
    return op_seal(key, seal=lambda _aad: body, **header)


def _bytes32(value: Any, field: str) -> bytes:
    if type(value) is not bytes or len(value) != 32:
        raise OpShapeError(f"{field}: expected 32 bytes")
    return value


def _uint(value: Any, field: str, *, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise OpShapeError(f"{field}: expected an integer from {low} to {high}")
    return value


def op_decode(raw: bytes) -> Op:
    """Validation step 1: decode and check the shape of an op from anywhere."""
    fields = op_fields(raw)
    if fields is not None:  # canonical and well-formed, read straight from the bytes
        return Op(*fields, raw)
    return op_decode_general(raw)


def op_decode_general(raw: bytes) -> Op:
    """``op_decode`` through the generic CBOR decoder: every input, with the reason of a
    refusal (``op_decode`` reads canonical ops straight from their bytes, ``opread``)."""
    try:
        # Canonical form is checked below, more cheaply than by encoding again.
        doc = codec.decode(raw, max_size=MAX_OP_SIZE, canonical=False)
    except codec.DecodeError as exc:
        raise OpShapeError(f"op: {exc}") from exc
    if type(doc) is not dict:
        raise OpShapeError("op: expected a map")
    version = doc.get("v")
    if type(version) is not int or version != OP_VERSION:
        raise OpShapeError(f"op: unknown version {version!r} (this node speaks {OP_VERSION})")
    if doc.keys() != FIELDS:
        extra = sorted(map(str, doc.keys() - FIELDS))
        missing = sorted(FIELDS - doc.keys())
        raise OpShapeError(f"op: unknown fields {extra} / missing fields {missing}")

    thread = _bytes32(doc["thread"], "thread")
    device = _bytes32(doc["device"], "device")
    seq = _uint(doc["seq"], "seq", low=1, high=MAX_SEQ)
    prev = doc["prev"]
    if seq == 1:
        if prev is not None:
            raise OpShapeError("prev: must be null for the first op of a device")
    else:
        prev = _bytes32(prev, "prev")

    raw_deps = doc["deps"]
    if type(raw_deps) is not list or len(raw_deps) > MAX_DEPS:
        raise OpShapeError(f"deps: expected a list of at most {MAX_DEPS} entries")
    deps: list[tuple[bytes, int]] = []
    for entry in raw_deps:
        if type(entry) is not list or len(entry) != 2:
            raise OpShapeError("deps: each entry is [device, seq]")
        dep_device = _bytes32(entry[0], "deps device")
        dep_seq = _uint(entry[1], "deps seq", low=1, high=MAX_SEQ)
        if deps and dep_device <= deps[-1][0]:
            raise OpShapeError("deps: devices must be sorted and unique")
        if dep_device == device:
            raise OpShapeError("deps: must not name the op's own device (prev chains it)")
        deps.append((dep_device, dep_seq))

    hlc = doc["hlc"]
    if type(hlc) is not list or len(hlc) != 2:
        raise OpShapeError("hlc: expected [millis, counter]")
    stamp = Stamp(
        _uint(hlc[0], "hlc millis", low=0, high=MAX_MILLIS),
        _uint(hlc[1], "hlc counter", low=0, high=MAX_COUNTER),
    )
    epoch = _uint(doc["epoch"], "epoch", low=0, high=MAX_EPOCH)
    kind = doc["kind"]
    if type(kind) is not str or kind not in KINDS:
        raise OpShapeError(f"kind: {kind!r} is not one of {sorted(KINDS)}")
    body = doc["body"]
    if type(body) is not bytes:
        raise OpShapeError("body: expected bytes")
    sig = doc["sig"]
    if type(sig) is not bytes or len(sig) != crypto.SIG_SIZE:
        raise OpShapeError("sig: expected 64 bytes")
    # Canonical form. Every field has its type and range checked above, so the encoding is fixed
    # but for the order of the keys and the width of each head: in the canonical order and at the
    # shortest possible length, the bytes are the canonical encoding (any longer head, tag or
    # trailing byte makes them longer). Re-encoding the op would cost a fifth of validating it.
    if list(doc) != CANONICAL_ORDER:
        raise OpShapeError("op: not in canonical form (map keys out of order)")
    size = (
        1
        + 2 + codec.head_size(version)
        + 4 + 1 + codec.head_size(stamp.millis) + codec.head_size(stamp.counter)
        + 4 + codec.head_size(seq)
        + 4 + 2 + crypto.SIG_SIZE
        + 5 + codec.head_size(len(body)) + len(body)
        + 5 + codec.head_size(len(deps)) + sum(1 + 2 + 32 + codec.head_size(s) for _, s in deps)
        + 5 + 1 + len(kind)
        + 5 + (1 if prev is None else 2 + 32)
        + 6 + codec.head_size(epoch)
        + 7 + 2 + 32
        + 7 + 2 + 32
    )  # fmt: skip
    if len(raw) != size:
        raise OpShapeError("op: not in canonical form (or trailing bytes)")
    return Op(
        thread=thread,
        device=device,
        seq=seq,
        prev=prev,
        deps=tuple(deps),
        hlc=stamp,
        epoch=epoch,
        kind=kind,
        body=body,
        sig=sig,
        raw=bytes(raw),
    )


def op_verify(op: Op) -> None:
    """Validation step 2 (signature): raise crypto.CryptoError if the device did not sign these
    exact bytes (the signed bytes are cut from ``raw``, not rebuilt from decoded values)."""
    crypto.verify(op.device, op.sig, "op", op.thread, op.signed_bytes())
