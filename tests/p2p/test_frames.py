"""The protocol frames: every frame type survives a round trip, and anything else a peer could
send is refused with a ``FrameError`` that says why, never another exception; limits on sizes and
counts hold before anything is built (a frame of a million tiny integers is refused at once, with
next to no memory), and the hand-written decoder agrees with a generic CBOR decoder followed by
the schema."""

from __future__ import annotations

import time
import tracemalloc

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.core.thread import codec
from apps.p2p import frames
from apps.p2p.frames import (
    MAX_CHUNK,
    MAX_CHUNKS_ASKED,
    MAX_FRAME,
    MAX_OP,
    MAX_OPS_PER_FRAME,
    MAX_VV,
    Admitted,
    BlobGet,
    Chunk,
    Done,
    Error,
    Frame,
    FrameError,
    Hello,
    Ops,
    Redeem,
    Typing,
    VersionVector,
)

THREAD = bytes(range(32))
DEVICE_A = b"\xaa" * 32
DEVICE_B = b"\xbb" * 32
SIG = b"\x5a" * 64
HASH = b"\x44" * 32

FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


def short(value: object) -> str:
    """A readable test id for a long parameter."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


V = frames.VERSION


def redeem_doc(**changes) -> dict:
    doc = {
        "t": "redeem",
        "v": V,
        "thread": THREAD,
        "invite": b"\x01" * 32,
        "member": b"\x02" * 32,
        "device": DEVICE_A,
        "cert": SIG,
        "proof": SIG,
        "device_proof": SIG,
    }
    doc.update(changes)
    return doc


# -- round trips ---------------------------------------------------------------------------------

EVERY_FRAME = [
    Hello(THREAD),
    Ops([]),
    Ops([b"op one", b"\x00" * 1000, b""]),
    Ops([b"x"] * MAX_OPS_PER_FRAME),
    VersionVector({}),
    VersionVector({DEVICE_B: 2**63 - 1, DEVICE_A: 1}),
    VersionVector({DEVICE_A: 3, DEVICE_B: 1}, {DEVICE_A: HASH}, {DEVICE_B: 1}),
    VersionVector({}, {}, {DEVICE_A: 5, DEVICE_B: 2**63 - 1}),
    Done({}),
    Done({DEVICE_A: 7}),
    Done({DEVICE_A: 7}, {DEVICE_A: HASH}, {DEVICE_A: 7}),
    *(Error(code, f"because {code}") for code in sorted(frames.ERROR_CODES)),
    Redeem(THREAD, b"\x01" * 32, b"\x02" * 32, DEVICE_A, SIG, b"\x03" * 64, b"\x04" * 64),
    Admitted(),
    BlobGet(THREAD, [b"\x01" * 32]),
    BlobGet(THREAD, [bytes([i]) * 32 for i in range(MAX_CHUNKS_ASKED)]),
    Chunk(b"\x02" * 32, b""),
    Chunk(b"\x02" * 32, b"\xff" * MAX_CHUNK),
    Chunk(b"\x03" * 32, None),
    Typing(THREAD),
]


@pytest.mark.parametrize("frame", EVERY_FRAME, ids=short)
def test_every_frame_survives_a_round_trip(frame):
    assert frames.decode(frames.encode(frame)) == frame


def test_encoding_is_deterministic_whatever_the_vector_order():
    """The vector goes on the wire sorted by device, so equal vectors encode equally."""
    one = frames.encode(VersionVector({DEVICE_A: 1, DEVICE_B: 2}))
    other = frames.encode(VersionVector({DEVICE_B: 2, DEVICE_A: 1}))
    assert one == other


def test_hello_and_redeem_carry_the_protocol_version():
    assert cbor2.loads(frames.encode(Hello(THREAD)))["v"] == frames.VERSION
    redeem = Redeem(THREAD, THREAD, THREAD, THREAD, SIG, SIG, SIG)
    assert cbor2.loads(frames.encode(redeem))["v"] == frames.VERSION


def test_error_detail_is_cut_to_500_characters_both_ways():
    assert frames.decode(frames.encode(Error("busy", "x" * 2000))) == Error("busy", "x" * 500)
    sent_long = codec.encode({"t": "err", "code": "busy", "detail": "y" * 2000})
    assert frames.decode(sent_long) == Error("busy", "y" * 500)


def test_a_non_canonical_encoding_is_accepted():
    """Nothing is signed over a frame: keys in any order, longer integer heads are fine."""
    data = cbor2.dumps({"vv": [[DEVICE_B, 2, HASH], [DEVICE_A, 1, None]], "forks": [], "t": "vv"})
    assert frames.decode(data) == VersionVector({DEVICE_A: 1, DEVICE_B: 2}, {DEVICE_B: HASH})
    assert frames.decode(b"\xa1\x61t\x68admitted") == Admitted()
    # A seq of 1 with an eight-byte head; the map's length with a one-byte one.
    long_heads = b"\xb8\x01\x61t\x68admitted"
    assert frames.decode(long_heads) == Admitted()
    # Ops with longer length heads than needed, and one at the very end of the frame.
    ops = b"\x82" + b"\x5b" + (3).to_bytes(8, "big") + b"abc" + b"\x59\x00\x01x"
    data = b"\xa2" + codec.encode("t") + codec.encode("ops") + codec.encode("ops") + ops
    assert frames.decode(data) == Ops([b"abc", b"x"])
    vector = cbor2.dumps({"t": "done", "vv": [], "forks": [[DEVICE_A, 1]]})
    vector = vector.replace(b"\x01", b"\x1b" + (1).to_bytes(8, "big"))
    assert frames.decode(vector) == Done({}, {}, {DEVICE_A: 1})


@pytest.mark.parametrize("frame", [Admitted(), Hello(THREAD), Ops([b"op"])], ids=short)
def test_bytes_after_the_frame_document_are_refused(frame):
    """A length-prefixed frame is one CBOR document: anything after it is not a valid frame."""
    with pytest.raises(FrameError):
        frames.decode(frames.encode(frame) + b"\x00smuggled")


def test_encode_refuses_what_is_not_a_frame():
    with pytest.raises(TypeError, match="not a frame"):
        frames.encode({"t": "hello"})  # type: ignore[arg-type]


# -- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "not valid CBOR"),
        (b"\xff\xfe\xfd", "not valid CBOR"),
        (b"\xa1\x61t", "not valid CBOR"),  # a map cut short
        (b"\xbf\x61t\x68admitted\xff", "not valid CBOR"),  # indefinite-length map
        (b"\xd9\x17\x70\xa0", "semantic tag 6000"),  # tags are not allowed
        (b"\xa2\x61t\x68admitted\x61t\x68admitted", "not valid CBOR"),  # duplicate key
        (codec.encode([1, 2]), "a frame is a map with a type"),
        (codec.encode("hello"), "a frame is a map with a type"),
        (codec.encode({}), "a frame is a map with a type"),
        (codec.encode({"thread": THREAD}), "a frame is a map with a type"),
        (codec.encode({"t": 1}), "a frame is a map with a type"),
        (codec.encode({"t": b"hello"}), "a frame is a map with a type"),
        (codec.encode({"t": "gossip"}), "unknown frame type 'gossip'"),
        (codec.encode({"t": "Hello", "v": V, "thread": THREAD}), "unknown frame type 'Hello'"),
        (cbor2.dumps({"t": "hello", "v": V, "thread": THREAD}) + b"\x00", "1 bytes after"),
        (codec.encode({1: "hello"}), "field names are short text strings"),
        (codec.encode({"t": "admitted", "x" * 33: 1}), "field names are short text strings"),
        (codec.encode({"t": "admitted", **{f"f{i}": 0 for i in range(16)}}), "at most 16 fields"),
        (b"\xa1\x61t\x62\xff\xfe", "the frame type is not UTF-8"),
        (b"\xa1\x61t\x7c", "reserved additional information 28"),
    ],
    ids=short,
)
def test_what_is_not_a_frame_is_refused(data, reason):
    with pytest.raises(FrameError, match=reason):
        frames.decode(data)


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        # missing and extra fields
        ({"t": "hello", "v": V}, r"frame 'hello': fields \['t', 'v'\]"),
        ({"t": "hello", "thread": THREAD}, "frame 'hello': fields"),
        ({"t": "hello", "v": V, "thread": THREAD, "extra": 0}, r"fields \[.*'extra'"),
        ({"t": "ops"}, "frame 'ops': fields"),
        ({"t": "ops", "ops": [], "vv": []}, "frame 'ops': fields"),
        ({"t": "vv"}, "frame 'vv': fields"),
        ({"t": "vv", "vv": []}, r"frame 'vv': fields \['t', 'vv'\]"),
        ({"t": "done", "vv": [], "forks": [], "more": True}, "frame 'done': fields"),
        ({"t": "err", "code": "busy"}, "frame 'err': fields"),
        ({"t": "admitted", "ok": True}, "frame 'admitted': fields"),
        ({k: v for k, v in redeem_doc().items() if k != "proof"}, "frame 'redeem': fields"),
        # wrong field types and sizes
        ({"t": "hello", "v": V, "thread": THREAD[:31]}, "thread: expected 32 bytes"),
        ({"t": "hello", "v": V, "thread": THREAD + b"\x00"}, "thread: expected 32 bytes"),
        ({"t": "hello", "v": V, "thread": THREAD.hex()}, "thread: expected 32 bytes"),
        ({"t": "hello", "v": V, "thread": None}, "thread: expected 32 bytes"),
        (redeem_doc(invite=b"\x01" * 31), "invite: expected 32 bytes"),
        (redeem_doc(member=[]), "member: expected 32 bytes"),
        (redeem_doc(device=b""), "device: expected 32 bytes"),
        (redeem_doc(cert=SIG[:63]), "cert: expected 64 bytes"),
        (redeem_doc(proof=SIG + b"\x00"), "proof: expected 64 bytes"),
        (redeem_doc(device_proof=None), "device_proof: expected 64 bytes"),
        ({k: v for k, v in redeem_doc().items() if k != "device_proof"}, "frame 'redeem': fields"),
        # versions
        ({"t": "hello", "v": 1, "thread": THREAD}, "protocol version 1 is not spoken here"),
        ({"t": "hello", "v": 3, "thread": THREAD}, "protocol version 3 is not spoken here"),
        ({"t": "hello", "v": 0, "thread": THREAD}, "protocol version 0 is not spoken here"),
        ({"t": "hello", "v": b"\x00" * 100, "thread": THREAD}, "protocol version a value is"),
        ({"t": "hello", "v": "1", "thread": THREAD}, "protocol version '1' is not spoken"),
        ({"t": "hello", "v": True, "thread": THREAD}, "protocol version True is not spoken"),
        ({"t": "hello", "v": 1.0, "thread": THREAD}, "protocol version 1.0 is not spoken"),
        (redeem_doc(v=1), "protocol version 1 is not spoken here"),
        ({"t": "typing", "v": 1, "thread": THREAD}, "protocol version 1 is not spoken here"),
        # error frames
        ({"t": "err", "code": ["busy"], "detail": ""}, "err: unknown code"),
        ({"t": "err", "code": "teapot", "detail": ""}, "err: unknown code"),
        ({"t": "err", "code": "BUSY", "detail": ""}, "err: unknown code"),
        ({"t": "err", "code": b"busy", "detail": ""}, "err: unknown code"),
        ({"t": "err", "code": "busy", "detail": 42}, "err: the detail is text"),
        # ops frames
        ({"t": "ops", "ops": b"one op"}, "ops: expected a list of at most 256"),
        ({"t": "ops", "ops": {"0": b"op"}}, "ops: expected a list"),
        ({"t": "ops", "ops": [b"x"] * (MAX_OPS_PER_FRAME + 1)}, "at most 256"),
        ({"t": "ops", "ops": [b"fine", "not bytes"]}, "ops: each op is bytes"),
        ({"t": "ops", "ops": [b"fine", [b"nested"]]}, "ops: each op is bytes"),
        ({"t": "ops", "ops": [None]}, "ops: each op is bytes"),
        ({"t": "ops", "ops": [b"x" * (MAX_OP + 1)]}, f"an op of {MAX_OP + 1} bytes"),
        # blob frames
        ({"t": "blobget", "v": V, "thread": THREAD, "chunks": []}, "chunks: expected a list of 1"),
        (
            {"t": "blobget", "v": V, "thread": THREAD, "chunks": [THREAD] * 17},
            "chunks: expected a list of 1 to 16",
        ),
        ({"t": "blobget", "v": V, "thread": THREAD, "chunks": [b"short"]}, "chunk: expected 32"),
        ({"t": "blobget", "v": 1, "thread": THREAD, "chunks": [THREAD]}, "version 1"),
        ({"t": "blobget", "thread": THREAD, "chunks": [THREAD]}, "frame 'blobget': fields"),
        ({"t": "chunk", "hash": THREAD, "data": "text"}, "chunk data: bytes"),
        ({"t": "chunk", "hash": THREAD, "data": b"x" * (MAX_CHUNK + 1)}, "at most"),
        ({"t": "chunk", "hash": THREAD[:8], "data": b""}, "hash: expected 32 bytes"),
        ({"t": "chunk", "hash": THREAD}, "frame 'chunk': fields"),
        ({"t": "typing", "v": V, "thread": THREAD[:5]}, "thread: expected 32 bytes"),
        ({"t": "typing", "thread": THREAD}, "frame 'typing': fields"),
    ],
    ids=short,
)
def test_a_frame_with_wrong_fields_is_refused(doc, reason):
    with pytest.raises(FrameError, match=reason):
        frames.decode(codec.encode(doc))


@pytest.mark.parametrize("kind", ["vv", "done"])
@pytest.mark.parametrize(
    ("vv", "forks", "reason"),
    [
        ({DEVICE_A: 1}, [], "vv: expected a list"),  # a map, not a list of entries
        (b"vector", [], "vv: expected a list"),
        ([[DEVICE_A, 1, None]] * (MAX_VV + 1), [], f"at most {MAX_VV} entries"),
        ([DEVICE_A, 1, None], [], r"vv: entries are \[device, seq, hash\]"),  # flat
        ([[DEVICE_A, 1]], [], r"vv: entries are \[device, seq, hash\]"),  # version 1's pairs
        ([[DEVICE_A, 1, None, 2]], [], r"vv: entries are \[device, seq, hash\]"),
        ([[DEVICE_A[:31], 1, None]], [], "vv device: expected 32 bytes"),
        ([[DEVICE_A.hex(), 1, None]], [], "vv device: expected 32 bytes"),
        ([[DEVICE_A, 0, None]], [], "vv: seq must be a positive integer"),
        ([[DEVICE_A, -1, None]], [], "vv: seq must be a positive integer"),
        ([[DEVICE_A, 2**63, None]], [], "vv: seq must be a positive integer"),
        ([[DEVICE_A, 1.0, None]], [], "vv: seq must be a positive integer"),
        ([[DEVICE_A, True, None]], [], "vv: seq must be a positive integer"),
        ([[DEVICE_A, "1", None]], [], "vv: seq must be a positive integer"),
        ([[DEVICE_B, 3, None], [DEVICE_A, None, None]], [], "vv: seq must be a positive"),
        ([[DEVICE_A, 1, None], [DEVICE_A, 2, None]], [], "vv: a device appears twice"),
        ([[DEVICE_A, 1, HASH[:31]]], [], "vv hash: expected 32 bytes or null"),
        ([[DEVICE_A, 1, False]], [], "vv hash: expected 32 bytes or null"),
        ([[DEVICE_A, 1, HASH.hex()]], [], "vv hash: expected 32 bytes or null"),
        ([], None, "forks: expected a list"),
        ([], {DEVICE_A: 1}, "forks: expected a list"),
        ([], [[DEVICE_A, 1]] * (MAX_VV + 1), f"forks: expected a list of at most {MAX_VV}"),
        ([], [[DEVICE_A, 1, HASH]], r"forks: entries are \[device, seq\]"),
        ([], [[DEVICE_A[:5], 1]], "forks device: expected 32 bytes"),
        ([], [[DEVICE_A, 0]], "forks: seq must be a positive integer"),
        ([], [[DEVICE_A, 1], [DEVICE_A, 2]], "forks: a device appears twice"),
    ],
    ids=short,
)
def test_a_bad_version_vector_is_refused(kind, vv, forks, reason):
    with pytest.raises(FrameError, match=reason):
        frames.decode(codec.encode({"t": kind, "vv": vv, "forks": forks}))


def test_a_vector_of_max_vv_entries_with_hashes_and_forks_is_accepted():
    devices = [i.to_bytes(32, "big") for i in range(MAX_VV)]
    vector = VersionVector(
        {device: i + 1 for i, device in enumerate(devices)},
        {device: bytes(reversed(device)) for device in devices},
        {device: 2**63 - 1 for device in devices},
    )
    data = frames.encode(vector)
    assert len(data) <= frames.FRAME_LIMITS["vv"]
    assert frames.decode(data) == vector


def _ops_of_size(total: int) -> Ops:
    """An ops frame of exactly ``total`` encoded bytes, of ops of at most MAX_OP bytes."""
    full = [b"\x00" * MAX_OP] * ((total - 64) // MAX_OP)
    last = total - len(frames.encode(Ops([*full, b""])))
    while len(frames.encode(Ops([*full, b"\x00" * last]))) > total:
        last -= 1  # the last op's own length head grows with it
    frame = Ops([*full, b"\x00" * last])
    assert len(frames.encode(frame)) == total
    return frame


def test_input_longer_than_max_frame_is_refused_before_parsing():
    """A frame of exactly MAX_FRAME bytes decodes; one byte more is refused by its size."""
    exact = _ops_of_size(MAX_FRAME)
    assert len(frames.encode(exact)) == MAX_FRAME
    assert frames.decode(frames.encode(exact)) == exact

    too_long = frames.encode(_ops_of_size(MAX_FRAME + 1))
    assert len(too_long) == MAX_FRAME + 1
    with pytest.raises(FrameError, match=f"{MAX_FRAME + 1} bytes, more than the limit"):
        frames.decode(too_long)
    # Trailing garbage counts too: the limit is on the input, not on what it parses to.
    with pytest.raises(FrameError, match="more than the limit"):
        frames.decode(frames.encode(Admitted()) + b"\x00" * MAX_FRAME)


@pytest.mark.parametrize("kind", sorted(frames.FRAME_LIMITS))
def test_every_frame_type_has_a_size_limit_checked_before_its_fields(kind):
    """A frame one byte over its type's limit is refused by its size, whatever it holds (here:
    a padding field after the type, which would be refused too, but later)."""
    limit = frames.FRAME_LIMITS[kind]
    if limit >= MAX_FRAME:
        return  # ops: the input limit above is its limit
    pad = limit + 1 - len(codec.encode({"t": kind, "pad": b""}))
    while len(data := codec.encode({"t": kind, "pad": b"\x00" * pad})) > limit + 1:
        pad -= 1  # the padding's length head grows with it
    assert len(data) == limit + 1
    with pytest.raises(FrameError, match=f"a '{kind}' frame of {limit + 1} bytes"):
        frames.decode(data)
    assert limit >= frames.FIRST_FRAME


def test_the_first_frames_of_inbound_streams_fit_the_first_frame_limit():
    largest = [
        Hello(THREAD),
        Redeem(THREAD, THREAD, THREAD, THREAD, SIG, SIG, SIG),
        BlobGet(THREAD, [THREAD] * MAX_CHUNKS_ASKED),
        Typing(THREAD),
    ]
    for frame in largest:
        assert len(frames.encode(frame)) < frames.FIRST_FRAME // 4


# -- cost ------------------------------------------------------------------------------------------


def _cbor_map(*pairs: tuple[str, bytes]) -> bytes:
    """A CBOR map of text keys and already encoded values, built as bytes (fast, any order)."""
    return codec.head(5, len(pairs)) + b"".join(codec.encode(k) + v for k, v in pairs)


def _cbor_array(count: int, item: bytes) -> bytes:
    """A CBOR array of ``count`` copies of an encoded item."""
    return codec.head(4, count) + item * count


ENTRY = codec.encode([DEVICE_A, 1, None])
# A million tiny integers (or a million tiny arrays) where the ops go, where the vector goes,
# before the frame type, nested, or announced but cut short: what a hostile peer can send in
# one 4 MiB frame.
TINY_INTS = {
    "ops of ints": _cbor_map(("t", codec.encode("ops")), ("ops", _cbor_array(1_000_000, b"\x07"))),
    "ops of 3-byte ints": _cbor_map(
        ("t", codec.encode("ops")), ("ops", _cbor_array(1_300_000, codec.encode(300)))
    ),
    "ints before the type": _cbor_map(
        ("ops", _cbor_array(4_000_000, b"\x07")), ("t", codec.encode("ops"))
    ),
    "nested arrays before the type": _cbor_map(
        ("x", _cbor_array(1_000_000, b"\x81\x80")), ("t", codec.encode("admitted"))
    ),
    "ints after a valid field": _cbor_map(
        ("t", codec.encode("admitted")), ("x", _cbor_array(1_000_000, b"\x07"))
    ),
    "vv of tiny arrays": _cbor_map(
        ("t", codec.encode("vv")),
        ("forks", b"\x80"),
        ("vv", _cbor_array(600_000, b"\x81\x07")),
    ),
    "vv entries then tiny arrays": _cbor_map(
        ("t", codec.encode("vv")),
        ("forks", b"\x80"),
        ("vv", codec.head(4, 4000 + 100_000) + ENTRY * 4000 + b"\x81\x07" * 100_000),
    ),
    "ops of arrays": _cbor_map(
        ("t", codec.encode("ops")), ("ops", _cbor_array(250, _cbor_array(15_000, b"\x07")))
    ),
    "forks of ints": _cbor_map(
        ("t", codec.encode("done")), ("vv", b"\x80"), ("forks", _cbor_array(600_000, b"\x07"))
    ),
    "a billion announced": _cbor_map(
        ("t", codec.encode("ops")), ("ops", codec.head(4, 10**9) + b"\x07" * 1000)
    ),
}


def _cost(data: bytes) -> tuple[float, int]:
    """Seconds and peak bytes allocated by decoding ``data`` (refused or not)."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        frames.decode(data)
    except FrameError:
        pass
    finally:
        seconds = time.perf_counter() - started
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return seconds, peak


