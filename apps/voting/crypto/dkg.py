"""Distributed key generation (joint Feldman): dealings, shares, the poll key.

Each trustee deals a random polynomial f of degree threshold-1: it publishes commitments
C_k = a_k·G to the coefficients, proves it knows a_0 (so nobody can pick a key that cancels the
others'), and seals f(j) to trustee j. The poll's secret is the sum of every dealer's a_0; no
dealer knows it, and any `threshold` trustees together can decrypt with their combined shares.
"""

from __future__ import annotations

from collections.abc import Sequence

import nacl.exceptions
import nacl.public
import nacl.signing

from .group import (
    SCALAR_ZERO,
    CryptoError,
    base_mul,
    check_list,
    check_point,
    check_scalar,
    decode,
    encode,
    mul,
    s_add,
    s_mul,
    scalar_int,
    scalar_random,
    total,
)
from .proofs import schnorr_prove, schnorr_verify

MAX_TRUSTEES = 20
SEALED_BYTES = 32 + 48  # a sealed box adds an ephemeral key (32) and a tag (16)
TAG = "sereus-voting/dealing"


class ShareError(CryptoError):
    """A dealing sent this trustee a bad share; `position` is the dealing's place in the list."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.position = position


def _check_setup(threshold: int, trustees: Sequence[bytes]) -> None:
    n = len(trustees)
    if not 1 <= n <= MAX_TRUSTEES:
        raise CryptoError(f"A poll needs between 1 and {MAX_TRUSTEES} trustees.")
    if any(not isinstance(t, bytes) or len(t) != 32 for t in trustees):
        raise CryptoError("A trustee's key is not a member's public key.")
    if len(set(trustees)) != n:
        raise CryptoError("The same member appears twice among the trustees.")
    if isinstance(threshold, bool) or not isinstance(threshold, int) or not 1 <= threshold <= n:
        raise CryptoError(
            "The number of trustees needed must be between 1 and the number of trustees."
        )


def _box_key(trustee: bytes) -> nacl.public.PublicKey:
    try:
        return nacl.signing.VerifyKey(trustee).to_curve25519_public_key()
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise CryptoError("A trustee's key is not a valid member key.") from None


def _powers(index: int, count: int) -> list[bytes]:
    """index^0 .. index^(count-1) as scalars."""
    j, p, out = scalar_int(index), scalar_int(1), []
    for _ in range(count):
        out.append(p)
        p = s_mul(p, j)
    return out


def _evaluate(commitments: Sequence[bytes], index: int) -> bytes:
    """sum_k C_k·index^k: the public image g^f(index) of the share for trustee `index`."""
    powers = _powers(index, len(commitments))
    # index^0 = 1: the first term needs no multiplication.
    terms = [commitments[0]]
    terms += [mul(p, c) for p, c in zip(powers[1:], commitments[1:], strict=True)]
    return total(terms)


def _proof_parts(context: bytes, threshold: int, trustees: Sequence[bytes], commits: list[bytes]):
    return (context, threshold, *trustees, *commits)


def dealing_make(context: bytes, threshold: int, trustees: Sequence[bytes]) -> bytes:
    """A fresh dealing: commitments, proof of knowledge of the secret, shares sealed to each."""
    _check_setup(threshold, trustees)
    boxes = [nacl.public.SealedBox(_box_key(t)) for t in trustees]
    coefficients = [scalar_random() for _ in range(threshold)]
    commitments = [base_mul(a) for a in coefficients]
    parts = _proof_parts(context, threshold, trustees, commitments)
    c, z = schnorr_prove("dealing", parts, coefficients[0], commitments[0])
    sealed = []
    for j, box in enumerate(boxes, start=1):
        share = SCALAR_ZERO
        for p, a in zip(_powers(j, threshold), coefficients, strict=True):
            share = s_add(share, s_mul(p, a))
        sealed.append(box.encrypt(share))
    return encode(TAG, commitments, c, z, sealed)


def _read(dealing: bytes) -> tuple[list[bytes], bytes, bytes, list[bytes]]:
    """The parts of a dealing, checked for shape and valid points, not for its proof."""
    commitments, c, z, sealed = decode(dealing, TAG, 4, "dealing")
    check_list(commitments, "list of commitments in the dealing")
    if not 1 <= len(commitments) <= MAX_TRUSTEES:
        raise CryptoError("The dealing has a wrong number of commitments.")
    for point in commitments:
        check_point(point, "commitment in the dealing")
    check_scalar(c, "proof in the dealing")
    check_scalar(z, "proof in the dealing")
    check_list(sealed, "list of sealed shares in the dealing")
    if not 1 <= len(sealed) <= MAX_TRUSTEES:
        raise CryptoError("The dealing has a wrong number of sealed shares.")
    if any(not isinstance(s, bytes) or len(s) != SEALED_BYTES for s in sealed):
        raise CryptoError("A sealed share in the dealing has the wrong size.")
    return commitments, c, z, sealed


def dealing_check(
    context: bytes, threshold: int, trustees: Sequence[bytes], dealing: bytes
) -> None:
    """Everyone's checks of a dealing: its shape, its points and its proof."""
    _check_setup(threshold, trustees)
    commitments, c, z, sealed = _read(dealing)
    if len(commitments) != threshold:
        raise CryptoError("The dealing is made for a different number of trustees needed.")
    if len(sealed) != len(trustees):
        raise CryptoError("The dealing does not have one sealed share per trustee.")
    parts = _proof_parts(context, threshold, trustees, commitments)
    if not schnorr_verify("dealing", parts, commitments[0], c, z):
        raise CryptoError(
            "The dealing's proof does not hold: it is forged or made for another poll."
        )


