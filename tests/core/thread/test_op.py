"""The op format (op.py): sign, encode, decode (validation step 1) and verify."""

from __future__ import annotations

from typing import Any

import nacl.signing
import pytest

from apps.core.thread import codec, crypto
from apps.core.thread.hlc import MAX_COUNTER, MAX_MILLIS, Stamp
from apps.core.thread.op import (
    FIELDS,
    MAX_DEPS,
    MAX_EPOCH,
    MAX_OP_SIZE,
    MAX_SEQ,
    Op,
    OpShapeError,
    op_decode,
    op_sign,
    op_verify,
)

THREAD = b"\x07" * 32
KEY = nacl.signing.SigningKey(b"\x01" * 32)
DEVICE = bytes(KEY.verify_key)
PREV = b"\x08" * 32
DEP_A = b"\x02" * 32
DEP_B = b"\x03" * 32


def signed(**overrides: Any) -> Op:
    fields: dict[str, Any] = {
        "thread": THREAD,
        "seq": 2,
        "prev": PREV,
        "deps": [(DEP_B, 4), (DEP_A, 9)],
        "hlc": Stamp(1_700_000_000_000, 3),
        "epoch": 2,
        "kind": "data",
        "body": b"sealed body",
    }
    fields.update(overrides)
    return op_sign(KEY, **fields)


def doc_of(op: Op) -> dict[str, Any]:
    return codec.decode(op.raw, max_size=MAX_OP_SIZE)


def raw_with(**changes: Any) -> bytes:
    """A valid op's document with fields replaced (or removed, with the value ``...``)."""
    doc = doc_of(signed())
    for name, value in changes.items():
        if value is ...:
            del doc[name]
        else:
            doc[name] = value
    return codec.encode(doc)


def refused(raw: bytes, field: str) -> str:
    with pytest.raises(OpShapeError) as info:
        op_decode(raw)
    message = str(info.value)
    assert field in message, message
    return message


# --- round trip -----------------------------------------------------------------------------------


def test_sign_decode_round_trip_preserves_every_field_and_the_hash():
    op = signed()
    decoded = op_decode(op.raw)
    for name in Op.__slots__:
        assert getattr(decoded, name) == getattr(op, name), name
    assert decoded.hash == crypto.blake2b256(op.raw)
    assert decoded.id == (DEVICE, 2)
    assert decoded.device == DEVICE
    assert decoded.deps == ((DEP_A, 9), (DEP_B, 4))  # sorted by op_sign
    assert decoded.deps_map == {DEP_A: 9, DEP_B: 4}
    assert decoded.hlc == Stamp(1_700_000_000_000, 3)
    assert set(doc_of(op)) == FIELDS
    op_verify(decoded)
    # The raw bytes are the canonical encoding of the document.
    assert codec.encode(doc_of(op)) == op.raw


def test_first_op_round_trips_with_null_prev_and_no_deps():
    op = signed(seq=1, prev=None, deps=[], kind="control", epoch=0)
    decoded = op_decode(op.raw)
    assert decoded.prev is None
    assert decoded.deps == ()
    op_verify(decoded)


def test_header_bytes_cover_every_field_but_body_and_sig():
    op = signed()
    header = codec.decode(op.header_bytes(), max_size=MAX_OP_SIZE)
    assert set(header) == FIELDS - {"body", "sig"}
    assert op.header_bytes() == codec.encode(op.header())
    # Another header (seq) gives other bytes: the AAD binds the body to its place.
    assert signed(seq=3).header_bytes() != op.header_bytes()


def test_in_past():
    op = signed(seq=5)
    assert op.in_past(DEVICE, 4)
    assert not op.in_past(DEVICE, 5)
    assert op.in_past(DEP_A, 9)
    assert not op.in_past(DEP_A, 10)
    assert not op.in_past(b"\x09" * 32, 1)


@pytest.mark.parametrize(
    "change",
    [
        {"seq": 3},
        {"prev": b"\x09" * 32},
        {"deps": [[DEP_A, 9]]},
        {"hlc": [1_700_000_000_000, 4]},
        {"epoch": 3},
        {"kind": "control"},
        {"body": b"sealed bodY"},
        {"thread": b"\x06" * 32},
        {"device": bytes(nacl.signing.SigningKey(b"\x02" * 32).verify_key)},
    ],
)
def test_op_verify_fails_for_any_changed_field(change: dict[str, Any]):
    op = op_decode(raw_with(**change))  # well-formed, but not what the device signed
    with pytest.raises(crypto.CryptoError):
        op_verify(op)


def test_op_verify_fails_for_another_signer():
    other = nacl.signing.SigningKey(b"\x04" * 32)
    forged = op_sign(
        other,
        thread=THREAD,
        seq=2,
        prev=PREV,
        deps=[],
        hlc=Stamp(1, 0),
        epoch=0,
        kind="data",
        body=b"",
    )
    doc = doc_of(forged)
    doc["device"] = DEVICE
    with pytest.raises(crypto.CryptoError):
        op_verify(op_decode(codec.encode(doc)))


