"""A node checks its own new op against the limits every peer decodes with (``op_decode``),
on the op's values instead of decoding its bytes again: both must agree on every op."""

from __future__ import annotations

import nacl.signing
import pytest

from apps.core.thread import payloads as p
from apps.core.thread.hlc import MAX_COUNTER, MAX_MILLIS, Stamp
from apps.core.thread.op import (
    MAX_DEPS,
    MAX_EPOCH,
    MAX_OP_SIZE,
    MAX_SEQ,
    Op,
    OpShapeError,
    op_decode,
    op_seal,
)
from apps.core.thread.writer import ThreadWriter, unreadable
from tests.core.thread.conftest import Party, now_ms, rid

KEY = nacl.signing.SigningKey.generate()


def _op(**change) -> Op:
    header = {
        "thread": b"\x07" * 32,
        "seq": 2,
        "prev": b"\x01" * 32,
        "deps": [(b"\x02" * 32, 5)],
        "hlc": Stamp(now_ms(), 0),
        "epoch": 1,
        "kind": "data",
        "seal": lambda aad: b"\x00" * 40,
    }
    return op_seal(KEY, **(header | change))


def _decodes(op: Op) -> bool:
    try:
        op_decode(op.raw)
    except OpShapeError:
        return False
    return True


CASES = {
    "plain": {},
    "seq at its limit": {"seq": MAX_SEQ},
    "seq past it": {"seq": MAX_SEQ + 1},
    "deps at their limit": {"deps": [(n.to_bytes(32, "big"), 1) for n in range(10, MAX_DEPS + 10)]},
    "deps past it": {"deps": [(n.to_bytes(32, "big"), 1) for n in range(10, MAX_DEPS + 11)]},
    "a dep's seq past the limit": {"deps": [(b"\x02" * 32, MAX_SEQ + 1)]},
    "epoch at its limit": {"epoch": MAX_EPOCH},
    "epoch past it": {"epoch": MAX_EPOCH + 1},
    "stamp at its limit": {"hlc": Stamp(MAX_MILLIS, MAX_COUNTER)},
    "millis past it": {"hlc": Stamp(MAX_MILLIS + 1, 0)},
    "counter past it": {"hlc": Stamp(0, MAX_COUNTER + 1)},
    "body just fits": {"seal": lambda aad: b"\x00" * (MAX_OP_SIZE - 400)},
    "body too big": {"seal": lambda aad: b"\x00" * MAX_OP_SIZE},
}


@pytest.mark.parametrize("case", CASES)
def test_the_writers_check_agrees_with_what_peers_decode(case: str):
    op = _op(**CASES[case])
    assert (unreadable(op) is None) == _decodes(op), (case, unreadable(op))


def test_an_op_the_writer_made_passes_both(alice: Party):
    writer = ThreadWriter.create(master_secret=alice.master, device_key=alice.device, name="C")
    op = writer.write_data([p.RowChange("notes", rid(writer, "x"), p.UPSERT, {"t": "x"})])
    assert unreadable(op) is None
    assert op_decode(op.raw).hash == op.hash
