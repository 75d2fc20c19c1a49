"""The protocol frames: every frame type survives a round trip, and anything else a peer could
send is refused with a ``FrameError`` that says why, never another exception."""

from __future__ import annotations

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
    MAX_OPS_PER_FRAME,
    MAX_VV,
    Admitted,
    BlobGet,
    Chunk,
    Done,
    Error,
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


def redeem_doc(**changes) -> dict:
    doc = {
        "t": "redeem",
        "v": 1,
        "thread": THREAD,
        "invite": b"\x01" * 32,
        "member": b"\x02" * 32,
        "device": DEVICE_A,
        "cert": SIG,
        "proof": SIG,
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
    Done({}),
    Done({DEVICE_A: 7}),
    *(Error(code, f"because {code}") for code in sorted(frames.ERROR_CODES)),
    Redeem(THREAD, b"\x01" * 32, b"\x02" * 32, DEVICE_A, SIG, b"\x03" * 64),
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
    redeem = Redeem(THREAD, THREAD, THREAD, THREAD, SIG, SIG)
    assert cbor2.loads(frames.encode(redeem))["v"] == frames.VERSION


def test_error_detail_is_cut_to_500_characters_both_ways():
    assert frames.decode(frames.encode(Error("busy", "x" * 2000))) == Error("busy", "x" * 500)
    sent_long = codec.encode({"t": "err", "code": "busy", "detail": "y" * 2000})
    assert frames.decode(sent_long) == Error("busy", "y" * 500)


def test_a_non_canonical_encoding_is_accepted():
    """Nothing is signed over a frame: keys in any order, longer integer heads are fine."""
    data = cbor2.dumps({"vv": [[DEVICE_B, 2], [DEVICE_A, 1]], "t": "vv"})
    assert frames.decode(data) == VersionVector({DEVICE_A: 1, DEVICE_B: 2})
    assert frames.decode(b"\xa1\x61t\x68admitted") == Admitted()


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
        (codec.encode({"t": "Hello", "v": 1, "thread": THREAD}), "unknown frame type 'Hello'"),
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
        ({"t": "hello", "v": 1}, r"frame 'hello': fields \['t', 'v'\]"),
        ({"t": "hello", "thread": THREAD}, "frame 'hello': fields"),
        ({"t": "hello", "v": 1, "thread": THREAD, "extra": 0}, r"fields \[.*'extra'"),
        ({"t": "ops"}, "frame 'ops': fields"),
        ({"t": "ops", "ops": [], "vv": []}, "frame 'ops': fields"),
        ({"t": "vv"}, "frame 'vv': fields"),
        ({"t": "done", "vv": [], "more": True}, "frame 'done': fields"),
        ({"t": "err", "code": "busy"}, "frame 'err': fields"),
        ({"t": "admitted", "ok": True}, "frame 'admitted': fields"),
        ({k: v for k, v in redeem_doc().items() if k != "proof"}, "frame 'redeem': fields"),
        # wrong field types and sizes
        ({"t": "hello", "v": 1, "thread": THREAD[:31]}, "thread: expected 32 bytes"),
        ({"t": "hello", "v": 1, "thread": THREAD + b"\x00"}, "thread: expected 32 bytes"),
        ({"t": "hello", "v": 1, "thread": THREAD.hex()}, "thread: expected 32 bytes"),
        ({"t": "hello", "v": 1, "thread": None}, "thread: expected 32 bytes"),
        (redeem_doc(invite=b"\x01" * 31), "invite: expected 32 bytes"),
        (redeem_doc(member=[]), "member: expected 32 bytes"),
        (redeem_doc(device=b""), "device: expected 32 bytes"),
        (redeem_doc(cert=SIG[:63]), "cert: expected 64 bytes"),
        (redeem_doc(proof=SIG + b"\x00"), "proof: expected 64 bytes"),
        # versions
        ({"t": "hello", "v": 2, "thread": THREAD}, "protocol version 2 is not spoken here"),
        ({"t": "hello", "v": 0, "thread": THREAD}, "protocol version 0 is not spoken here"),
        ({"t": "hello", "v": "1", "thread": THREAD}, "protocol version '1' is not spoken"),
        ({"t": "hello", "v": True, "thread": THREAD}, "protocol version True is not spoken"),
        ({"t": "hello", "v": 1.0, "thread": THREAD}, "protocol version 1.0 is not spoken"),
        (redeem_doc(v=2), "protocol version 2 is not spoken here"),
        # error frames
        ({"t": "err", "code": ["busy"], "detail": ""}, "err: unknown code"),
        ({"t": "err", "code": "teapot", "detail": ""}, "err: unknown code"),
        ({"t": "err", "code": "BUSY", "detail": ""}, "err: unknown code"),
        ({"t": "err", "code": b"busy", "detail": ""}, "err: unknown code"),
        ({"t": "err", "code": "busy", "detail": 42}, "err"),
        # ops frames
        ({"t": "ops", "ops": b"one op"}, "ops: expected a list of at most 256"),
        ({"t": "ops", "ops": {"0": b"op"}}, "ops: expected a list"),
        ({"t": "ops", "ops": [b"x"] * (MAX_OPS_PER_FRAME + 1)}, "at most 256"),
        ({"t": "ops", "ops": [b"fine", "not bytes"]}, "ops: each op is bytes"),
        ({"t": "ops", "ops": [b"fine", [b"nested"]]}, "ops: each op is bytes"),
        ({"t": "ops", "ops": [None]}, "ops: each op is bytes"),
        # blob frames
        ({"t": "blobget", "v": 1, "thread": THREAD, "chunks": []}, "chunks: expected a list of 1"),
        (
            {"t": "blobget", "v": 1, "thread": THREAD, "chunks": [THREAD] * 17},
            "chunks: expected a list of 1 to 16",
        ),
        ({"t": "blobget", "v": 1, "thread": THREAD, "chunks": [b"short"]}, "chunk: expected 32"),
        ({"t": "blobget", "v": 2, "thread": THREAD, "chunks": [THREAD]}, "version 2"),
        ({"t": "blobget", "thread": THREAD, "chunks": [THREAD]}, "frame 'blobget': fields"),
        ({"t": "chunk", "hash": THREAD, "data": "text"}, "chunk data: bytes"),
        ({"t": "chunk", "hash": THREAD, "data": b"x" * (MAX_CHUNK + 1)}, "at most"),
        ({"t": "chunk", "hash": THREAD[:8], "data": b""}, "hash: expected 32 bytes"),
        ({"t": "chunk", "hash": THREAD}, "frame 'chunk': fields"),
        ({"t": "typing", "v": 1, "thread": THREAD[:5]}, "thread: expected 32 bytes"),
        ({"t": "typing", "thread": THREAD}, "frame 'typing': fields"),
    ],
    ids=short,
)
def test_a_frame_with_wrong_fields_is_refused(doc, reason):
    with pytest.raises(FrameError, match=reason):
        frames.decode(codec.encode(doc))


