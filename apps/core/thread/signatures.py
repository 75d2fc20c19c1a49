"""Signature checks of large batches in a helper process, beside the one applying ops.

PyNaCl releases the GIL inside libsodium, but a thread that checks one signature after another
beside a thread busy in Python gets the GIL back only when the busy one lets it go (every
``sys.getswitchinterval()``, 5 ms): measured here, 17 500 checks/s alone fell to 700-1 600/s
beside a Python loop. So a catch-up, whose applying thread is busy in Python all along, checks its
frames' signatures in a process of its own: the applying thread only waits for the answers.

The helper decodes and checks each op (validation steps 1 and 3a, pure functions of the bytes)
and answers, per op, only None or why it is malformed; the caller decodes the good ones again
from the bytes it sent. Sending the decoded ops back cost more: pickling and unpickling an ``Op``
(~1 kB a data op) took 18 us of CPU an op between the two processes, decoding it again takes 7,
and the helpers are the slower stage of a catch-up. Given the thread's data keys, it also
decrypts the data ops' bodies ahead (``ahead``), which the applying thread would otherwise do
itself. Small batches (a push) are checked in the calling
thread: the trip to another process would cost more than the check.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import select
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from apps.core.thread import ahead, crypto
from apps.core.thread.op import Op, OpShapeError, op_decode, op_verify

logger = logging.getLogger(__name__)

# Below this many ops, a batch is checked in the calling thread.
MIN_BATCH = 64
# Helper processes: a large batch is split between them. With the bodies opened ahead, a
# helper's share of an op costs more CPU than the applying thread's: one helper would be the
# slower stage, two let the machine's two cores share the work.
WORKERS = max(1, min(2, os.cpu_count() or 1))
# How often the helper looks whether the process that started it is still there.
PARENT_POLL_S = 1.0

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_unavailable = False


def problems(raws: list[bytes]) -> list[str | None]:
    """Per op: None if it is well-formed and signed by its device, else why not."""
    return [None if isinstance(item, Op) else item for item in decoded_and_opened(raws, None)[0]]


Openings = list[tuple[bytes, ahead.Opening]]  # (op hash, what ``ahead.open_data`` answered)


# A thread and its data keys by epoch (``ahead.keys_for``).
ThreadKeys = tuple[bytes, dict[int, list[bytes]]]


def decoded_and_opened(
    raws: list[bytes], keys: ThreadKeys | None
) -> tuple[list[Op | str], Openings]:
    """Per op, the op decoded and signature-checked or why it is malformed; and the data ops
    among the good ones whose bodies open with ``keys``, decrypted."""
    found: list[Op | str] = []
    openings: Openings = []
    for raw in raws:
        try:
            op = op_decode(raw)
            op_verify(op)
        except (OpShapeError, crypto.CryptoError) as exc:
            found.append(str(exc))
            continue
        found.append(op)
        if keys is not None:
            opening = ahead.open_data(op, *keys)
            if opening is not None:
                openings.append((op.hash, opening))
    return found, openings


def checked_and_opened(
    raws: list[bytes], keys: ThreadKeys | None
) -> tuple[list[str | None], Openings]:
    """In the helper: ``decoded_and_opened`` with only the verdicts (None for a good op), the
    little that is worth sending back to the caller."""
    found, openings = decoded_and_opened(raws, keys)
    return [None if isinstance(item, Op) else item for item in found], openings


def _follow_parent(parent: int) -> None:
    """In the helper: end when the process that started it has ended. A killed parent (kill -9,
    a crash) does not stop its pool's workers, which would wait for work forever."""

    def watch() -> None:
        while os.getppid() == parent:
            try:
                time.sleep(PARENT_POLL_S)
            except OSError:
                # libfaketime (the clock-skew tests) makes Python's absolute-deadline sleep fail
                # with EINVAL; select() waits the same and is left alone by it.
                select.select([], [], [], PARENT_POLL_S)
        os._exit(0)

    threading.Thread(target=watch, name="follow-parent", daemon=True).start()