@pytest.mark.parametrize("data", TINY_INTS.values(), ids=TINY_INTS.keys())
def test_a_frame_of_a_million_tiny_integers_is_refused_at_once_with_little_memory(data):
    assert len(data) <= MAX_FRAME
    with pytest.raises(FrameError):
        frames.decode(data)
    seconds, peak = _cost(data)
    assert seconds < 0.1  # (~0.4 s with a generic decoder, tracing memory makes it slower)
    assert peak < 64 * 1024, f"{peak} bytes allocated to refuse {len(data)}"


@pytest.mark.parametrize(
    "frame",
    [
        _ops_of_size(MAX_FRAME),
        Ops([bytes([i]) * 16_000 for i in range(MAX_OPS_PER_FRAME)]),
        Ops([b""] * MAX_OPS_PER_FRAME),
        VersionVector(
            {i.to_bytes(32, "big"): i + 1 for i in range(MAX_VV)},
            {i.to_bytes(32, "big"): HASH for i in range(MAX_VV)},
            {i.to_bytes(32, "big"): 1 for i in range(MAX_VV)},
        ),
        Done({i.to_bytes(32, "big"): 2**40 for i in range(MAX_VV)}),
        Chunk(HASH, b"\x01" * MAX_CHUNK),
    ],
    ids=short,
)
def test_decoding_allocates_a_small_multiple_of_the_frame(frame):
    data = frames.encode(frame)
    seconds, peak = _cost(data)
    assert peak <= 4 * len(data) + 64 * 1024, f"{peak} bytes allocated for {len(data)}"
    assert seconds < 2.0