# --- step 1: shape and size -----------------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 2, -1, "1", b"\x01", None, [1], 2**64 - 1])
def test_unknown_version_is_refused(version: Any):
    refused(raw_with(v=version), "version")


@pytest.mark.parametrize("version", [True, 1.0])
def test_version_must_be_the_integer_1(version: Any):
    # True == 1 and 1.0 == 1 in Python, but they are other CBOR values: an op carrying them is not
    # the op its device signed (op_verify re-encodes v as the integer 1), so it must be refused.
    refused(raw_with(v=version), "version")


def test_missing_version_is_refused():
    refused(raw_with(v=...), "version")


def test_unknown_extra_field_is_refused():
    message = refused(raw_with(extra=1), "unknown fields")
    assert "extra" in message


@pytest.mark.parametrize("field", sorted(FIELDS - {"v"}))
def test_missing_field_is_refused(field: str):
    message = refused(raw_with(**{field: ...}), "missing fields")
    assert field in message


def test_non_map_op_is_refused():
    refused(codec.encode([1, 2, 3]), "expected a map")
    refused(codec.encode(b"op"), "expected a map")


def test_non_canonical_bytes_are_refused():
    raw = signed().raw
    refused(raw + b"\x00", "op:")
    refused(b"\xff" + raw, "op:")
    refused(b"", "op:")


@pytest.mark.parametrize("field", ["thread", "device", "prev", "sig"])
@pytest.mark.parametrize(
    "value", [b"", b"\x01" * 31, b"\x01" * 33, b"\x01" * 63, b"\x01" * 65, "x" * 32, 32, [b"\x01"]]
)
def test_fixed_length_byte_fields_are_checked(field: str, value: Any):
    refused(raw_with(**{field: value}), field)


def test_sig_must_be_64_bytes():
    refused(raw_with(sig=b"\x01" * 32), "sig")


@pytest.mark.parametrize("seq", [0, -1, -(2**63), MAX_SEQ + 1, 2**64 - 1, "2", True, 2.0, None])
def test_seq_must_be_a_positive_integer_in_range(seq: Any):
    refused(raw_with(seq=seq), "seq")


def test_seq_upper_bound_is_accepted():
    op_decode(raw_with(seq=MAX_SEQ))


def test_prev_present_for_seq_1_is_refused():
    refused(raw_with(seq=1, prev=PREV), "prev")


@pytest.mark.parametrize("seq", [2, 3, 100])
def test_prev_missing_for_later_seq_is_refused(seq: int):
    refused(raw_with(seq=seq, prev=None), "prev")


@pytest.mark.parametrize("deps", ["", {}, None, b"", 1, [[DEP_A]], [[DEP_A, 1, 2]], [DEP_A]])
def test_deps_must_be_a_list_of_pairs(deps: Any):
    refused(raw_with(deps=deps), "deps")


def test_deps_unsorted_are_refused():
    refused(raw_with(deps=[[DEP_B, 1], [DEP_A, 1]]), "deps")


def test_deps_duplicated_are_refused():
    refused(raw_with(deps=[[DEP_A, 1], [DEP_A, 2]]), "deps")


def test_deps_naming_own_device_are_refused():
    message = refused(raw_with(deps=[[DEVICE, 1]]), "deps")
    assert "own device" in message


@pytest.mark.parametrize("entry", [[b"\x02" * 31, 1], ["x" * 32, 1], [DEP_A, 0], [DEP_A, -3]])
def test_deps_entries_are_checked(entry: list[Any]):
    refused(raw_with(deps=[entry]), "deps")


def test_deps_limit():
    devices = sorted(i.to_bytes(32, "big") for i in range(1, MAX_DEPS + 2))
    assert DEVICE not in devices
    op_decode(raw_with(deps=[[d, 1] for d in devices[:MAX_DEPS]]))
    refused(raw_with(deps=[[d, 1] for d in devices]), "deps")


@pytest.mark.parametrize(
    "hlc",
    [
        [1],
        [1, 2, 3],
        [],
        "1:2",
        {"millis": 1, "counter": 2},
        None,
        [-1, 0],
        [MAX_MILLIS + 1, 0],
        [0, -1],
        [0, MAX_COUNTER + 1],
        [1.0, 0],
        [True, 0],
    ],
)
def test_hlc_shape_and_range(hlc: Any):
    refused(raw_with(hlc=hlc), "hlc")


def test_hlc_bounds_are_accepted():
    op_decode(raw_with(hlc=[MAX_MILLIS, MAX_COUNTER]))
    op_decode(raw_with(hlc=[0, 0]))


@pytest.mark.parametrize("epoch", [-1, MAX_EPOCH + 1, "1", None, 1.5, False])
def test_epoch_range(epoch: Any):
    refused(raw_with(epoch=epoch), "epoch")


def test_epoch_bounds_are_accepted():
    assert op_decode(raw_with(epoch=0)).epoch == 0
    assert op_decode(raw_with(epoch=MAX_EPOCH)).epoch == MAX_EPOCH


