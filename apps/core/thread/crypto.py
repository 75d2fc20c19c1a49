"""Cryptographic building blocks, each domain-separated.

Every signature is over ``signing_input(tag, thread, body)``: the canonical CBOR of
``["sereus", PROTOCOL_VERSION, tag, thread, body]``. The tag names what is signed ("op",
"device-cert", ...), so nothing signed for one purpose, thread or protocol version verifies as
another. Every derived key names its purpose and thread in the HKDF info for the same reason.

Primitives: Ed25519 signatures and X25519 sealed boxes (PyNaCl / libsodium), XChaCha20-Poly1305
for op bodies, BLAKE2b-256 hashes, HKDF-SHA256 (``cryptography``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import nacl.bindings
import nacl.exceptions
import nacl.public
import nacl.signing
import nacl.utils
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# PyNaCl's cffi binding of libsodium (what ``nacl.bindings`` wraps), for ``aead_decrypt``.
from nacl._sodium import ffi as _ffi
from nacl._sodium import lib as _sodium

from apps.core.thread import codec

PROTOCOL_VERSION = 1
KEY_SIZE = 32
SIG_SIZE = 64
NONCE_SIZE = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
AEAD_OVERHEAD = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_ABYTES


class CryptoError(ValueError):
    """A signature that does not verify or a box that does not open."""


def blake2b256(data: bytes, *, person: bytes = b"") -> bytes:
    return hashlib.blake2b(data, digest_size=32, person=person).digest()


def hkdf(secret: bytes, *, info: bytes, length: int = KEY_SIZE) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(secret)


_PREFIXES: dict[tuple[str, bytes], bytes] = {}


def signing_input(tag: str, thread: bytes, body: bytes) -> bytes:
    """The canonical CBOR of ``["sereus", PROTOCOL_VERSION, tag, thread, body]``, framed by hand
    so that a large body is not encoded again (this runs for every op validated)."""
    prefix = _PREFIXES.get((tag, thread))
    if prefix is None:
        prefix = codec.encode(["sereus", PROTOCOL_VERSION, tag, thread, b""])[:-1]
        if len(_PREFIXES) < 4096:
            _PREFIXES[(tag, thread)] = prefix
    return prefix + codec.head(2, len(body)) + body


def sign(key: nacl.signing.SigningKey, tag: str, thread: bytes, body: bytes) -> bytes:
    """Ed25519 signature (detached) over ``signing_input(tag, thread, body)``.

    libsodium through PyNaCl's cffi module, as in ``verify``: ``key.sign`` also copies the
    signed message (signature and the whole message) out into Python and splits it again, and
    checks its arguments in Python, for every op this node writes; here only the signature,
    the first 64 bytes, is taken. Ed25519 is deterministic: the same bytes either way."""
    message = signing_input(tag, thread, body)
    secret = getattr(key, "_signing_key", None)  # seed + public key, as PyNaCl keeps it
    if type(secret) is not bytes or len(secret) != 2 * KEY_SIZE:
        return key.sign(message).signature
    signed = _ffi.new("unsigned char[]", len(message) + SIG_SIZE)
    if _sodium.crypto_sign(signed, _ffi.NULL, message, len(message), secret) != 0:
        raise CryptoError("signing failed")
    return _ffi.buffer(signed, SIG_SIZE)[:]


def verify(public_key: bytes, signature: bytes, tag: str, thread: bytes, body: bytes) -> None:
    """Raise CryptoError unless ``signature`` is ``public_key``'s over (tag, thread, body)."""
    if len(public_key) != KEY_SIZE or len(signature) != SIG_SIZE:
        raise CryptoError("malformed key or signature")
    # libsodium through PyNaCl's cffi module, as in ``aead_decrypt``: the wrapper's argument
    # checks cost a tenth of the check itself here.
    signed = signature + signing_input(tag, thread, body)
    opened = _ffi.new("unsigned char[]", len(signed))
    try:
        bad = _sodium.crypto_sign_open(opened, _ffi.NULL, signed, len(signed), public_key)
    except TypeError as exc:  # not bytes
        raise CryptoError("malformed key or signature") from exc
    if bad:
        raise CryptoError(f"bad {tag} signature")


def aead_encrypt(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """XChaCha20-Poly1305 with a random 24-byte nonce, returned in front of the ciphertext.

    Through PyNaCl's cffi module as ``aead_decrypt`` is (this runs for every op this node
    writes); arguments of other types go through PyNaCl's wrapper, which says what is wrong."""
    nonce = nacl.utils.random(NONCE_SIZE)
    if len(key) != KEY_SIZE or type(plaintext) is not bytes or type(aad) is not bytes:
        return nonce + nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
            plaintext, aad, nonce, key
        )
    size = len(plaintext) + AEAD_OVERHEAD
    box = _ffi.new("unsigned char[]", size)
    _sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
        box, _ffi.NULL, plaintext, len(plaintext), aad, len(aad), _ffi.NULL, nonce, key
    )
    return nonce + _ffi.buffer(box, size)[:]


def aead_decrypt(key: bytes, box: bytes, aad: bytes) -> bytes:
    """Open a box made by ``aead_encrypt``. This runs for every data op validated: libsodium is
    called through PyNaCl's own cffi module, without the argument checks of its Python wrapper
    (they cost three times the decryption of a small op); the sizes are checked here."""
    size = len(box) - NONCE_SIZE - AEAD_OVERHEAD
    if size < 0:
        raise CryptoError("ciphertext too short")
    if len(key) != KEY_SIZE or type(aad) is not bytes:
        raise CryptoError("ciphertext does not open with this key")
    plain = _ffi.new("unsigned char[]", max(size, 1))
    opened = _sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
        plain,
        _ffi.NULL,
        _ffi.NULL,
        box[NONCE_SIZE:],
        len(box) - NONCE_SIZE,
        aad,
        len(aad),
        box[:NONCE_SIZE],
        key,
    )
    if opened != 0:
        raise CryptoError("ciphertext does not open with this key")
    return _ffi.buffer(plain, size)[:]


def aead_open_first(keys: Iterable[bytes], box: bytes, aad: bytes) -> tuple[bytes, bytes] | None:
    """(key, plaintext) of the first of ``keys`` the box opens with, or None."""
    for key in keys:
        try:
            return key, aead_decrypt(key, box, aad)
        except CryptoError:
            continue
    return None


def seal(recipient_ed25519_public: bytes, plaintext: bytes) -> bytes:
    """An anonymous sealed box to the X25519 form of an Ed25519 public key."""
    x_public = nacl.public.PublicKey(
        nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(recipient_ed25519_public)
    )
    return nacl.public.SealedBox(x_public).encrypt(plaintext)


def unseal(recipient: nacl.signing.SigningKey, box: bytes) -> bytes:
    try:
        return nacl.public.SealedBox(recipient.to_curve25519_private_key()).decrypt(box)
    except nacl.exceptions.CryptoError as exc:
        raise CryptoError("sealed box does not open with this key") from exc


def signing_key_from_seed(seed: bytes) -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(seed)


def public_key_valid(public_key: bytes) -> bool:
    """True for a 32-byte string that is a point on the Ed25519 curve (convertible to X25519)."""
    if len(public_key) != KEY_SIZE:
        return False
    try:
        nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(public_key)
    except (nacl.exceptions.RuntimeError, nacl.exceptions.ValueError):
        return False
    return True
