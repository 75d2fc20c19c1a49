"""Canonical CBOR (codec.py): one value, one encoding; untrusted bytes decoded strictly."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.core.thread import codec
from apps.core.thread.codec import INT_MAX, INT_MIN, MAX_DEPTH, DecodeError, decode, encode

LIMIT = 1 << 20


def same(a: Any, b: Any) -> bool:
    """Equality that also insists on identical types (so True is not 1 and 1.0 is not 1)."""
    if type(a) is not type(b):
        return False
    if type(a) is list:
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is dict:
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def nested_lists(depth: int) -> bytes:
    """``depth`` nested one-element arrays around a 0."""
    return b"\x81" * depth + b"\x00"


# --- round trip -----------------------------------------------------------------------------------


def test_nested_round_trip_is_identity_and_canonical():
    value = {
        "z": [1, -1, 0, 23, 24, 255, 256, 65535, 65536, 2**32, INT_MAX, INT_MIN],
        "a": {"nested": [b"", b"\x00\xff", "", "h\u00e9llo \u2603", None, True, False]},
        "floats": [0.0, -0.0, 1.5, 100000.0, 1.1, 1e300],
        "bb": [[[[{"deep": [[]]}]]]],
        "bytes-keys": {b"\x01": 1, b"\x00\x00": 2},
        "int-keys": {3: "c", -1: "m", 1000: "k"},
    }
    data = encode(value)
    assert same(decode(data, max_size=LIMIT), value)
    # Encoding is deterministic whatever the insertion order of the maps.
    reordered = dict(reversed(list(value.items())))
    assert encode(reordered) == data
    # Canonical map order: shorter keys first, then bytewise (RFC 8949 §4.2.1 for one key type).
    assert encode({"b": 1, "aa": 2, "a": 3}) == bytes.fromhex("a3 6161 03 6162 01 626161 02")


def test_decode_accepts_bytes_like_inputs():
    data = encode([1, "x"])
    assert decode(bytearray(data), max_size=LIMIT) == [1, "x"]
    assert decode(memoryview(data), max_size=LIMIT) == [1, "x"]


def test_integer_range_boundaries_are_accepted():
    assert decode(encode(INT_MAX), max_size=LIMIT) == 2**64 - 1
    assert decode(encode(INT_MIN), max_size=LIMIT) == -(2**63)


def test_nesting_exactly_max_depth_is_accepted():
    value = decode(nested_lists(MAX_DEPTH), max_size=LIMIT)
    for _ in range(MAX_DEPTH):
        assert type(value) is list
        value = value[0]
    assert value == 0


# --- refusals -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hex_data", "message"),
    [
        # Non-minimal integers: 23 in one extra byte, 1 in 2/4/8 bytes, -1 in two bytes.
        ("1817", "canonical"),
        ("190001", "canonical"),
        ("1a00000001", "canonical"),
        ("1b0000000000000001", "canonical"),
        ("3800", "canonical"),
        # Non-minimal lengths of byte strings, text, arrays and maps.
        ("5801ff", "canonical"),
        ("780161", "canonical"),
        ("980101", "canonical"),
        ("b801616101", "canonical"),
        # Map keys out of order (bytewise and length-first).
        ("a2616201616101", "canonical"),
        ("a2626161026162 01".replace(" ", ""), "canonical"),
        ("a24102014101 01".replace(" ", ""), "canonical"),
        # Floats not in their shortest form: 1.0 as a double and as a single.
        ("fb3ff0000000000000", "canonical"),
        ("fa3f800000", "canonical"),
    ],
)
def test_non_canonical_encodings_are_refused(hex_data: str, message: str):
    data = bytes.fromhex(hex_data)
    # The same bytes are valid (non-canonical) CBOR: only canonicality refuses them.
    cbor2.loads(data)
    with pytest.raises(DecodeError, match=message):
        decode(data, max_size=LIMIT)


@pytest.mark.parametrize(
    "hex_data",
    [
        "9f01ff",  # indefinite array
        "5f41014102ff",  # indefinite byte string
        "7f6161ff",  # indefinite text
        "bf616101ff",  # indefinite map
    ],
)
def test_indefinite_lengths_are_refused(hex_data: str):
    with pytest.raises(DecodeError, match="indefinite"):
        decode(bytes.fromhex(hex_data), max_size=LIMIT)


def test_duplicate_map_keys_are_refused():
    with pytest.raises(DecodeError, match=r"[Dd]uplicate"):
        decode(bytes.fromhex("a2616101616102"), max_size=LIMIT)


@pytest.mark.parametrize(
    "hex_data",
    [
        "c11a514b67b0",  # tag 1: epoch datetime
        "c074323031332d30332d32315432303a30343a30305a",  # tag 0: string datetime
        "c24101",  # tag 2: bignum 1 (a plain int once decoded)
        "c349010000000000000000",  # tag 3: negative bignum
        "d9d9f700",  # tag 55799: self-described CBOR
        "d81c01",  # tag 28: shareable
        "d81c81d81d00",  # tags 28/29: a list that contains itself
        "d9010281 01".replace(" ", ""),  # tag 258: set
        "d8184101",  # tag 24: embedded CBOR
        "d8206161",  # tag 32: URI
        "d9fde800",  # an unassigned tag
        "da0001000000",  # a 32-bit tag number
    ],
)
def test_tags_are_refused(hex_data: str):
    with pytest.raises(DecodeError) as info:
        decode(bytes.fromhex(hex_data), max_size=LIMIT)
    assert str(info.value)


def test_unknown_tag_message_names_the_tag():
    with pytest.raises(DecodeError, match="tag 65000"):
        decode(bytes.fromhex("d9fde800"), max_size=LIMIT)


@pytest.mark.parametrize(
    "hex_data",
    [
        "c249010000000000000000",  # 2**64 as a bignum
        "3bffffffffffffffff",  # -(2**64)
        "3b8000000000000000",  # -(2**63) - 1
    ],
)
def test_integers_beyond_64_bits_are_refused(hex_data: str):
    with pytest.raises(DecodeError, match="64-bit"):
        decode(bytes.fromhex(hex_data), max_size=LIMIT)


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, MAX_DEPTH + 2, MAX_DEPTH + 3, 1000, 200_000])
def test_nesting_deeper_than_max_depth_is_refused(depth: int):
    with pytest.raises(DecodeError, match=r"deep|depth"):
        decode(nested_lists(depth), max_size=LIMIT)


def test_deeply_nested_maps_are_refused():
    data = b"\xa1\x60" * (MAX_DEPTH + 1) + b"\x00"  # {"": {"": ... 0}}
    with pytest.raises(DecodeError, match=r"deep|depth"):
        decode(data, max_size=LIMIT)
    ok = b"\xa1\x60" * MAX_DEPTH + b"\x00"
    assert decode(ok, max_size=LIMIT) is not None


@pytest.mark.parametrize(
    "hex_data",
    [
        "a20101616101",  # {1: 1, "a": 1}
        "a2014161410101",  # {1: h'61', h'01': 1}
        "a2410101616101",  # {h'01': 1, "a": 1}
    ],
)
def test_mixed_type_map_keys_are_refused(hex_data: str):
    data = bytes.fromhex(hex_data)
    with pytest.raises(DecodeError, match="mixed"):
        decode(data, max_size=LIMIT)


@pytest.mark.parametrize(
    ("hex_data", "message"),
    [
        ("a1f600", "map key"),  # null key
        ("a1f400", "map key"),  # bool key
        ("a1810000", "map key"),  # array key
        ("a1a00000", "map key"),  # map key
        ("f7", "not allowed"),  # undefined
        ("f0", "not allowed"),  # simple value 16
        ("f820", "not allowed"),  # simple value 32
        ("62c328", "CBOR"),  # invalid UTF-8
        ("1c", "CBOR"),  # reserved additional information
        ("", "CBOR"),  # empty
        ("5bffffffffffffffff", "CBOR"),  # a byte string longer than the data
        ("9b00000000ffffffff", "CBOR"),  # an array longer than the data
    ],
)
def test_other_invalid_documents_are_refused(hex_data: str, message: str):
    with pytest.raises(DecodeError, match=message):
        decode(bytes.fromhex(hex_data), max_size=LIMIT)


@pytest.mark.parametrize("trailer", [b"\x00", b"\xff", encode({"a": 1}), b"\x00" * 100])
def test_trailing_bytes_are_refused(trailer: bytes):
    with pytest.raises(DecodeError, match="trailing"):
        decode(encode({"a": [1, 2]}) + trailer, max_size=LIMIT)


def test_documents_over_max_size_are_refused_before_decoding():
    data = encode(b"x" * 100)
    assert decode(data, max_size=len(data)) == b"x" * 100
    with pytest.raises(DecodeError, match=f"{len(data)} bytes, more than the limit of 101"):
        decode(data, max_size=len(data) - 1)
    # The size check does not even look at the content.
    with pytest.raises(DecodeError, match="limit"):
        decode(b"\xff" * 11, max_size=10)


@pytest.mark.parametrize("value", ["a1616101", None, 1, [b"\x00"], object()])
def test_non_bytes_input_is_refused(value: Any):
    with pytest.raises(DecodeError, match="expected bytes"):
        decode(value, max_size=LIMIT)


def test_decode_error_is_a_value_error():
    assert issubclass(codec.DecodeError, ValueError)


# --- property -------------------------------------------------------------------------------------

scalars = st.one_of(
    st.integers(min_value=INT_MIN, max_value=INT_MAX),
    st.text(max_size=20),
    st.binary(max_size=20),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False),
)


def plain_values(depth: int) -> st.SearchStrategy:
    if depth == 0:
        return scalars
    inner = plain_values(depth - 1)
    return st.one_of(
        scalars,
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=8), inner, max_size=4),
        st.dictionaries(st.integers(min_value=INT_MIN, max_value=INT_MAX), inner, max_size=3),
        st.dictionaries(st.binary(max_size=8), inner, max_size=3),
    )


@settings(derandomize=True, database=None, max_examples=400, deadline=None)
@given(plain_values(5))
def test_encode_decode_is_identity_for_plain_values(value: Any):
    data = encode(value)
    decoded = decode(data, max_size=LIMIT)
    assert same(decoded, value)
    assert encode(decoded) == data


@settings(derandomize=True, database=None, max_examples=400, deadline=None)
@given(st.binary(max_size=64))
def test_decode_of_arbitrary_bytes_is_canonical_or_refused(data: bytes):
    try:
        value = decode(data, max_size=LIMIT)
    except DecodeError:
        return
    # Whatever is accepted re-encodes to exactly the input: one value, one encoding.
    assert encode(value) == data
