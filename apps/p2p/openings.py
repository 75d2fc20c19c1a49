"""The first flights of a push to many member devices, read from the database in one trip.

A session's opening (``threads_io.opening``: the device's access and the first flight, from the
vector this node last saw from it) is a trip to a worker thread; a write to a thread of 50
member devices made 50 of them, each reading the same ops. ``Openings`` reads them for all the
devices of a push at once, one flight per distinct (access, last known vector): after a quiet
moment every device holds the same, so one flight serves them all. Each session of the push
takes its opening from the batch (``take``), waiting for it if it is still being read; a session
that finds none, or whose batch failed, reads its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio

from apps.core.thread.op import Op
from apps.p2p import threads_io

Opening = tuple[threads_io.Access, Op | None, threads_io.Flight | None]
Request = tuple[bytes, dict[bytes, int] | None]  # a device, its last known vector


def openings_read(thread: bytes, requests: list[Request], **limits: int) -> list[Opening]:
    """In a worker thread: the opening of a session with each device of ``requests``."""
    flights: dict[Any, threads_io.Flight] = {}
    out: list[Opening] = []
    grants = threads_io.accesses(thread, [device for device, _known in requests])
    for (_device, known), (grant, removal) in zip(requests, grants, strict=True):
        if grant == "none":
            out.append((grant, removal, None))
            continue
        key = (
            grant,
            None if removal is None else removal.hash,
            None if known is None else frozenset(known.items()),
        )
        flight = flights.get(key)
        if flight is None:
            flight = flights[key] = threads_io.flight(thread, known, grant, removal, **limits)
        out.append((grant, removal, flight))
    return out


MAX_AGE = 2.0  # seconds an opening read ahead stays good for a session that starts late


class _Batch:
    def __init__(self) -> None:
        self.ready = trio.Event()
        self.result: dict[bytes, Opening] | None = None
        self.read_at = 0.0


class Openings:
    """Batches of openings being read, per (thread, device) until a session takes its own."""

    def __init__(self) -> None:
        self._pending: dict[tuple[bytes, bytes], _Batch] = {}

    def start(
        self,
        nursery: trio.Nursery,
        db: Callable[..., Awaitable[Any]],
        thread: bytes,
        requests: list[Request],
        limits: dict[str, int],
    ) -> None:
        """Read the openings of ``requests`` in one trip, in the background. A single one
        too: the read starts here, before its session's task does, and overlaps the hello
        (the session sends it while the batch is read, then ``take``s the opening)."""
        if not requests:
            return
        batch = _Batch()
        for device, _known in requests:
            self._pending[(thread, device)] = batch

        async def read() -> None:
            try:
                found = await db(openings_read, thread, requests, **limits)
                batch.result = {device: o for (device, _k), o in zip(requests, found, strict=True)}
            except Exception:  # each session reads its own instead
                batch.result = None
            finally:
                batch.read_at = trio.current_time()
                batch.ready.set()

        nursery.start_soon(read)

    def put(self, thread: bytes, ready: dict[bytes, Opening]) -> None:
        """Openings read already, by the writer right after its commit (``push_ahead``): the
        sessions about to start ``take_ready`` them with no trip to a worker thread."""
        if not ready:
            return
        batch = _Batch()
        batch.result = dict(ready)
        batch.read_at = trio.current_time()
        batch.ready.set()
        for device in ready:
            self._pending[(thread, device)] = batch

    def take_ready(self, thread: bytes, device: bytes) -> Opening | None:
        """``take`` without waiting: the opening if its batch has been read, else None (and
        the batch stays for ``take``)."""
        batch = self._pending.get((thread, device))
        if batch is None or not batch.ready.is_set():
            return None
        del self._pending[(thread, device)]
        if batch.result is None or trio.current_time() - batch.read_at > MAX_AGE:
            return None
        return batch.result.pop(device, None)

    async def take(self, thread: bytes, device: bytes) -> Opening | None:
        """The opening read for this device's session by a batch, if one was (waiting for
        it) and is still fresh (sessions beyond ``OUTBOUND_SESSIONS`` wait their turn); None
        otherwise. Each opening is taken once; one never taken (its session did not get
        through) is replaced by the next push's."""
        batch = self._pending.pop((thread, device), None)
        if batch is None:
            return None
        await batch.ready.wait()
        if batch.result is None or trio.current_time() - batch.read_at > MAX_AGE:
            return None
        return batch.result.pop(device, None)
