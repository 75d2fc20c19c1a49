"""The ristretto255 group through libsodium: points, scalars, the identity, hashing, encodings.

Points and scalars are plain 32-byte strings. libsodium refuses to *produce* the identity from a
scalar multiplication, yet exponential ElGamal needs it (a vote of 0, an empty sum), so every
multiplication goes through `mul`/`base_mul`, which return `ZERO` (the identity's canonical
encoding) instead of failing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import cbor2
import pysodium

POINT_BYTES = 32
SCALAR_BYTES = 32
ZERO = bytes(POINT_BYTES)  # the identity element (also "no point")
SCALAR_ZERO = bytes(SCALAR_BYTES)

# Encodings larger than this are refused before decoding: the biggest honest one (a ballot of
# 50 options) is about 10 KiB.
MAX_ENCODED = 32 * 1024
DOMAIN = b"sereus-voting-v1"


class CryptoError(ValueError):
    """A refusal, with a message in plain words."""


# -- scalars -------------------------------------------------------------------------------


def scalar_int(n: int) -> bytes:
    """The scalar for a small non-negative integer (counts, indices, Lagrange terms)."""
    if n < 0 or n >= 1 << 252:
        raise CryptoError("A number is out of the range this code supports.")
    return n.to_bytes(SCALAR_BYTES, "little")


def scalar_random() -> bytes:
    return pysodium.crypto_core_ristretto255_scalar_random()


def s_add(x: bytes, y: bytes) -> bytes:
    return pysodium.crypto_core_ristretto255_scalar_add(x, y)


def s_sub(x: bytes, y: bytes) -> bytes:
    return pysodium.crypto_core_ristretto255_scalar_sub(x, y)


def s_mul(x: bytes, y: bytes) -> bytes:
    return pysodium.crypto_core_ristretto255_scalar_mul(x, y)


def s_invert(x: bytes) -> bytes:
    if x == SCALAR_ZERO:
        raise CryptoError("A division by zero was attempted.")
    return pysodium.crypto_core_ristretto255_scalar_invert(x)


def s_reduce(x: bytes) -> bytes:
    """Any 32-byte string reduced modulo the group order."""
    return pysodium.crypto_core_ristretto255_scalar_reduce(x + bytes(32))


def hash_to_scalar(label: str, *parts: bytes | int) -> bytes:
    """BLAKE2b-512 of the domain, the label and every part, each length-prefixed, reduced.

    Length prefixes make the encoding injective, so two different lists of parts never hash
    the same input (no ambiguity between where one part ends and the next begins).
    """
    h = hashlib.blake2b(digest_size=64)
    for part in (DOMAIN, label.encode(), *parts):
        if isinstance(part, int):
            part = part.to_bytes(8, "big", signed=False)
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return pysodium.crypto_core_ristretto255_scalar_reduce(h.digest())


# -- points --------------------------------------------------------------------------------


def add(p: bytes, q: bytes) -> bytes:
    """p + q; libsodium handles the identity in additions."""
    try:
        return pysodium.crypto_core_ristretto255_add(p, q)
    except ValueError:
        raise CryptoError("A value that should be a point of the group is not one.") from None


def sub(p: bytes, q: bytes) -> bytes:
    try:
        return pysodium.crypto_core_ristretto255_sub(p, q)
    except ValueError:
        raise CryptoError("A value that should be a point of the group is not one.") from None


def total(points: Sequence[bytes]) -> bytes:
    acc = ZERO
    for p in points:
        acc = add(acc, p)
    return acc


def mul(n: bytes, p: bytes) -> bytes:
    """n·p, with the identity as a result allowed."""
    if n == SCALAR_ZERO or p == ZERO:
        return ZERO
    try:
        return pysodium.crypto_scalarmult_ristretto255(n, p)
    except ValueError:
        # p is a valid non-identity point of prime order, so the product is the identity
        # exactly when n is a multiple of the group order: that is the only failure left.
        if pysodium.crypto_core_ristretto255_is_valid_point(p) and s_reduce(n) == SCALAR_ZERO:
            return ZERO
        raise CryptoError("A value that should be a point of the group is not one.") from None


def base_mul(n: bytes) -> bytes:
    """n·G, with n = 0 (mod the order) giving the identity."""
    if n == SCALAR_ZERO:
        return ZERO
    try:
        return pysodium.crypto_scalarmult_ristretto255_base(n)
    except ValueError:
        if s_reduce(n) == SCALAR_ZERO:
            return ZERO
        raise


def int_mul(m: int) -> bytes:
    """m·G for a small non-negative integer m."""
    return base_mul(scalar_int(m))


GENERATOR = int_mul(1)  # G, the group's standard base point


def is_point(p: object) -> bool:
    return (
        isinstance(p, bytes)
        and len(p) == POINT_BYTES
        and pysodium.crypto_core_ristretto255_is_valid_point(p)
    )


# -- checked decoding of received values ---------------------------------------------------


def check_point(p: object, what: str) -> bytes:
    """p if it is a valid point encoding (the identity included)."""
    if not is_point(p):
        raise CryptoError(f"The {what} is not a valid point of the group.")
    assert isinstance(p, bytes)
    return p


def check_scalar(s: object, what: str) -> bytes:
    """s if it is a canonical scalar (below the group order), so proofs are not malleable."""
    if not isinstance(s, bytes) or len(s) != SCALAR_BYTES or s_reduce(s) != s:
        raise CryptoError(f"The {what} is not a valid number for this group.")
    return s


def check_list(value: object, what: str, count: int | None = None) -> list[Any]:
    if not isinstance(value, list):
        raise CryptoError(f"The {what} does not have the expected shape.")
    if count is not None and len(value) != count:
        raise CryptoError(f"The {what} has {len(value)} parts where {count} were expected.")
    return value


def check_int(value: object, what: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise CryptoError(f"The {what} is not a number between {low} and {high}.")
    return value


def encode(tag: str, *fields: Any) -> bytes:
    return cbor2.dumps([tag, *fields], canonical=True)


def decode(data: object, tag: str, fields: int, what: str) -> list[Any]:
    """The fields of an encoding made by `encode(tag, ...)`; anything else is refused.

    The input must be exactly the canonical encoding of what it decodes to, so each value has
    one encoding only (a relay cannot re-encode a ballot into different bytes).
    """
    if not isinstance(data, bytes):
        raise CryptoError(f"The {what} is not a byte string.")
    if len(data) > MAX_ENCODED:
        raise CryptoError(f"The {what} is too large.")
    try:
        value = cbor2.loads(data, max_depth=8, allow_indefinite=False)
        canonical = cbor2.dumps(value, canonical=True)
    except Exception:  # cbor2 raises many types on garbage; all mean the same to the caller
        raise CryptoError(f"The {what} cannot be read: it is damaged or not one.") from None
    if canonical != data:
        raise CryptoError(f"The {what} is not in its single standard encoding.")
    if not isinstance(value, list) or len(value) != fields + 1 or value[0] != tag:
        raise CryptoError(f"The {what} is not of the expected kind.")
    return value[1:]