def share_open(
    context: bytes,
    threshold: int,
    trustees: Sequence[bytes],
    dealings: Sequence[bytes],
    index: int,
    member: nacl.signing.SigningKey,
) -> bytes:
    """Trustee `index` (from 1) opens its share of every dealing, checks each, and sums them."""
    _check_setup(threshold, trustees)
    if isinstance(index, bool) or not isinstance(index, int) or not 1 <= index <= len(trustees):
        raise CryptoError("There is no trustee with this number.")
    if member.verify_key.encode() != trustees[index - 1]:
        raise CryptoError(f"This member is not trustee number {index}.")
    if not dealings:
        raise CryptoError("There are no dealings to open.")
    box = nacl.public.SealedBox(member.to_curve25519_private_key())
    combined = SCALAR_ZERO
    for position, dealing in enumerate(dealings):
        name = f"Dealing {position + 1} of {len(dealings)}"
        try:
            dealing_check(context, threshold, trustees, dealing)
        except CryptoError as e:
            raise ShareError(f"{name} is refused: {e}", position) from None
        commitments, _, _, sealed = _read(dealing)
        try:
            share = box.decrypt(sealed[index - 1])
            check_scalar(share, "share")
        except (nacl.exceptions.CryptoError, CryptoError):
            raise ShareError(
                f"{name} sent trustee {index} a share that cannot be opened.", position
            ) from None
        if base_mul(share) != _evaluate(commitments, index):
            raise ShareError(
                f"{name} sent trustee {index} a share that does not match its public commitments.",
                position,
            )
        combined = s_add(combined, share)
    return combined


def _all_commitments(dealings: Sequence[bytes]) -> list[list[bytes]]:
    if not dealings:
        raise CryptoError("There are no dealings yet.")
    read = [_read(d) for d in dealings]
    if len({(len(r[0]), len(r[3])) for r in read}) != 1:
        raise CryptoError("The dealings do not agree on the number of trustees.")
    # A copied dealing adds nothing its copier knows, but it is always a mistake or a trick.
    if len({r[0][0] for r in read}) != len(read):
        raise CryptoError("Two dealings are the same.")
    return [r[0] for r in read]


def poll_key(dealings: Sequence[bytes]) -> bytes:
    """The poll's public key: the sum of every dealing's first commitment."""
    return total([c[0] for c in _all_commitments(dealings)])


def trustee_key(dealings: Sequence[bytes], index: int) -> bytes:
    """X_index = x_index·G, computed from the public commitments alone."""
    commitments = _all_commitments(dealings)
    n = len(_read(dealings[0])[3])
    if isinstance(index, bool) or not isinstance(index, int) or not 1 <= index <= n:
        raise CryptoError("There is no trustee with this number.")
    # Sum the commitments coefficient by coefficient first: one multiplication per degree.
    sums = [total(column) for column in zip(*commitments, strict=True)]
    return _evaluate(sums, index)
