"""The storage engine (pure): chunking, naming, sealing, k-of-n shares, repair and audits."""

from __future__ import annotations

import hashlib
import io
import itertools
import random
import threading

import nacl.bindings
import pytest
import zstandard
from pyfastcdc import FastCDC

from apps.storage import engine, keys

MASTER = bytes(range(32))
OTHER = bytes(range(1, 33))
DEDUP, ROOT, AUDIT = keys.dedup_key(MASTER), keys.seal_root(MASTER), keys.audit_key(MASTER)


def _bytes(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def _text(n: int, seed: int) -> bytes:
    rng = random.Random(seed)
    words = [b"storage", b"holder", b"share", b"chunk", b"party", b"seal", b"the", b"a"]
    out = bytearray()
    while len(out) < n:
        out += rng.choice(words) + b" "
    return bytes(out[:n])


def _packed(plain: bytes, k: int, n: int, root: bytes = ROOT, dedup: bytes = DEDUP):
    return engine.pack(plain, chunk=keys.chunk_id(dedup, plain), seal_root=root, k=k, n=n)


def _unpack(p: engine.Packed, shares: dict[int, bytes], root: bytes = ROOT) -> bytes:
    return engine.unpack(
        shares, chunk=p.chunk, dedup=DEDUP, seal_root=root, k=p.k, n=p.n, packed=p.packed
    )


PLAIN = _bytes(300_000, 1) + _text(500_000, 2)


@pytest.mark.parametrize(("k", "n"), [(1, 1), (1, 2), (2, 3), (2, 4), (3, 5), (8, 16)])
def test_any_k_shares_restore_the_chunk_and_fewer_do_not(k: int, n: int) -> None:
    p = _packed(PLAIN, k, n)
    assert (p.k, p.n, p.size, len(p.shares), len(p.digests)) == (k, n, len(PLAIN), n, n)
    assert p.digests == [keys.share_digest(s) for s in p.shares]
    assert p.packed < p.size  # the text half compresses
    combos = list(itertools.combinations(range(n), k))
    for idx in random.Random(k * 100 + n).sample(combos, min(len(combos), 12)):
        assert _unpack(p, {i: p.shares[i] for i in idx}) == PLAIN
    assert _unpack(p, dict(enumerate(p.shares))) == PLAIN  # more than k is fine
    if k > 1:
        with pytest.raises(engine.EngineError, match=f"{k} are needed"):
            _unpack(p, {i: p.shares[i] for i in range(1, k)})


@pytest.mark.parametrize(("k", "n"), [(1, 2), (2, 4), (3, 5), (8, 16)])
def test_reshare_rebuilds_every_share_byte_identical(k: int, n: int) -> None:
    p = _packed(PLAIN, k, n)
    rng = random.Random(n)
    for index in range(n):
        others = [i for i in range(n) if i != index] or [index]
        given = {i: p.shares[i] for i in rng.sample(others, k)}
        assert engine.reshare(given, k=k, n=n, packed=p.packed, index=index) == p.shares[index]


def test_a_flipped_bit_is_caught_by_the_seal_and_by_the_digest_on_repair() -> None:
    p = _packed(PLAIN, 2, 4)
    bad = bytearray(p.shares[0])
    bad[1000] ^= 0x10
    with pytest.raises(engine.EngineError, match="seal does not open"):
        _unpack(p, {0: bytes(bad), 1: p.shares[1]})
    # Repair never opens the seal: the regenerated share is wrong and its digest says so.
    again = engine.reshare({0: bytes(bad), 1: p.shares[1]}, k=2, n=4, packed=p.packed, index=3)
    assert keys.share_digest(again) != p.digests[3]
    # The sound shares still restore.
    assert _unpack(p, {2: p.shares[2], 3: p.shares[3]}) == PLAIN
    # What a holder sent instead of a share, at the right length or not, is not a share.
    sent = {0: "corrupt", 1: None, 2: b"\x00" * 7, 3: p.shares[3]}
    with pytest.raises(engine.EngineError, match="2 are needed and 1 usable was given"):
        _unpack(p, sent)  # type: ignore[arg-type]
    # A share cut short (or grown) is not used at all: the others are.
    assert _unpack(p, {0: p.shares[0][:-1], 1: p.shares[1], 2: p.shares[2]}) == PLAIN


def test_a_share_of_another_chunk_is_refused() -> None:
    p = _packed(_bytes(500_000, 8), 2, 4)  # incompressible: stored raw, same lengths
    same_len = _packed(_bytes(500_000, 9), 2, 4)
    other = _packed(PLAIN, 2, 4)
    assert len(same_len.shares[1]) == len(p.shares[1]) != len(other.shares[1])
    with pytest.raises(engine.EngineError, match="seal does not open"):
        _unpack(p, {0: p.shares[0], 1: same_len.shares[1]})
    with pytest.raises(engine.EngineError, match="do not decode"):
        _unpack(p, {0: p.shares[0], 1: other.shares[1]})
    # Its own shares under another id: the seal is bound to the chunk id.
    with pytest.raises(engine.EngineError, match="seal does not open"):
        engine.unpack(
            {0: p.shares[0], 1: p.shares[1]},
            chunk=same_len.chunk,
            dedup=DEDUP,
            seal_root=ROOT,
            k=2,
            n=4,
            packed=p.packed,
        )


def test_another_partys_seal_does_not_open_and_its_ids_differ() -> None:
    p = _packed(PLAIN, 2, 3)
    with pytest.raises(engine.EngineError, match="another party"):
        _unpack(p, {0: p.shares[0], 1: p.shares[1]}, root=keys.seal_root(OTHER))
    assert keys.chunk_id(keys.dedup_key(OTHER), PLAIN) != p.chunk
    # Within a party the same content gets the same id and the same shares.
    again = _packed(bytes(PLAIN), 2, 3)
    assert again.chunk == p.chunk
    assert again.shares == p.shares


def test_bad_k_n_and_packed_are_refused_in_words() -> None:
    for k, n in [(0, 1), (2, 1), (1, 17)]:
        with pytest.raises(engine.EngineError, match="shares"):
            _packed(b"x", k, n)
    p = _packed(PLAIN, 2, 4)
    with pytest.raises(engine.EngineError, match="do not decode"):
        engine.unpack(
            dict(enumerate(p.shares)), chunk=p.chunk, dedup=DEDUP, seal_root=ROOT, k=2, n=4,
            packed=engine.PACKED_MAX + 1,
        )  # fmt: skip
    with pytest.raises(engine.EngineError, match="no share with that number"):
        engine.reshare(dict(enumerate(p.shares)), k=2, n=4, packed=p.packed, index=4)


def test_redundancy() -> None:
    assert [engine.redundancy(h) for h in (1, 2, 3, 4, 5, 16, 40)] == [
        (1, 1), (1, 2), (2, 3), (2, 4), (3, 5), (8, 16), (8, 16),
    ]  # fmt: skip
    with pytest.raises(engine.EngineError, match="no holder"):
        engine.redundancy(0)


def test_incompressible_data_is_stored_raw() -> None:
    plain = _bytes(1 << 20, 3)
    p = _packed(plain, 1, 1)
    assert p.packed == len(plain) + 1 + 16  # the form byte and the tag, nothing more
    assert _unpack(p, {0: p.shares[0]}) == plain


def _seal_body(body: bytes, chunk: bytes) -> bytes:
    # A body sealed with the party's own key: only a bug or the party itself could make one;
    # the engine must still refuse it without allocating for what it claims.
    return nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
        body, engine._AAD + chunk, engine._nonce(chunk), keys.chunk_key(ROOT, chunk)
    )