# -- fuzz ----------------------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=40)
)
cbor_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=6)
        | st.dictionaries(
            st.text(max_size=8) | st.integers(-5, 5) | st.binary(max_size=4),
            children,
            max_size=6,
        )
    ),
    max_leaves=20,
)
device_like = st.binary(min_size=30, max_size=34) | cbor_values
frame_like = st.fixed_dictionaries(
    {"t": st.sampled_from([*frames.FIELDS, "x"])},
    optional={
        "v": st.sampled_from([1, 2, True, 1.0]) | cbor_values,
        "thread": device_like,
        "invite": device_like,
        "member": device_like,
        "device": device_like,
        "cert": st.binary(min_size=63, max_size=65) | cbor_values,
        "proof": st.binary(min_size=63, max_size=65) | cbor_values,
        "device_proof": st.binary(min_size=63, max_size=65) | cbor_values,
        "ops": st.lists(st.binary(max_size=20) | cbor_values, max_size=5) | cbor_values,
        "vv": st.lists(
            st.lists(device_like | st.integers(-2, 2**64), min_size=1, max_size=3), max_size=4
        )
        | cbor_values,
        "code": st.sampled_from(sorted(frames.ERROR_CODES)) | cbor_values,
        "detail": st.text(max_size=520) | cbor_values,
        "forks": st.lists(
            st.lists(device_like | st.integers(-2, 2**64), min_size=1, max_size=3), max_size=4
        )
        | cbor_values,
        "hash": device_like,
        "data": st.none() | st.binary(max_size=40) | cbor_values,
        "chunks": st.lists(device_like, max_size=3) | cbor_values,
    },
)


