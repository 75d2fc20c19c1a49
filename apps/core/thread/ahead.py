"""Data bodies opened ahead, in the signature helper process, while earlier ops are applied.

A catch-up's applying thread is busy in Python all along while the helper process
(``signatures``) checks signatures with time to spare. So the helper also opens the data ops'
bodies with the epoch keys this process holds (decrypt, CBOR decode, ``data_parse``: pure
functions of the bytes and a key) and the applying thread finds the payloads here.

The helper only saves work, it never decides: the decision uses a payload opened ahead only
when no payload of the op is in the opener's cache and the key that opened it is the very first
key the opener would try for the op (its first candidate keys event's first matching key). The
opener would then decrypt with that key, which succeeds (AEAD decryption is a function of key
and bytes), and parse the same plaintext: the same payload, even for a body crafted to open
under two keys (XChaCha20-Poly1305 does not commit to its key). Anything else, a failure in
the helper included, goes the ordinary way, so refusals read the same as before.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from apps.core.thread import codec, crypto
from apps.core.thread import payloads as p
from apps.core.thread.op import KIND_DATA, Op

MAX_PAYLOAD = 1 << 20  # as ``keyring.MAX_PAYLOAD``
# Whether the helpers open bodies at all. It moves ~30 us of an op's CPU from the applying
# process to the helpers (measured: the applier's CPU per op -25 %); on a quiet two-core machine
# that balances the stages, on a saturated one the helpers become the slower stage. Off: every
# body is opened by the applying thread, as before.
OPEN_AHEAD = True
# Payloads opened ahead and not yet used (ops the receiver then dropped are never asked for).
MAX_OPENED = 16384

# What the helper sends back for an op it opened: the key, the rows as tuples (table, pk,
# action, cols) and the schema map. Tuples, not ``RowChange``s: a tenth of the cost to unpickle.
Opening = tuple[bytes, list[tuple[Any, ...]], dict[str, str]]

_lock = threading.Lock()
_keys: dict[bytes, dict[int, list[bytes]]] = {}
_opened: dict[bytes, tuple[bytes, p.DataPayload]] = {}


def keys_note(thread: bytes, by_keys_op: Mapping[bytes, Iterable[Any]]) -> None:
    """Remember the data keys a keyring holds (``Keyring.by_keys_op``), by epoch: the helper
    tries them. Keys of every replica of the thread in this process are pooled; a replica uses
    a payload only if its own opener would have tried that key first."""
    found: dict[int, list[bytes]] = {}
    for epoch_keys in by_keys_op.values():
        for k in epoch_keys:
            if k.data is not None:
                known = found.setdefault(k.epoch, [])
                if k.data not in known:
                    known.append(k.data)
    with _lock:
        pooled = _keys.setdefault(thread, {})
        for epoch, keys_ in found.items():
            have = pooled.setdefault(epoch, [])
            have.extend(k for k in keys_ if k not in have)


def keys_for(thread: bytes) -> dict[int, list[bytes]]:
    with _lock:
        return {epoch: list(keys_) for epoch, keys_ in _keys.get(thread, {}).items()}


def open_data(op: Op, thread: bytes, keys_by_epoch: Mapping[int, list[bytes]]) -> Opening | None:
    """In the helper: the body of a data op of ``thread`` opened and parsed with one of
    ``keys_by_epoch``'s keys of its epoch; None if none opens it or the payload is bad (then the
    applying thread finds out the ordinary way)."""
    if op.kind != KIND_DATA or op.thread != thread:
        return None
    opened = crypto.aead_open_first(keys_by_epoch.get(op.epoch, ()), op.body, op.header_bytes())
    if opened is None:
        return None
    key, plain = opened
    try:
        payload = p.data_parse(codec.decode(plain, max_size=MAX_PAYLOAD, canonical=False))
    except (codec.DecodeError, p.PayloadError):
        return None
    rows = [(c.table, c.pk, c.action, c.cols) for c in payload.rows]
    return key, rows, payload.schema


def opened_put(openings: Iterable[tuple[bytes, Opening]]) -> None:
    """In the applying process: keep the payloads the helper opened (by op hash), for
    ``opened_take``."""
    made = {
        op_hash: (key, p.DataPayload([p.RowChange(*row) for row in rows], schema))
        for op_hash, (key, rows, schema) in openings
    }
    with _lock:
        if len(_opened) + len(made) > MAX_OPENED:
            # The oldest first: those whose frames were dropped, or never applied.
            for stale in list(_opened)[: len(_opened) + len(made) - MAX_OPENED // 2]:
                del _opened[stale]
        _opened.update(made)


def opened_take(op_hash: bytes) -> tuple[bytes, p.DataPayload] | None:
    if not _opened:  # nothing opened ahead (a push, a small frame): no lock to take
        return None
    with _lock:
        return _opened.pop(op_hash, None)


def opened_clear() -> None:
    with _lock:
        _opened.clear()
