"""The cadre's protocol ids and their CBOR messages (the shapes are in ADR 24).

Every message is a canonical CBOR map with ``"v": 1``; an unknown version is refused in words,
never guessed at. Sizes are bounded before decoding (the app protocol layer bounds the frame)
and again here (``max_size``)."""

from __future__ import annotations

from typing import Any

from apps.core.thread import codec

LINK = "/sereus/cadre/link/1.0.0"
LOG = "/sereus/cadre/log/1.0.0"
SUBMIT = "/sereus/cadre/submit/1.0.0"
MIRROR = "/sereus/cadre/mirror/1.0.0"

VERSION = 1
PAGE_OPS = 2000
PAGE_BYTES = 3 << 20
MAX_THREADS = 1024
MAX_ADDRS = 16
MAX_ADDR = 300


class WireError(ValueError):
    """A message that breaks the protocol (in words, for the log and the other side)."""


def encode(doc: dict[str, Any]) -> bytes:
    return codec.encode({**doc, "v": VERSION})


def decode(raw: bytes, *, max_size: int) -> dict[str, Any]:
    if len(raw) > max_size:
        raise WireError(f"the message is larger than {max_size} bytes")
    try:
        doc = codec.decode(raw, max_size=max_size, canonical=False)
    except codec.DecodeError as exc:
        raise WireError(f"the message is not valid CBOR ({exc})") from exc
    if not isinstance(doc, dict):
        raise WireError("the message is not a map")
    if doc.get("v") != VERSION:
        raise WireError(f"message version {doc.get('v')!r}; this node speaks version {VERSION}")
    return doc


def b32(doc: dict[str, Any], key: str, size: int = 32) -> bytes:
    value = doc.get(key)
    if not isinstance(value, bytes) or len(value) != size:
        raise WireError(f"{key!r} must be {size} bytes")
    return value


def text(doc: dict[str, Any], key: str, limit: int, *, default: str | None = None) -> str:
    value = doc.get(key, default)
    if type(value) is not str or len(value) > limit:
        raise WireError(f"{key!r} must be text of at most {limit} characters")
    return value


def uint(doc: dict[str, Any], key: str, *, high: int = 2**63 - 1) -> int:
    value = doc.get(key)
    if type(value) is not int or not 0 <= value <= high:
        raise WireError(f"{key!r} must be a whole number from 0 to {high}")
    return value


def items(doc: dict[str, Any], key: str, limit: int) -> list[Any]:
    value = doc.get(key)
    if not isinstance(value, list) or len(value) > limit:
        raise WireError(f"{key!r} must be a list of at most {limit} items")
    return value


def addrs(doc: dict[str, Any], key: str = "addrs") -> list[str]:
    found = items(doc, key, MAX_ADDRS)
    if not all(type(a) is str and 0 < len(a) <= MAX_ADDR for a in found):
        raise WireError(f"{key!r} must hold multiaddrs of at most {MAX_ADDR} characters")
    return found
