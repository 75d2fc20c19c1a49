"""Pausing Python's cyclic garbage collector while a batch of ops is ingested.

Deciding and applying a frame allocates many small containers (decoded ops, payloads, row
changes, statement parameters) that live until the frame is done: the collector, triggered by
allocation counts, then runs again and again over them and over everything else the process
holds. Measured on a remote apply of 20 000 rows in one frame: 11 000 rows/s with the collector,
17 000 without. Reference counting still frees everything that is not in a cycle; cycles made
meanwhile are collected once the collector runs again after the batch.

The collector is process-wide: the pause is counted, so overlapping batches (threads ingesting
into different threads' databases) resume it only when the last one ends, and never turns on a
collector someone else had turned off.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_paused_here = False


@contextmanager
def gc_paused() -> Iterator[None]:
    global _depth, _paused_here
    with _lock:
        if _depth == 0:
            _paused_here = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _paused_here:
                gc.enable()