def _decodes_or_refuses(data: bytes) -> None:
    """Either a frame, which encodes back to the same frame, or a FrameError."""
    try:
        frame = frames.decode(data)
    except FrameError as exc:
        refusal = exc
    else:
        refusal = None
    if refusal is not None:
        assert str(refusal), "a refusal says why"
        return
    assert isinstance(
        frame,
        Hello | Ops | VersionVector | Done | Error | Redeem | Admitted | BlobGet | Chunk | Typing,
    )
    assert frames.decode(frames.encode(frame)) == frame


@FUZZ
@given(st.binary(max_size=200))
def test_fuzz_arbitrary_bytes(data):
    _decodes_or_refuses(data)


@FUZZ
@given(cbor_values | frame_like, st.booleans())
def test_fuzz_arbitrary_cbor_documents(value, canonical):
    _decodes_or_refuses(cbor2.dumps(value, canonical=canonical))


@FUZZ
@given(st.sampled_from(EVERY_FRAME), st.data())
def test_fuzz_damaged_frames(frame, data):
    """Valid frames with bytes flipped, cut or inserted."""
    raw = bytearray(frames.encode(frame)[:2000])
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw)))
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip" and at < len(raw):
            raw[at] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            del raw[at:]
        else:
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=4))
    _decodes_or_refuses(bytes(raw))