@pytest.mark.parametrize("kind", ["Data", "rows", "", b"data", 1, None])
def test_unknown_kind_is_refused(kind: Any):
    refused(raw_with(kind=kind), "kind")


@pytest.mark.parametrize("kind", [["data"], {"data": 1}, []])
def test_unhashable_kind_is_refused_not_crashing(kind: Any):
    # A list or map where the kind belongs must be an OpShapeError like any other bad kind.
    refused(raw_with(kind=kind), "kind")


@pytest.mark.parametrize("body", ["text", None, 1, [b"x"], {"a": b"x"}])
def test_body_must_be_bytes(body: Any):
    refused(raw_with(body=body), "body")


def test_op_larger_than_max_op_size_is_refused():
    overhead = len(raw_with(body=b""))
    at_limit = raw_with(body=b"\x00" * (MAX_OP_SIZE - overhead - 4))
    assert len(at_limit) == MAX_OP_SIZE
    op_decode(at_limit)
    over = raw_with(body=b"\x00" * (MAX_OP_SIZE - overhead - 3))
    assert len(over) == MAX_OP_SIZE + 1
    refused(over, "limit")


def test_shape_errors_are_value_errors_with_reasons():
    assert issubclass(OpShapeError, ValueError)
    with pytest.raises(OpShapeError, match=r"^seq: expected an integer from 1 to"):
        op_decode(raw_with(seq=0))


def test_canonical_check_agrees_with_reencoding_for_real_ops():
    """op_decode checks canonical form by size and key order instead of encoding again: for
    every op a writer makes, that check and a full re-encoding must agree, and a one-byte-longer
    head (same value, non-minimal) must be refused."""
    import nacl.signing
    import nacl.utils

    from apps.core.thread import payloads
    from apps.core.thread.writer import ThreadWriter

    writer = ThreadWriter.create(
        master_secret=nacl.utils.random(32),
        device_key=nacl.signing.SigningKey.generate(),
        name="canonical",
    )
    for size in (0, 10, 30, 300, 70_000):
        writer.write_data(
            [payloads.RowChange("notes", f"n{size}", payloads.UPSERT, {"text": "x" * size})]
        )
    for op in writer.replica.admitted:
        decoded = op_decode(op.raw)
        assert codec.encode(codec.decode(op.raw, max_size=MAX_OP_SIZE)) == op.raw
        assert decoded.signed_bytes() == codec.encode({**decoded.header(), "body": decoded.body})
        assert decoded.header_bytes() == codec.encode(decoded.header())
        # "seq" with a non-minimal 2-byte head: same value, one byte longer.
        seq_key = codec.encode("seq") + codec.encode(decoded.seq)
        assert decoded.seq < 24
        stretched = op.raw.replace(seq_key, codec.encode("seq") + bytes([0x18, decoded.seq]), 1)
        with pytest.raises(OpShapeError, match="canonical"):
            op_decode(stretched)


@pytest.mark.parametrize("size", [0, 23, 24, 255, 256, 65_535, 65_536])
@pytest.mark.parametrize("seq", [1, 23, 24, 2**40])
def test_sealed_bytes_are_the_canonical_encoding_of_the_signed_document(size: int, seq: int):
    """``op_seal`` splices sig and body into the encoded header: the result must be exactly
    the canonical encoding of the whole op, and the signature over the whole document but sig
    (for every width of the body's and the seq's heads)."""
    prev = None if seq == 1 else PREV
    op = signed(seq=seq, prev=prev, body=bytes(range(256)) * (size // 256) + b"x" * (size % 256))
    doc = doc_of(op)
    assert codec.encode(doc) == op.raw
    assert doc["body"] == op.body
    assert len(op.body) == size
    unsigned = {name: value for name, value in doc.items() if name != "sig"}
    assert op.signed_bytes() == codec.encode(unsigned)
    crypto.verify(DEVICE, op.sig, "op", THREAD, codec.encode(unsigned))
    op_verify(op_decode(op.raw))


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"seq": 1, "prev": None, "deps": []},
        {"seq": 2**63 - 1, "epoch": 2**32 - 1, "hlc": Stamp(MAX_MILLIS, MAX_COUNTER)},
        {"seq": 24, "epoch": 255, "hlc": Stamp(0, 0), "kind": "keys"},
        {"seq": 256, "epoch": 65_536, "hlc": Stamp(65_535, 23), "kind": "control"},
        {"deps": [(bytes([i]) * 32, i * 1000 + 1) for i in range(1, 30)]},
        {"kind": "ünknown"},  # not a kind peers take, but encoded all the same
        {"thread": b"\x07" * 31},  # the wrong shape: encoded by the codec
    ],
)
def test_header_is_encoded_as_the_codec_encodes_it(fields: dict[str, Any]):
    op = signed(**fields)
    assert op.header_bytes() == codec.encode(op.header())
    assert codec.encode(doc_of(op)) == op.raw
