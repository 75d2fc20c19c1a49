"""What the storage app derives from the party's master secret, and the signatures its nodes
exchange (ADR 25). All pure: no clock, no disk, no network.

- The **dedup key** names a chunk by a keyed hash of its plaintext (``chunk_id``): the same
  content gets the same id within the party, and a holder (or another party) cannot test
  whether a file it guesses is among the party's chunks.
- The **seal key** of a chunk is derived from the party's seal root and the chunk's id, so every
  device of the party (and a node restored from the phrase) can open what another sealed,
  without any key travelling; each key seals exactly one plaintext.
- The **audit key** makes the nonces of a share's audits (``audit_nonce``): unknown to the holder
  until asked, so answering needs the share itself.
- A **terms** signature by the party key over a holding thread's id tells the holder whose
  shares the thread's owner asks it to keep; a **release** signature by the party key names the
  shares a holder may delete (it deletes nothing on anything less).

Requests to holders carry the cadre's party proof (``apps.cadre.keys.party_proof_sign``) bound
to both ends of the connection, with the purposes in ``PURPOSE_*``.
"""

from __future__ import annotations

import hashlib

import nacl.signing
from nacl.bindings import crypto_generichash

from apps.cadre import keys as cadre_keys
from apps.core.thread import codec, crypto

ID_SIZE = 32
_NO_THREAD = b"\x00" * 32

PURPOSE_PUT = "storage/put"
PURPOSE_GET = "storage/get"
PURPOSE_AUDIT = "storage/audit"
PURPOSE_USAGE = "storage/usage"
PURPOSE_DEPOSIT = "storage/deposit"
PURPOSE_RELEASE = "storage/release"


class SignatureError(ValueError):
    """A terms or release signature that does not verify (in words)."""


def _derive(master: bytes, info: str) -> bytes:
    if len(master) != 32:
        raise ValueError("the master secret is 32 bytes")
    return crypto.hkdf(master, info=b"sereus/storage/v1/" + info.encode())


def dedup_key(master: bytes) -> bytes:
    return _derive(master, "dedup")


def seal_root(master: bytes) -> bytes:
    return _derive(master, "seal")


def audit_key(master: bytes) -> bytes:
    return _derive(master, "audit")


def _blake2b(data: bytes | bytearray | memoryview, key: bytes = b"") -> bytes:
    """BLAKE2b-256 of a large buffer, by libsodium: the same bytes as ``hashlib.blake2b``, about
    a fifth less CPU (its AVX2 code), and the GIL released while it runs."""
    return crypto_generichash.generichash_blake2b_salt_personal(
        data if isinstance(data, bytes) else bytes(data), digest_size=32, key=key
    )


def chunk_id(dedup: bytes, plaintext: bytes) -> bytes:
    """The chunk's id: BLAKE2b-256 of the plaintext keyed with the party's dedup key."""
    return _blake2b(plaintext, dedup)


def chunk_key(root: bytes, chunk: bytes) -> bytes:
    """The XChaCha20-Poly1305 key that seals chunk ``chunk`` (its id)."""
    return hashlib.blake2b(chunk, digest_size=32, key=root, person=b"sereus-chunkkey").digest()


def audit_nonce(audit: bytes, digest: bytes, round_: int) -> bytes:
    """The nonce of audit ``round_`` of the share whose digest is ``digest``."""
    return hashlib.blake2b(
        digest + round_.to_bytes(4, "big"), digest_size=32, key=audit, person=b"sereus-audit"
    ).digest()


def share_digest(share: bytes) -> bytes:
    """The share's name: BLAKE2b-256 of its bytes (no key: a holder checks it too)."""
    return _blake2b(share)


AUDIT_BLOCKS, AUDIT_BLOCK = 32, 1024  # an audit reads 32 KiB of a share at places the nonce picks


def audit_answer(nonce: bytes, share: bytes) -> bytes:
    """What a holder answers for an audit: BLAKE2b-256 over the nonce, the share's length and
    32 blocks of 1 KiB of the share at offsets drawn from the nonce (the whole share when it is
    that small). A spot check, not a hash of the whole share: the owner makes the answers of
    16 rounds for every share when it backs up, and hashing each share 16 times cost three times
    the rest of a backup. A holder that lost or altered a fraction f of a share still fails a
    round with probability 1-(1-f)^32 (10%: 97%; all of it: always), and it cannot know the
    blocks before it is asked. Repair and restore check whole shares against their digests."""
    h = hashlib.blake2b(nonce, digest_size=32, person=b"sereus-proof")
    h.update(len(share).to_bytes(8, "big"))
    if len(share) <= AUDIT_BLOCKS * AUDIT_BLOCK:
        h.update(share)
        return h.digest()
    picks = hashlib.shake_256(b"sereus-audit-picks" + nonce).digest(4 * AUDIT_BLOCKS)
    span = len(share) - AUDIT_BLOCK + 1
    view = memoryview(share)
    for i in range(AUDIT_BLOCKS):
        offset = int.from_bytes(picks[4 * i : 4 * i + 4], "big") % span
        h.update(view[offset : offset + AUDIT_BLOCK])
    return h.digest()


def party_key(master: bytes) -> nacl.signing.SigningKey:
    return cadre_keys.party_key(master)


def party_id(master: bytes) -> bytes:
    return cadre_keys.party_id(master)


def terms_sign(master: bytes, hold_thread: bytes) -> bytes:
    body = codec.encode({"hold": hold_thread})
    return crypto.sign(party_key(master), "storage-terms", _NO_THREAD, body)


def terms_verify(party: bytes, signature: bytes, hold_thread: bytes) -> None:
    body = codec.encode({"hold": hold_thread})
    try:
        crypto.verify(party, signature, "storage-terms", _NO_THREAD, body)
    except crypto.CryptoError as exc:
        raise SignatureError("the owner's terms do not carry its party's signature") from exc


def _release_body(holder: bytes, digests: list[bytes], at_ms: int) -> bytes:
    return codec.encode({"holder": holder, "shares": sorted(digests), "at": at_ms})


def release_sign(master: bytes, *, holder: bytes, digests: list[bytes], at_ms: int) -> bytes:
    """The party's signature releasing ``digests`` on the holder whose device key is
    ``holder``: it names the holder, so it cannot be replayed on another."""
    return crypto.sign(
        party_key(master), "storage-release", _NO_THREAD, _release_body(holder, digests, at_ms)
    )


def release_verify(
    party: bytes, signature: bytes, *, holder: bytes, digests: list[bytes], at_ms: int
) -> None:
    try:
        crypto.verify(
            party,
            signature,
            "storage-release",
            _NO_THREAD,
            _release_body(holder, digests, at_ms),
        )
    except crypto.CryptoError as exc:
        raise SignatureError("the release does not carry the owner's signature") from exc