@pytest.mark.parametrize("kind", ["vv", "done"])
@pytest.mark.parametrize(
    ("vv", "reason"),
    [
        ({DEVICE_A: 1}, "vv: expected a list"),  # a map, not a list of pairs
        (b"vector", "vv: expected a list"),
        ([[DEVICE_A, 1]] * (MAX_VV + 1), f"at most {MAX_VV} entries"),
        ([DEVICE_A, 1], r"vv: entries are \[device, seq\]"),  # flat, not a pair
        ([[DEVICE_A]], r"vv: entries are \[device, seq\]"),
        ([[DEVICE_A, 1, 2]], r"vv: entries are \[device, seq\]"),
        ([[DEVICE_A[:31], 1]], "vv device: expected 32 bytes"),
        ([[DEVICE_A.hex(), 1]], "vv device: expected 32 bytes"),
        ([[DEVICE_A, 0]], "vv: seq must be a positive integer"),
        ([[DEVICE_A, -1]], "vv: seq must be a positive integer"),
        ([[DEVICE_A, 2**63]], "vv: seq must be a positive integer"),
        ([[DEVICE_A, 1.0]], "vv: seq must be a positive integer"),
        ([[DEVICE_A, True]], "vv: seq must be a positive integer"),
        ([[DEVICE_A, "1"]], "vv: seq must be a positive integer"),
        ([[DEVICE_B, 3], [DEVICE_A, None]], "vv: seq must be a positive integer"),
    ],
    ids=short,
)
def test_a_bad_version_vector_is_refused(kind, vv, reason):
    with pytest.raises(FrameError, match=reason):
        frames.decode(codec.encode({"t": kind, "vv": vv}))


def test_a_vector_of_max_vv_entries_is_accepted():
    vv = {i.to_bytes(32, "big"): i + 1 for i in range(MAX_VV)}
    assert frames.decode(frames.encode(VersionVector(vv))) == VersionVector(vv)


def test_input_longer_than_max_frame_is_refused_before_parsing():
    """A frame of exactly MAX_FRAME bytes decodes; one byte more is refused by its size."""
    probe = len(frames.encode(Ops([b"\x00" * (MAX_FRAME - 100)]))) - (MAX_FRAME - 100)
    exact = frames.encode(Ops([b"\x00" * (MAX_FRAME - probe)]))
    assert len(exact) == MAX_FRAME
    assert frames.decode(exact) == Ops([b"\x00" * (MAX_FRAME - probe)])

    too_long = frames.encode(Ops([b"\x00" * (MAX_FRAME - probe + 1)]))
    assert len(too_long) == MAX_FRAME + 1
    with pytest.raises(FrameError, match=f"{MAX_FRAME + 1} bytes, more than the limit"):
        frames.decode(too_long)
    # Trailing garbage counts too: the limit is on the input, not on what it parses to.
    with pytest.raises(FrameError, match="more than the limit"):
        frames.decode(frames.encode(Admitted()) + b"\x00" * MAX_FRAME)


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
    {"t": st.sampled_from(["hello", "ops", "vv", "done", "err", "redeem", "admitted", "x"])},
    optional={
        "v": st.sampled_from([1, 2, True, 1.0]) | cbor_values,
        "thread": device_like,
        "invite": device_like,
        "member": device_like,
        "device": device_like,
        "cert": st.binary(min_size=63, max_size=65) | cbor_values,
        "proof": st.binary(min_size=63, max_size=65) | cbor_values,
        "ops": st.lists(st.binary(max_size=20) | cbor_values, max_size=5) | cbor_values,
        "vv": st.lists(
            st.lists(device_like | st.integers(-2, 2**64), min_size=1, max_size=3), max_size=4
        )
        | cbor_values,
        "code": st.sampled_from(sorted(frames.ERROR_CODES)) | cbor_values,
        "detail": st.text(max_size=520) | cbor_values,
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