def test_a_decompression_bomb_is_refused() -> None:
    chunk = keys.chunk_id(DEDUP, b"bomb")
    bomb = zstandard.ZstdCompressor(level=19).compress(b"\x00" * (64 << 20))
    assert len(bomb) < 1 << 20
    unsized = zstandard.ZstdCompressor(write_content_size=False).compress(b"\x00" * 1000)
    raw_big = b"\x00" + b"\x00" * (engine.CHUNK_MAX + 1)
    for body, words in [
        (b"\x01" + bomb, "claims to be larger"),
        (b"\x01" + unsized, "claims to be larger"),
        (b"\x01" + b"not zstd at all", "compressed contents are damaged"),
        (b"\x07" + b"abc", "form this node does not know"),
        (raw_big, "do not decode"),  # longer than any sealed chunk: refused first
    ]:
        sealed = _seal_body(body, chunk)
        with pytest.raises(engine.EngineError, match=words):
            engine.unpack(
                {0: sealed}, chunk=chunk, dedup=DEDUP, seal_root=ROOT, k=1, n=1,
                packed=len(sealed),
            )  # fmt: skip


def test_a_sealed_chunk_whose_contents_do_not_match_its_id_is_refused() -> None:
    chunk = keys.chunk_id(DEDUP, b"what it should be")
    sealed = _seal_body(b"\x00something else", chunk)
    with pytest.raises(engine.EngineError, match="do not match its name"):
        engine.unpack(
            {0: sealed}, chunk=chunk, dedup=DEDUP, seal_root=ROOT, k=1, n=1, packed=len(sealed)
        )