# -- properties: encode and decode agree, and agree with a generic decoder plus the schema ---------

b32 = st.binary(min_size=32, max_size=32)
b64 = st.binary(min_size=64, max_size=64)
seqs = st.integers(1, 2**63 - 1)
entries = st.dictionaries(b32, st.tuples(seqs, st.none() | b32), max_size=6)


def _vector(kind, entries: dict, forks: dict):
    seqs = {device: seq for device, (seq, _hash) in entries.items()}
    heads = {device: digest for device, (_seq, digest) in entries.items() if digest is not None}
    return kind(seqs, heads, forks)


valid_frames = st.one_of(
    st.builds(Hello, b32),
    st.builds(Typing, b32),
    st.builds(Ops, st.lists(st.binary(max_size=80), max_size=12)),
    st.builds(
        _vector,
        st.sampled_from([VersionVector, Done]),
        entries,
        st.dictionaries(b32, seqs, max_size=4),
    ),
    st.builds(Error, st.sampled_from(sorted(frames.ERROR_CODES)), st.text(max_size=500)),
    st.builds(Redeem, b32, b32, b32, b32, b64, b64, b64),
    st.just(Admitted()),
    st.builds(BlobGet, b32, st.lists(b32, min_size=1, max_size=MAX_CHUNKS_ASKED)),
    st.builds(Chunk, b32, st.none() | st.binary(max_size=100)),
)


