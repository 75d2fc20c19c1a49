"""``op_decode`` reads canonical ops straight from their bytes (``opread``): it must answer every
input exactly as the generic decoder does (``op_decode_general``): the same op with the same
fields, or the same refusal. Compared on ops at every size boundary of their fields, on
hand-made documents with a field out of range, and on random mutations of valid ops."""

from __future__ import annotations

import random
from typing import Any

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.core.thread import codec
from apps.core.thread.hlc import MAX_COUNTER, MAX_MILLIS, Stamp
from apps.core.thread.op import (
    MAX_DEPS,
    MAX_EPOCH,
    MAX_OP_SIZE,
    MAX_SEQ,
    OpShapeError,
    op_decode,
    op_decode_general,
    op_sign,
)
from apps.core.thread.opread import op_fields

KEY = nacl.signing.SigningKey(b"\x01" * 32)
DEVICE = bytes(KEY.verify_key)
THREAD = b"\x07" * 32
BOUNDS = [0, 1, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**48 - 1, 2**63 - 1]


def outcome(decode, raw: Any) -> tuple:
    try:
        op = decode(raw)
    except OpShapeError as exc:
        return ("refused", str(exc))
    fields = (op.thread, op.device, op.seq, op.prev, op.deps, op.hlc, op.epoch, op.kind)
    return ("op", *fields, op.body, op.sig, op.raw, op.hash, op.signed_bytes())


def same(raw: Any) -> None:
    assert outcome(op_decode, raw) == outcome(op_decode_general, raw)


def sealed(rng: random.Random, **overrides: Any) -> bytes:
    seq = rng.choice([b for b in BOUNDS if 1 <= b <= MAX_SEQ])
    deps = sorted(
        {
            bytes([rng.randrange(2, 256)]) * 32: rng.choice(BOUNDS[1:])
            for _ in range(rng.randrange(4))
        }.items()
    )
    fields: dict[str, Any] = {
        "thread": THREAD,
        "seq": seq,
        "prev": None if seq == 1 else bytes([rng.randrange(256)]) * 32,
        "deps": deps,
        "hlc": Stamp(rng.choice([b for b in BOUNDS if b <= MAX_MILLIS]), rng.choice(BOUNDS[:9])),
        "epoch": rng.choice([b for b in BOUNDS if b <= MAX_EPOCH]),
        "kind": rng.choice(["data", "control", "keys"]),
        "body": bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 23, 24, 255, 256, 300]))),
    }
    fields.update(overrides)
    return op_sign(KEY, **fields).raw


@pytest.mark.parametrize("seed", range(200))
def test_valid_ops_are_read_directly_with_the_same_fields(seed):
    raw = sealed(random.Random(seed))
    assert op_fields(raw) is not None
    same(raw)


def test_a_large_body_and_the_largest_values():
    rng = random.Random(1)
    for body in (b"x" * 65536, b"y" * 70000):
        same(sealed(rng, body=body))
    raw = sealed(
        rng, seq=MAX_SEQ, hlc=Stamp(MAX_MILLIS, MAX_COUNTER), epoch=MAX_EPOCH, prev=b"\x05" * 32
    )
    assert op_fields(raw) is not None
    same(raw)


def _doc(**changes: Any) -> bytes:
    doc = codec.decode(sealed(random.Random(7), seq=5, prev=b"\x09" * 32), max_size=MAX_OP_SIZE)
    doc.update(changes)
    return codec.encode(doc)


@pytest.mark.parametrize(
    "changes",
    [
        {"seq": 0},
        {"seq": MAX_SEQ + 1},
        {"seq": 1},  # prev given for a first op
        {"prev": None},  # no prev for a later op
        {"hlc": [MAX_MILLIS + 1, 0]},
        {"hlc": [0, MAX_COUNTER + 1]},
        {"hlc": [1, 2, 3]},
        {"epoch": MAX_EPOCH + 1},
        {"kind": "other"},
        {"kind": "data "},
        {"v": 2},
        {"sig": b"\x00" * 63},
        {"body": "text"},
        {"deps": [[b"\x03" * 32, 1], [b"\x02" * 32, 1]]},  # unsorted
        {"deps": [[b"\x03" * 32, 1], [b"\x03" * 32, 2]]},  # twice
        {"deps": [[DEVICE, 1]]},  # its own device
        {"deps": [[b"\x03" * 32, 0]]},
        {"deps": [[b"\x03" * 31, 1]]},
        {"deps": [[bytes([i // 256, i % 256]) + b"\x00" * 30, 1] for i in range(MAX_DEPS + 1)]},
        {"device": b"\x01" * 33},
        {"thread": b"\x01" * 31},
        {"extra": 1},
    ],
)
def test_fields_out_of_range_are_refused_alike(changes):
    raw = _doc(**changes)
    assert op_fields(raw) is None
    same(raw)


def test_longer_heads_trailing_bytes_and_other_types():
    raw = sealed(random.Random(3), seq=2, prev=b"\x04" * 32, epoch=3)
    seq_at = raw.index(b"\x63seq") + 4
    assert raw[seq_at] == 2
    for longer in (b"\x18\x02", b"\x19\x00\x02", b"\x1a\x00\x00\x00\x02"):
        same(raw[:seq_at] + longer + raw[seq_at + 1 :])
    same(raw + b"\x00")
    same(raw[:-1])
    same(bytearray(raw))
    same(memoryview(raw))
    same(b"")
    same(b"\xab")
    same(b"x" * (MAX_OP_SIZE + 1))


@settings(max_examples=600, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), edits=st.integers(1, 4))
def test_mutated_ops_are_answered_alike(seed, edits):
    rng = random.Random(seed)
    raw = bytearray(sealed(rng))
    for _ in range(edits):
        where = rng.randrange(len(raw) + 1)
        choice = rng.randrange(4)
        if choice == 0 and where < len(raw):
            raw[where] = rng.randrange(256)
        elif choice == 1:
            raw.insert(where, rng.randrange(256))
        elif choice == 2 and where < len(raw):
            del raw[where]
        else:
            del raw[where:]
    same(bytes(raw))