def _ids(data: bytes) -> list[bytes]:
    return [keys.chunk_id(DEDUP, c) for c in engine.chunks_of(io.BytesIO(data))]


def test_chunking_is_content_defined_and_bounded() -> None:
    data = _bytes(20 << 20, 4)
    pieces = list(engine.chunks_of(io.BytesIO(data)))
    assert b"".join(pieces) == data
    assert all(engine.CHUNK_MIN <= len(c) <= engine.CHUNK_MAX for c in pieces[:-1])
    assert 10 <= len(pieces) <= 40  # about 1 MiB on average
    before = set(_ids(data))
    after = _ids(b"0123456789" + data)
    assert len([c for c in after if c in before]) >= len(after) - 2
    assert _ids(data) == _ids(bytes(data))  # same content, same ids


class _Trickle:
    """A stream that only has ``read`` and returns little at a time (a pipe)."""

    def __init__(self, data: bytes) -> None:
        self._data, self._at = data, 0

    def read(self, n: int) -> bytes:
        n = min(n, 70_001)
        out = self._data[self._at : self._at + n]
        self._at += len(out)
        return out


def test_chunking_a_read_only_stream_cuts_the_same() -> None:
    data = _bytes(6 << 20, 5)
    assert b"".join(engine.chunks_of(_Trickle(data))) == data  # type: ignore[arg-type]
    assert list(engine.chunks_of(io.BytesIO(b""))) == []


def _whole_cuts(data: bytes) -> list[bytes]:
    """The pieces of ``data`` cut in one go, as pyfastcdc cuts a buffer it has whole."""
    cdc = FastCDC(
        engine.CHUNK_AVG - engine.CHUNK_MIN,
        min_size=engine.CHUNK_MIN,
        max_size=engine.CHUNK_MAX,
        normalized_chunking=1,
    )
    return [bytes(p.data) for p in cdc.cut_buf(data)]


@pytest.mark.parametrize("size", [0, 1, 5000, engine.CHUNK_MIN + 1, 9 << 20, 21 << 20])
def test_chunking_in_blocks_cuts_where_the_whole_file_is_cut(tmp_path, size) -> None:
    # Read in 8 MiB blocks from a file, from a stream that reads 70 kB at a time, or from
    # memory: the same pieces as cutting the whole content at once (no cut moved by where a
    # read block ended). Text, so that cuts fall at the content's places, not the maximum.
    data = _text(size, 8)
    want = _whole_cuts(data)
    path = tmp_path / "f"
    path.write_bytes(data)
    with open(path, "rb", buffering=0) as raw:
        assert list(engine.chunks_of(raw)) == want
    with open(path, "rb") as buffered:
        assert list(engine.chunks_of(buffered)) == want
    assert list(engine.chunks_of(_Trickle(data))) == want  # type: ignore[arg-type]
    assert list(engine.chunks_of(io.BytesIO(data))) == want
    if size > 9 << 20:  # the cuts straddle the first read block's end
        assert sum(len(p) for p in want[:-1]) > 8 << 20, [len(p) for p in want]


def test_audit_answers_match_the_share_only() -> None:
    p = _packed(PLAIN, 2, 4)
    digest = p.digests[0]
    expected = engine.audit_answers(p.shares[0], digest, audit=AUDIT, start=0, rounds=4)
    assert len(expected) == 4 * engine.ANSWER
    for r in range(4):
        nonce = keys.audit_nonce(AUDIT, digest, r)
        assert engine.answer_matches(expected, r, 0, keys.audit_answer(nonce, p.shares[0]))
        assert not engine.answer_matches(expected, r, 0, keys.audit_answer(nonce, p.shares[1]))
        wrong_round = keys.audit_answer(keys.audit_nonce(AUDIT, digest, r + 1), p.shares[0])
        assert not engine.answer_matches(expected, r, 0, wrong_round)
    # Later rounds, counted from where the refreshed answers start.
    later = engine.audit_answers(p.shares[0], digest, audit=AUDIT, start=16, rounds=16)
    answer = keys.audit_answer(keys.audit_nonce(AUDIT, digest, 20), p.shares[0])
    assert engine.answer_matches(later, 20, 16, answer)
    assert not engine.answer_matches(later, 15, 16, answer)  # before the answers kept
    assert not engine.answer_matches(later, 32, 16, answer)  # past them
    assert not engine.answer_matches(later, 20, 16, b"")


