"""Reading an op's canonical bytes directly, without a generic CBOR decoder.

An op's canonical encoding is fixed but for its values (``op._header_bytes`` writes it the same
way): eleven map entries in the order v, hlc, seq, sig, body, deps, kind, prev, epoch, device,
thread, each head at its shortest length. ``op_fields`` matches those bytes against patterns of
that layout (a few C calls, not a walk of slices) and answers the fields, or None as soon as
anything differs from that layout or a value is out of its range: then ``op_decode`` decodes
the bytes the general way, which accepts exactly the same ops and says why it refuses the
others. So this only recognizes, it never judges: an op it answers is one the general way takes
with the same fields (``tests/core/thread/test_opread.py`` compares the two on valid, mutated
and hand-made bytes). It costs a third of the general way, which ran for every op a peer sends.
"""

from __future__ import annotations

import re

from apps.core.thread.hlc import MAX_COUNTER, MAX_MILLIS, Stamp

# Limits of op.py, repeated to avoid a cycle (op.py imports this module).
MAX_OP_SIZE = 1 << 20
MAX_DEPS = 4096
MAX_SEQ = 2**63 - 1
MAX_EPOCH = 2**32 - 1


# thread, device, seq, prev, deps, hlc, epoch, kind, body, sig: ``Op``'s arguments but raw.
Fields = tuple[
    bytes, bytes, int, bytes | None, tuple[tuple[bytes, int], ...], Stamp, int, str, bytes, bytes
]  # fmt: skip


# The smallest argument each head length may carry (a smaller one has a shorter head).
_SHORTEST = {2: 24, 3: 0x100, 5: 0x10000, 9: 0x100000000}


def _arg(item: bytes) -> int:
    """The argument of a head matched by ``_U`` or ``_BSTR``; -1 if it is not at its shortest."""
    if len(item) == 1:
        return item[0] & 0x1F
    value = int.from_bytes(item[1:], "big")
    return value if value >= _SHORTEST[len(item)] else -1


# The fixed parts of the layout as patterns: one C call reads what a walk of slices took a
# dozen for. A head's item is captured whole; ``_arg`` reads it and checks its length.
_U = rb"([\x00-\x17]|\x18.|\x19..|\x1a....|\x1b.{8})"
_BSTR = rb"([\x40-\x57]|\x58.|\x59..|\x5a....|\x5b.{8})"
_ARRAY = rb"([\x80-\x97]|\x98.|\x99..|\x9a....|\x9b.{8})"
_HEAD = re.compile(
    rb"\xab\x61v\x01\x63hlc\x82" + _U + _U + rb"\x63seq" + _U + rb"\x63sig\x58\x40(.{64})\x64body"
    + _BSTR,
    re.DOTALL,
)  # fmt: skip
_DEPS = re.compile(rb"\x64deps" + _ARRAY, re.DOTALL)
_DEP = re.compile(rb"\x82\x58\x20(.{32})" + _U, re.DOTALL)
_TAIL = re.compile(
    rb"\x64kind(\x64data|\x67control|\x64keys)\x64prev(\xf6|\x58\x20.{32})\x65epoch" + _U
    + rb"\x66device\x58\x20(.{32})\x66thread\x58\x20(.{32})",
    re.DOTALL,
)  # fmt: skip
_KIND_NAMES = {b"\x64data": "data", b"\x67control": "control", b"\x64keys": "keys"}


def op_fields(raw: bytes) -> Fields | None:
    """The fields of a canonical, well-formed op, or None (then decode it the general way)."""
    if type(raw) is not bytes or len(raw) > MAX_OP_SIZE:
        return None
    head = _HEAD.match(raw)
    if head is None:
        return None
    millis_, counter_, seq_, sig, size_ = head.groups()
    # A one-byte head (most counters, seqs and small bodies) is read here, not by a call.
    millis = _arg(millis_)
    counter = counter_[0] if len(counter_) == 1 else _arg(counter_)
    seq = seq_[0] if len(seq_) == 1 else _arg(seq_)
    size = size_[0] & 0x1F if len(size_) == 1 else _arg(size_)
    if millis < 0 or counter < 0 or seq < 0 or size < 0:
        return None
    i = head.end()
    if i + size > len(raw):  # truncated
        return None
    body = raw[i : i + size]
    i += size
    found = _DEPS.match(raw, i)
    if found is None:
        return None
    count = _arg(found[1])
    if not 0 <= count <= MAX_DEPS:
        return None
    i = found.end()
    deps = []
    last = b""
    for _ in range(count):
        found = _DEP.match(raw, i)
        if found is None:
            return None
        dep, dep_seq = found[1], _arg(found[2])
        if dep <= last or not 1 <= dep_seq <= MAX_SEQ:
            return None
        deps.append((dep, dep_seq))
        last = dep
        i = found.end()
    tail = _TAIL.fullmatch(raw, i)
    if tail is None:
        return None
    kind_, prev_, epoch_, device, thread = tail.groups()
    prev = None if prev_ == b"\xf6" else prev_[2:]
    epoch = _arg(epoch_)
    if (
        not 1 <= seq <= MAX_SEQ
        or (prev is None) != (seq == 1)
        or millis > MAX_MILLIS
        or counter > MAX_COUNTER
        or not 0 <= epoch <= MAX_EPOCH
        or any(dep == device for dep, _ in deps)
    ):
        return None
    kind = _KIND_NAMES[kind_]
    return thread, device, seq, prev, tuple(deps), Stamp(millis, counter), epoch, kind, body, sig
