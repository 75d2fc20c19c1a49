"""Blobs: files sealed into content-addressed chunks that open only whole, in order, with their
key; a chunk that does not match its hash is never kept."""

from __future__ import annotations

import io
import os
import stat

import pytest

from apps.core import blobs

THREAD = b"\x07" * 32
LIMIT = 64 * 1024 * 1024


@pytest.fixture(autouse=True)
def _data(data_dir):
    return data_dir


def _seal(data: bytes, limit: int = LIMIT) -> blobs.Sealed:
    return blobs.seal(THREAD, io.BytesIO(data), limit=limit)


@pytest.mark.parametrize(
    "size", [0, 1, blobs.CHUNK - 1, blobs.CHUNK, blobs.CHUNK + 1, 3 * blobs.CHUNK + 5]
)
def test_a_sealed_file_opens_to_the_same_bytes(size):
    data = os.urandom(size)
    sealed = _seal(data)
    assert sealed.size == size
    assert len(sealed.chunks) == -(-size // blobs.CHUNK)
    assert b"".join(blobs.open_blob(THREAD, sealed.key, sealed.chunks)) == data


def test_chunks_are_ciphertext_named_by_their_hash_and_owner_only(data_dir):
    data = b"secret words " * 1000
    sealed = _seal(data)
    (chunk,) = sealed.chunks
    path = data_dir / "blobs" / THREAD.hex() / chunk.hex()
    stored = path.read_bytes()
    assert b"secret words" not in stored
    assert blobs.chunk_hash(stored) == chunk
    assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


def test_the_same_file_sealed_twice_shares_nothing():
    data = os.urandom(1000)
    assert _seal(data).chunks != _seal(data).chunks  # a key per file: no equality leak


def test_a_wrong_key_does_not_open_and_a_damaged_chunk_is_dropped(data_dir):
    sealed = _seal(os.urandom(blobs.CHUNK + 10))
    with pytest.raises(blobs.BlobError, match="does not open"):
        list(blobs.open_blob(THREAD, bytes(32), sealed.chunks))
    path = data_dir / "blobs" / THREAD.hex() / sealed.chunks[1].hex()
    data = bytearray(path.read_bytes())
    data[0] ^= 1
    path.write_bytes(bytes(data))
    # Damaged on disk: found by its hash, deleted, and missing (to be fetched again).
    with pytest.raises(blobs.Missing) as missing:
        list(blobs.open_blob(THREAD, sealed.key, sealed.chunks))
    assert missing.value.chunks == [sealed.chunks[1]]
    assert not path.exists()
    assert blobs.verify(THREAD, sealed.chunks) == [sealed.chunks[1]]


def test_chunks_cannot_be_reordered():
    sealed = _seal(os.urandom(2 * blobs.CHUNK))
    with pytest.raises(blobs.BlobError, match="chunk 0 does not open"):
        list(blobs.open_blob(THREAD, sealed.key, list(reversed(sealed.chunks))))


def test_missing_chunks_are_named_before_anything_is_read(data_dir):
    sealed = _seal(os.urandom(2 * blobs.CHUNK))
    (data_dir / "blobs" / THREAD.hex() / sealed.chunks[1].hex()).unlink()
    with pytest.raises(blobs.Missing) as missing:
        next(blobs.open_blob(THREAD, sealed.key, sealed.chunks))
    assert missing.value.chunks == [sealed.chunks[1]]
    assert blobs.missing(THREAD, sealed.chunks) == [sealed.chunks[1]]


def test_only_a_chunk_that_matches_its_hash_is_kept():
    data = b"a chunk from a peer"
    with pytest.raises(blobs.BlobError, match="does not match its hash"):
        blobs.chunk_put(THREAD, blobs.chunk_hash(b"something else"), data)
    big = b"x" * (blobs.CHUNK + blobs.OVERHEAD + 1)
    with pytest.raises(blobs.BlobError, match="does not match its hash"):
        blobs.chunk_put(THREAD, blobs.chunk_hash(big), big)
    blobs.chunk_put(THREAD, blobs.chunk_hash(data), data)
    assert blobs.chunk_read(THREAD, blobs.chunk_hash(data)) == data
    assert blobs.chunk_read(b"\x08" * 32, blobs.chunk_hash(data)) is None  # filed per thread


def test_a_file_over_the_limit_is_refused():
    with pytest.raises(blobs.BlobError, match="larger than 1 MiB"):
        _seal(os.urandom(blobs.CHUNK + 1), limit=blobs.CHUNK)