def test_packer_keeps_order_skips_and_bounds_what_is_in_flight() -> None:
    plains = [_bytes(300_000, 100 + i) for i in range(30)]
    ids = [keys.chunk_id(DEDUP, p) for p in plains]
    have = set(ids[::3])
    state = {"pulled": 0, "given": 0, "most": 0}
    skip_threads: set[str] = set()

    def pieces():
        for p in plains:
            state["pulled"] += 1
            state["most"] = max(state["most"], state["pulled"] - state["given"])
            yield p, 2, 3

    def skip(chunk: bytes) -> bool:
        skip_threads.add(threading.current_thread().name)
        return chunk in have

    packer = engine.Packer(dedup=DEDUP, seal_root=ROOT, workers=2)
    out = []
    for chunk, packed in packer.pack_all(pieces(), skip=skip):
        state["given"] += 1
        out.append((chunk, packed))
    assert [c for c, _ in out] == ids
    for (chunk, packed), plain in zip(out, plains, strict=True):
        if chunk in have:
            assert packed is None
        else:
            assert packed is not None
            assert packed.chunk == chunk
            assert packed == _packed(plain, 2, 3)
    assert 1 <= state["most"] <= packer.window == 8  # 4 * workers
    assert skip_threads == {threading.current_thread().name}


def test_packer_stops_cleanly_when_the_consumer_stops() -> None:
    plains = [_bytes(100_000, 200 + i) for i in range(20)]
    pulled = []

    def pieces():
        for p in plains:
            pulled.append(p)
            yield p, 1, 2

    packer = engine.Packer(dedup=DEDUP, seal_root=ROOT)
    gen = packer.pack_all(pieces())
    next(gen)
    gen.close()
    assert len(pulled) <= packer.window + 1  # the window, and one more after the first given


def test_packer_packs_a_chunk_repeated_in_the_stream_once() -> None:
    a, b = _bytes(200_000, 300), _bytes(200_000, 301)
    asked = []

    def skip(chunk: bytes) -> bool:
        asked.append(chunk)
        return False

    out = list(
        engine.Packer(dedup=DEDUP, seal_root=ROOT).pack_all(
            [(a, 1, 2), (b, 1, 2), (a, 1, 2), (a, 1, 2), (b, 1, 2)], skip=skip
        )
    )
    ida, idb = keys.chunk_id(DEDUP, a), keys.chunk_id(DEDUP, b)
    assert [c for c, _ in out] == [ida, idb, ida, ida, idb]
    assert [p is not None for _, p in out] == [True, True, False, False, False]
    assert asked == [ida, idb]  # in the stream's order, once each


@pytest.mark.parametrize(("k", "n"), [(1, 2), (2, 4)])
def test_packer_given_the_audit_key_makes_each_shares_first_answers(k: int, n: int) -> None:
    plain = _bytes(150_000, 400)
    packer = engine.Packer(dedup=DEDUP, seal_root=ROOT, audit=AUDIT)
    [(_, packed)] = list(packer.pack_all([(plain, k, n)]))
    assert packed is not None
    assert packed.answers == [
        engine.audit_answers(s, d, audit=AUDIT, start=0, rounds=engine.AUDIT_ROUNDS)
        for s, d in zip(packed.shares, packed.digests, strict=True)
    ]
    assert _packed(plain, k, n).answers == []  # pack alone makes none


def test_ids_and_share_names_are_blake2b_whichever_library_hashes() -> None:
    # The formats snapshots and holders' files are named by: keyed BLAKE2b-256 of a chunk's
    # plaintext, plain BLAKE2b-256 of a share, as hashlib makes them (any buffer type).
    data = _text(300_000, 12)
    assert keys.chunk_id(DEDUP, data) == hashlib.blake2b(data, digest_size=32, key=DEDUP).digest()
    assert keys.share_digest(data) == hashlib.blake2b(data, digest_size=32).digest()
    assert (
        keys.share_digest(memoryview(data)[5:])
        == hashlib.blake2b(data[5:], digest_size=32).digest()
    )
    assert keys.share_digest(b"") == hashlib.blake2b(b"", digest_size=32).digest()