def _helper() -> ProcessPoolExecutor | None:
    global _pool, _unavailable
    with _lock:
        if _pool is None and not _unavailable:
            try:
                # spawn, not fork: the caller has threads (trio, Django) a fork would copy
                # mid-flight.
                _pool = ProcessPoolExecutor(
                    WORKERS,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_follow_parent,
                    initargs=(os.getpid(),),
                )
            except (OSError, ValueError, NotImplementedError) as exc:
                logger.warning("signatures are checked in-process: %s", exc)
                _unavailable = True
        return _pool


class Pending:
    """A batch being checked, in parts (one per helper process)."""

    def __init__(self, parts: list[Future[tuple[list[str | None], Openings]]]) -> None:
        self._parts = parts

    def result(self) -> tuple[list[str | None], Openings]:
        """Per op, None or why it is malformed; and the data bodies opened."""
        found: list[str | None] = []
        openings: Openings = []
        for part in self._parts:
            part_found, part_openings = part.result()
            found += part_found
            openings += part_openings
        return found, openings


def submit(raws: list[bytes], keys: ThreadKeys | None = None) -> Pending | None:
    """Start checking ``raws`` (and opening their data bodies with ``keys``) in the helper
    processes; None if the batch is small or no helper can run (the caller then checks them
    itself)."""
    if len(raws) < MIN_BATCH:
        return None
    pool = _helper()
    if pool is None:
        return None
    count = max(1, min(WORKERS, len(raws) // MIN_BATCH))
    size = -(-len(raws) // count)
    try:
        return Pending(
            [
                pool.submit(checked_and_opened, raws[start : start + size], keys)
                for start in range(0, len(raws), size)
            ]
        )
    except (BrokenProcessPool, RuntimeError):
        _reset()
        return None


def check(raws: list[bytes], keys: ThreadKeys | None = None) -> list[str | None] | None:
    """``problems`` of a large batch, found in the helper process; None for a small batch, or
    when no helper can run: the caller checks those ops itself. The data bodies the helper
    opened with ``keys`` are left for the applying thread (``ahead.opened_take``)."""
    future = submit(raws, keys)
    if future is None:
        return None
    try:
        verdicts, openings = future.result()
    except BrokenProcessPool:
        _reset()
        return None
    ahead.opened_put(openings)
    return verdicts


def decoded(raws: list[bytes], keys: ThreadKeys | None = None) -> list[Op | str] | None:
    """Per op of a large batch, decoded and checked in the helper process: the op, or why it is
    malformed; None for a small batch, or when no helper can run: the caller checks those ops
    itself. The data bodies the helper opened with ``keys`` are left for the applying thread
    (``ahead.opened_take``)."""
    verdicts = check(raws, keys)
    if verdicts is None:
        return None
    found: list[Op | str] = []
    for raw, verdict in zip(raws, verdicts, strict=True):
        if verdict is not None:
            found.append(verdict)
            continue
        # The helper found these bytes well-formed and signed; decoding is a pure function of
        # them, so this is the op it checked.
        try:
            found.append(op_decode(raw))
        except OpShapeError as exc:  # cannot happen (the same function); refused all the same
            found.append(str(exc))
    return found


def helpers_cpu_s() -> float | None:
    """The CPU time (user + system, seconds) the running helper processes have used so far, for
    benchmarks that count every process's share of a catch-up; None where ``/proc`` cannot tell
    (not Linux) or no helper runs."""
    pool = _pool
    processes = getattr(pool, "_processes", None) if pool is not None else None
    if not processes:
        return None
    total = 0
    try:
        for pid in list(processes):
            with open(f"/proc/{pid}/stat") as stat:
                # Fields after the command name (which may hold spaces): utime and stime are
                # the 14th and 15th of the line.
                fields = stat.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None
    return total / os.sysconf("SC_CLK_TCK")


def _reset() -> None:
    """The helper died (killed, out of memory): start another next time."""
    global _pool
    with _lock:
        broken, _pool = _pool, None
    if broken is not None:
        broken.shutdown(wait=False, cancel_futures=True)
