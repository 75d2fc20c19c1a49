"""Reading an op's canonical bytes directly, without a generic CBOR decoder.

An op's canonical encoding is fixed but for its values (``op._header_bytes`` writes it the same
way): eleven map entries in the order v, hlc, seq, sig, body, deps, kind, prev, epoch, device,
thread, each head at its shortest length. ``op_fields`` walks those bytes and answers the
fields, or None as soon as anything differs from that layout or a value is out of its range:
then ``op_decode`` decodes the bytes the general way, which accepts exactly the same ops and
says why it refuses the others. So this only recognizes, it never judges: an op it answers is
one the general way takes with the same fields (``tests/core/thread/test_opread.py`` compares
the two on valid, mutated and hand-made bytes). It costs a third of the general way, which
ran for every op a peer sends.
"""

from __future__ import annotations

from apps.core.thread.hlc import MAX_COUNTER, MAX_MILLIS, Stamp

# Limits of op.py, repeated to avoid a cycle (op.py imports this module).
MAX_OP_SIZE = 1 << 20
MAX_DEPS = 4096
MAX_SEQ = 2**63 - 1
MAX_EPOCH = 2**32 - 1

_KINDS = {b"\x64data": "data", b"\x67control": "control", b"\x64keys": "keys"}
_B32 = b"\x58\x20"
_EPOCH = b"\x65epoch"
_DEVICE = b"\x66device\x58\x20"
_THREAD = b"\x66thread\x58\x20"

# thread, device, seq, prev, deps, hlc, epoch, kind, body, sig: ``Op``'s arguments but raw.
Fields = tuple[
    bytes, bytes, int, bytes | None, tuple[tuple[bytes, int], ...], Stamp, int, str, bytes, bytes
]  # fmt: skip


def _uint(raw: bytes, i: int, major: int) -> tuple[int, int] | None:
    """The argument of the head at ``i`` of major type ``major`` (shifted: 0x00, 0x40, 0x60,
    0x80) and where its item goes on; None if it is another type or not at its shortest."""
    b = raw[i] - major
    if 0 <= b < 24:
        return b, i + 1
    if b == 24:
        v = raw[i + 1]
        return (v, i + 2) if v >= 24 else None
    if b == 25:
        v = int.from_bytes(raw[i + 1 : i + 3], "big")
        return (v, i + 3) if v >= 0x100 else None
    if b == 26:
        v = int.from_bytes(raw[i + 1 : i + 5], "big")
        return (v, i + 5) if v >= 0x10000 else None
    if b == 27:
        v = int.from_bytes(raw[i + 1 : i + 9], "big")
        return (v, i + 9) if v >= 0x100000000 else None
    return None


def op_fields(raw: bytes) -> Fields | None:
    """The fields of a canonical, well-formed op, or None (then decode it the general way)."""
    try:
        return _walk(raw)
    except IndexError:  # truncated: the general way says so
        return None


def _walk(raw: bytes) -> Fields | None:
    if type(raw) is not bytes or len(raw) > MAX_OP_SIZE or raw[:9] != b"\xab\x61v\x01\x63hlc\x82":
        return None
    got = _uint(raw, 9, 0)
    if got is None:
        return None
    millis, i = got
    got = _uint(raw, i, 0)
    if got is None or raw[got[1] : got[1] + 4] != b"\x63seq":
        return None
    counter, i = got
    got = _uint(raw, i + 4, 0)
    if got is None:
        return None
    seq, i = got
    if raw[i : i + 6] != b"\x63sig\x58\x40":
        return None
    sig = raw[i + 6 : i + 70]
    if raw[i + 70 : i + 75] != b"\x64body":
        return None
    got = _uint(raw, i + 75, 0x40)
    if got is None:
        return None
    size, i = got
    body = raw[i : i + size]
    i += size
    if raw[i : i + 5] != b"\x64deps":
        return None
    got = _uint(raw, i + 5, 0x80)
    if got is None:
        return None
    count, i = got
    if count > MAX_DEPS:
        return None
    deps = []
    last = b""
    for _ in range(count):
        if raw[i : i + 3] != b"\x82\x58\x20":
            return None
        dep = raw[i + 3 : i + 35]
        got = _uint(raw, i + 35, 0)
        if got is None or dep <= last:
            return None
        dep_seq, i = got
        if not 1 <= dep_seq <= MAX_SEQ:
            return None
        deps.append((dep, dep_seq))
        last = dep
    if raw[i : i + 5] != b"\x64kind":
        return None
    i += 5
    kind = None
    for encoded, name in _KINDS.items():
        if raw.startswith(encoded, i):
            kind, i = name, i + len(encoded)
            break
    if kind is None or raw[i : i + 5] != b"\x64prev":
        return None
    i += 5
    if raw[i] == 0xF6:
        prev, i = None, i + 1
    elif raw[i : i + 2] == _B32:
        prev, i = raw[i + 2 : i + 34], i + 34
    else:
        return None
    if raw[i : i + 6] != _EPOCH:
        return None
    got = _uint(raw, i + 6, 0)
    if got is None:
        return None
    epoch, i = got
    if raw[i : i + 9] != _DEVICE or raw[i + 41 : i + 50] != _THREAD or len(raw) != i + 82:
        return None
    device = raw[i + 9 : i + 41]
    thread = raw[i + 50 : i + 82]
    if (
        not 1 <= seq <= MAX_SEQ
        or (prev is None) != (seq == 1)
        or millis > MAX_MILLIS
        or counter > MAX_COUNTER
        or epoch > MAX_EPOCH
        or len(body) != size
        or any(dep == device for dep, _ in deps)
    ):
        return None
    return thread, device, seq, prev, tuple(deps), Stamp(millis, counter), epoch, kind, body, sig
