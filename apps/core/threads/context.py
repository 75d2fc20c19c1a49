"""Which thread the current request, consumer, task or p2p handler works in.

The router sends replicated models to the database of ``current_thread()``; ``.using(alias)``
always overrides it. A context variable (not a thread-local) so that asyncio tasks and
``sync_to_async`` calls each see their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_current: ContextVar[bytes | None] = ContextVar("sereus_current_thread", default=None)


class NoCurrentThread(LookupError):
    """A replicated model was used with no thread selected (and no ``.using()``)."""


def current_thread() -> bytes | None:
    return _current.get()


@contextmanager
def thread_context(thread: bytes) -> Iterator[bytes]:
    if len(thread) != 32:
        raise ValueError("a thread id is 32 bytes")
    token = _current.set(thread)
    try:
        yield thread
    finally:
        _current.reset(token)