@FUZZ
@given(valid_frames)
def test_property_every_valid_frame_decodes_to_itself(frame):
    assert frames.decode(frames.encode(frame)) == frame


@FUZZ
@given(valid_frames, st.randoms(use_true_random=False))
def test_property_a_frame_decodes_the_same_with_its_fields_in_any_order(frame, rng):
    doc = cbor2.loads(frames.encode(frame))
    keys = list(doc)
    rng.shuffle(keys)
    assert frames.decode(cbor2.dumps({key: doc[key] for key in keys})) == frame


def _reference(data: bytes) -> Frame | None:
    """What ``frames.decode`` must make of ``data``, written the plain way: a generic CBOR
    decoder, then the schema of each frame type (no cost limits: for small inputs only).
    None for anything to refuse."""
    try:
        doc = codec.decode(data, max_size=MAX_FRAME, canonical=False, plain=False)
    except codec.DecodeError:
        return None
    if type(doc) is not dict or type(doc.get("t")) is not str:
        return None
    schema = {
        "hello": {"v", "thread"},
        "typing": {"v", "thread"},
        "ops": {"ops"},
        "vv": {"vv", "forks"},
        "done": {"vv", "forks"},
        "err": {"code", "detail"},
        "redeem": {"v", "thread", "invite", "member", "device", "cert", "proof", "device_proof"},
        "admitted": set(),
        "blobget": {"v", "thread", "chunks"},
        "chunk": {"hash", "data"},
    }.get(doc["t"])
    if schema is None or set(doc) != {"t", *schema}:
        return None
    if "v" in doc and (type(doc["v"]) is not int or doc["v"] != frames.VERSION):
        return None
    try:
        return _reference_frame(doc)
    except (TypeError, ValueError):
        return None


