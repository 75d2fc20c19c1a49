"""Blobs: files shared in a thread (attachments), encrypted, chunked and content-addressed.

A file is cut into chunks of 1 MiB, each sealed with XChaCha20-Poly1305 under a key made for
that file alone (the chunk's index is the nonce, so a chunk cannot be moved to another place)
and named by the BLAKE2b-256 hash of its ciphertext. What a reader needs, the key and the list
of chunk hashes, travels in the thread as a row (so only members can read it, and the signed op
fixes the list); the chunks travel apart, fetched from any member node that has them
(``/sereus/blob/1.0.0``), and are checked against their hash before they are kept.

Chunks are kept per thread, ``<data>/blobs/<thread>/<hash>``: a node serves a chunk only to
devices of the thread it is filed under.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_decrypt,
    crypto_aead_xchacha20poly1305_ietf_encrypt,
)
from nacl.exceptions import CryptoError

CHUNK = 1024 * 1024  # plaintext bytes per chunk
OVERHEAD = 16  # the AEAD tag
HASH = 32
KEY = 32
AAD = b"sereus/blob/v1"


class BlobError(ValueError):
    """A blob that cannot be read: a chunk is missing, altered, or the description is wrong."""


class Missing(BlobError):
    def __init__(self, chunks: list[bytes]) -> None:
        super().__init__(f"{len(chunks)} chunks are not here yet")
        self.chunks = chunks


@dataclass(frozen=True)
class Sealed:
    key: bytes
    chunks: list[bytes]
    size: int


def chunk_hash(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=HASH).digest()


def _dir(thread: bytes) -> Path:
    return Path(settings.DATA_DIR) / "blobs" / thread.hex()


def _path(thread: bytes, chunk: bytes) -> Path:
    if len(chunk) != HASH:
        raise BlobError("a chunk hash is 32 bytes")
    return _dir(thread) / chunk.hex()


def has(thread: bytes, chunk: bytes) -> bool:
    return _path(thread, chunk).exists()


def missing(thread: bytes, chunks: Iterable[bytes]) -> list[bytes]:
    return [c for c in chunks if not has(thread, c)]


def chunk_read(thread: bytes, chunk: bytes) -> bytes | None:
    """The chunk, if it is here and intact. One damaged on disk is deleted (and reads as not
    here), so it is fetched again rather than served or opened as it is."""
    path = _path(thread, chunk)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    if chunk_hash(data) != chunk:
        path.unlink(missing_ok=True)
        return None
    return data


def verify(thread: bytes, chunks: list[bytes]) -> list[bytes]:
    """The chunks not here intact (damaged ones are deleted on the way)."""
    return [chunk for chunk in chunks if chunk_read(thread, chunk) is None]


def chunk_put(thread: bytes, chunk: bytes, data: bytes) -> None:
    """Keep a chunk that matches its hash (anything else is refused, whoever sent it)."""
    if len(data) > CHUNK + OVERHEAD or chunk_hash(data) != chunk:
        raise BlobError("the chunk does not match its hash")
    path = _path(thread, chunk)
    if path.exists():
        return
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    # Owner-only whatever the umask: these are the thread's (encrypted) files.
    with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)


def chunk_drop(thread: bytes, chunk: bytes) -> int:
    """Forget a chunk this node holds (its file was deleted): 1 if it was here, else 0."""
    try:
        _path(thread, chunk).unlink()
    except FileNotFoundError:
        return 0
    return 1


def _nonce(index: int) -> bytes:
    return bytes(16) + index.to_bytes(8, "big")


def seal(thread: bytes, source: BinaryIO, *, limit: int) -> Sealed:
    """Encrypt ``source`` into chunks filed under ``thread``; refuses more than ``limit`` bytes
    (chunks already written stay as unreferenced files: nothing points at them)."""
    key = secrets.token_bytes(KEY)
    chunks: list[bytes] = []
    size = 0
    while block := source.read(CHUNK):
        size += len(block)
        if size > limit:
            raise BlobError(f"the file is larger than {limit // (1024 * 1024)} MiB")
        data = crypto_aead_xchacha20poly1305_ietf_encrypt(block, AAD, _nonce(len(chunks)), key)
        chunk = chunk_hash(data)
        chunk_put(thread, chunk, data)
        chunks.append(chunk)
    return Sealed(key, chunks, size)


def open_blob(thread: bytes, key: bytes, chunks: list[bytes]) -> Iterator[bytes]:
    """The file's bytes, chunk by chunk (``Missing`` before the first if any chunk is not here;
    ``BlobError`` if one does not open with the key)."""
    absent = missing(thread, chunks)
    if absent:
        raise Missing(absent)
    if len(key) != KEY:
        raise BlobError("a blob key is 32 bytes")
    for index, chunk in enumerate(chunks):
        data = chunk_read(thread, chunk)
        if data is None:
            raise Missing([chunk])
        try:
            yield crypto_aead_xchacha20poly1305_ietf_decrypt(data, AAD, _nonce(index), key)
        except CryptoError:
            raise BlobError(f"chunk {index} does not open with the blob's key") from None
