"""Canonical CBOR: the only encoding that is signed, hashed or sent between nodes.

``encode`` produces RFC 8949 deterministic CBOR (cbor2's canonical mode: shortest integers and
floats, definite lengths, sorted map keys). cbor2 sorts keys length-first (RFC 8949 §4.2.3); for
maps whose keys are all of one major type, which is all this project writes, that is the same
order as §4.2.1's bytewise sort.

``decode`` is for untrusted bytes: size and depth bounded, no indefinite lengths, no duplicate
keys, no tags, only plain types, and the input must be exactly the canonical encoding of what it
decodes to (so one value has one encoding, and a hash names one op).
"""

from __future__ import annotations

import io
import threading
from typing import Any

import cbor2

MAX_DEPTH = 16
INT_MIN = -(2**63)
INT_MAX = 2**64 - 1
_PLAIN_SCALARS = (str, bytes, bool, float, type(None))


class DecodeError(ValueError):
    """Bytes that are not an acceptable canonical CBOR document; the message says why."""


def encode(value: Any) -> bytes:
    return cbor2.dumps(value, canonical=True)


# One decoder per Python thread, reused (decode runs for every op validated: making a decoder
# was a quarter of decoding a small payload). Dropped after any error, so a decoder that failed
# half-way is never used again.
_decoders = threading.local()


def _decoder(stream: io.BytesIO) -> Any:
    decoder = getattr(_decoders, "decoder", None)
    if decoder is None:
        decoder = _decoders.decoder = cbor2.CBORDecoder(
            stream,
            tag_hook=_no_tags,
            allow_indefinite=False,
            allow_duplicate_keys=False,
            max_depth=MAX_DEPTH + 2,
        )
    else:
        decoder.fp = stream
    return decoder


def head(major: int, argument: int) -> bytes:
    """The canonical (shortest) head of a CBOR item: major type and length or value."""
    if argument < 24:
        return bytes([major << 5 | argument])
    for extra, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if argument < 1 << (8 * size):
            return bytes([major << 5 | extra]) + argument.to_bytes(size, "big")
    raise ValueError("argument too large for CBOR")


def _no_tags(decoder: Any, tag: Any) -> Any:
    raise DecodeError(f"CBOR tag {tag.tag} is not allowed")


def _check_plain(value: Any, depth: int) -> None:
    if isinstance(value, _PLAIN_SCALARS):
        return
    if type(value) is int:
        if not INT_MIN <= value <= INT_MAX:
            raise DecodeError("integer out of the 64-bit range")
        return
    if depth >= MAX_DEPTH:
        raise DecodeError(f"nested deeper than {MAX_DEPTH} levels")
    if type(value) is list:
        for item in value:
            _check_plain(item, depth + 1)
        return
    if type(value) is dict:
        key_types = {type(k) for k in value}
        if len(key_types) > 1:
            raise DecodeError("map keys of mixed types")
        for key, item in value.items():
            if type(key) not in (str, bytes, int):
                raise DecodeError(f"map key of type {type(key).__name__}")
            _check_plain(item, depth + 1)
        return
    raise DecodeError(f"value of type {type(value).__name__} is not allowed")


def head_size(argument: int) -> int:
    """The length of ``head(major, argument)``, without building it."""
    if argument < 24:
        return 1
    if argument < 1 << 8:
        return 2
    if argument < 1 << 16:
        return 3
    return 5 if argument < 1 << 32 else 9


def decode(data: bytes, *, max_size: int, canonical: bool = True, plain: bool = True) -> Any:
    """Decode untrusted CBOR of at most ``max_size`` bytes.

    ``canonical=False`` is for payloads inside an authenticated encryption: nothing is signed or
    hashed over their encoding, and their parser checks every field's type itself, so the
    re-encoding and the generic type walk are skipped there (they were a third of the cost of
    validating an op). ``plain=False`` skips only the generic type walk, for documents whose
    parser checks the type of every field anyway (the op itself).
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError("expected bytes")
    if len(data) > max_size:
        raise DecodeError(f"{len(data)} bytes, more than the limit of {max_size}")
    stream = io.BytesIO(data)
    try:
        value = _decoder(stream).decode()
    except DecodeError:
        _decoders.decoder = None
        raise
    except (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        _decoders.decoder = None
        raise DecodeError(f"not valid CBOR: {exc}") from exc
    except BaseException:
        _decoders.decoder = None
        raise
    if canonical and plain:
        _check_plain(value, 0)
    if stream.tell() != len(data):
        raise DecodeError(f"{len(data) - stream.tell()} trailing bytes after the document")
    if canonical and encode(value) != bytes(data):
        raise DecodeError("not in canonical form")
    return value
