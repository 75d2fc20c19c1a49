"""Data bodies opened ahead, in the signature helper process, while earlier ops are applied.

A catch-up's applying thread is busy in Python all along while the helper process
(``signatures``) checks signatures. So the helper also decrypts the data ops' bodies with the
epoch keys this process holds (a pure function of the bytes and a key) and the applying thread
finds the plaintexts here. Only decrypted, not parsed: the payload would have to cross to this
process as tuples and be made into row changes again, which cost more than parsing it here
(measured: 16 us an op in the helper and 4.6 here, against 3.8 and 8.7 for the plaintext), and
the helpers are the busier side.

The helper only saves work, it never decides: the decision uses a payload opened ahead only
when no payload of the op is in the opener's cache and the key that opened it is the very first
key the opener would try for the op (its first candidate keys event's first matching key). The
opener would then decrypt with that key, which succeeds (AEAD decryption is a function of key
and bytes), and parse the same plaintext: the same payload, even for a body crafted to open
under two keys (XChaCha20-Poly1305 does not commit to its key). Anything else, a failure in
the helper or a plaintext that does not parse included, goes the ordinary way, so refusals
read the same as before.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from apps.core.thread import crypto
from apps.core.thread.op import KIND_DATA, Op

# Whether the helpers open bodies at all. Off: every body is opened by the applying thread.
OPEN_AHEAD = True
# Payloads opened ahead and not yet used (ops the receiver then dropped are never asked for).
MAX_OPENED = 16384

# What the helper sends back for an op it opened: the key and the plaintext.
Opening = tuple[bytes, bytes]

_lock = threading.Lock()
_keys: dict[bytes, dict[int, list[bytes]]] = {}
_opened: dict[bytes, Opening] = {}


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
    """In the helper: the key of ``keys_by_epoch`` (of the op's epoch) that opens the body of a
    data op of ``thread``, and the plaintext; None if none opens it (then the applying thread
    finds out the ordinary way)."""
    if op.kind != KIND_DATA or op.thread != thread:
        return None
    return crypto.aead_open_first(keys_by_epoch.get(op.epoch, ()), op.body, op.header_bytes())


def opened_put(openings: Iterable[tuple[bytes, Opening]]) -> None:
    """In the applying process: keep the plaintexts the helper opened (by op hash), for
    ``opened_take``."""
    made = dict(openings)
    with _lock:
        if len(_opened) + len(made) > MAX_OPENED:
            # The oldest first: those whose frames were dropped, or never applied.
            for stale in list(_opened)[: len(_opened) + len(made) - MAX_OPENED // 2]:
                del _opened[stale]
        _opened.update(made)


def opened_take(op_hash: bytes) -> Opening | None:
    if not _opened:  # nothing opened ahead (a push, a small frame): no lock to take
        return None
    with _lock:
        return _opened.pop(op_hash, None)


def opened_clear() -> None:
    with _lock:
        _opened.clear()