def _require(ok: bool) -> None:
    if not ok:
        raise ValueError("not a frame")


def _is_bytes(value, size: int) -> bytes:
    _require(type(value) is bytes and len(value) == size)
    return value


def _is_seq(value) -> int:
    _require(type(value) is int and 0 < value < 2**63)
    return value


def _reference_frame(doc: dict) -> Frame:
    kind = doc["t"]
    if kind in ("hello", "typing"):
        return (Hello if kind == "hello" else Typing)(_is_bytes(doc["thread"], 32))
    if kind == "ops":
        _require(type(doc["ops"]) is list and len(doc["ops"]) <= MAX_OPS_PER_FRAME)
        _require(all(type(op) is bytes and len(op) <= MAX_OP for op in doc["ops"]))
        return Ops(doc["ops"])
    if kind in ("vv", "done"):
        _require(type(doc["vv"]) is list and len(doc["vv"]) <= MAX_VV)
        _require(type(doc["forks"]) is list and len(doc["forks"]) <= MAX_VV)
        seqs, heads, forks = {}, {}, {}
        for entry in doc["vv"]:
            _require(type(entry) is list and len(entry) == 3)
            device = _is_bytes(entry[0], 32)
            _require(device not in seqs)
            seqs[device] = _is_seq(entry[1])
            if entry[2] is not None:
                heads[device] = _is_bytes(entry[2], 32)
        for entry in doc["forks"]:
            _require(type(entry) is list and len(entry) == 2)
            device = _is_bytes(entry[0], 32)
            _require(device not in forks)
            forks[device] = _is_seq(entry[1])
        return (VersionVector if kind == "vv" else Done)(seqs, heads, forks)
    if kind == "err":
        _require(doc["code"] in frames.ERROR_CODES and type(doc["code"]) is str)
        _require(type(doc["detail"]) is str)
        return Error(doc["code"], doc["detail"][:500])
    if kind == "redeem":
        sizes = {"thread": 32, "invite": 32, "member": 32, "device": 32}
        sizes |= {"cert": 64, "proof": 64, "device_proof": 64}
        return Redeem(*(_is_bytes(doc[name], size) for name, size in sizes.items()))
    if kind == "admitted":
        return Admitted()
    if kind == "blobget":
        chunks = doc["chunks"]
        _require(type(chunks) is list and 0 < len(chunks) <= MAX_CHUNKS_ASKED)
        return BlobGet(_is_bytes(doc["thread"], 32), [_is_bytes(c, 32) for c in chunks])
    data = doc["data"]
    _require(data is None or (type(data) is bytes and len(data) <= MAX_CHUNK))
    return Chunk(_is_bytes(doc["hash"], 32), data)


def _agrees(data: bytes) -> None:
    try:
        decoded = frames.decode(data)
    except FrameError:
        decoded = None
    assert decoded == _reference(data)


@FUZZ
@given(cbor_values | frame_like, st.booleans())
def test_property_decode_agrees_with_a_generic_decoder_on_any_document(value, canonical):
    _agrees(cbor2.dumps(value, canonical=canonical))


@FUZZ
@given(valid_frames, st.data())
def test_property_decode_agrees_with_a_generic_decoder_on_damaged_frames(frame, data):
    raw = bytearray(frames.encode(frame))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(raw)))
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip" and at < len(raw):
            raw[at] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            del raw[at:]
        else:
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=4))
    _agrees(bytes(raw))


@FUZZ
@given(st.binary(max_size=200))
def test_property_decode_agrees_with_a_generic_decoder_on_any_bytes(data):
    _agrees(data)
