"""One node per data directory: an exclusive ``flock`` held for as long as a process uses it.

Two processes acting as the same node (the same device key, the same databases) would race each
other's writes and confuse every peer. ``runnode`` holds the ``node`` lock for its lifetime;
whichever process runs the p2p host (runnode, or ``runworker sereus-p2p`` in scale-out mode)
holds the ``p2p`` lock; commands that rewrite node state under a running node take both. The
kernel drops a ``flock`` when its process dies, however it dies, so a lock is never stale.

The lock file also carries a small record (the holder's pid, the addresses it bound) for the
message to a second process and for the pages that show where the node really listens.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_TRIES = 5
NODE = "node"
P2P = "p2p"

_WHAT = {
    NODE: "Another node is already running on this data directory",
    P2P: "Another process already runs this node's peer-to-peer host on this data directory",
}


class DataDirBusy(Exception):
    """Another live process holds the lock."""

    def __init__(self, data_dir: Path, name: str, pid: int | None) -> None:
        self.data_dir, self.name, self.pid = data_dir, name, pid
        holder = f"{data_dir}, pid {pid}" if pid else str(data_dir)
        super().__init__(
            f"{_WHAT[name]} ({holder}). Stop it first, or use --data-dir for a second node."
        )


def _path(data_dir: Path, name: str) -> Path:
    return data_dir / f"{name}.lock"


class DataDirLock:
    """A held lock; ``release`` (or the process's end) lets the next process take it."""

    def __init__(self, data_dir: Path, name: str, fd: int) -> None:
        self.data_dir, self.name = data_dir, name
        self._fd: int | None = fd
        self._record: dict[str, Any] = {}

    @classmethod
    def acquire(cls, data_dir: Path, name: str = NODE) -> DataDirLock:
        """Take the lock or raise ``DataDirBusy`` at once (never waits)."""
        # O_CLOEXEC: a child process (a shell-out) must not inherit, and so keep, the lock.
        fd = os.open(_path(data_dir, name), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            _lock_now(fd, data_dir, name)
        except BaseException:
            os.close(fd)
            raise
        lock = cls(data_dir, name, fd)
        lock.note(pid=os.getpid())
        return lock

    def note(self, **fields: Any) -> None:
        """Add JSON-safe fields to the record other processes read (``record``)."""
        if self._fd is None:
            return
        self._record.update(fields)
        data = json.dumps(self._record).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)

    def release(self) -> None:
        if self._fd is not None:
            # Emptied first: a reader that finds the file unlocked also finds no stale record.
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing drops the flock
            self._fd = None


@contextlib.contextmanager
def held(data_dir: Path, *names: str) -> Iterator[list[DataDirLock]]:
    """Hold every named lock for the duration (for commands that must not run beside a node)."""
    locks: list[DataDirLock] = []
    try:
        for name in names:
            locks.append(DataDirLock.acquire(data_dir, name))
        yield locks
    finally:
        for lock in reversed(locks):
            lock.release()


def record(data_dir: Path, name: str = NODE) -> dict[str, Any] | None:
    """The record of the live process holding the lock, or None if nobody holds it."""
    try:
        fd = os.open(_path(data_dir, name), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        # A record counts only while its lock is held: one left by a process that died is
        # stale. flock conflicts between open files even within one process, so the holder's
        # own reads see its lock too.
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read(fd)
        return None
    finally:
        os.close(fd)


def _lock_now(fd: int, data_dir: Path, name: str) -> None:
    for _ in range(_TRIES):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pid = _read(fd).get("pid")
            if type(pid) is int:
                raise DataDirBusy(data_dir, name, pid) from None
        # No pid: a reader's probe (``record``) or a holder that has not written it yet,
        # both a matter of instants.
        time.sleep(0.1)
    raise DataDirBusy(data_dir, name, None)


def _read(fd: int) -> dict[str, Any]:
    try:
        doc = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:  # being rewritten at this instant: nothing to say
        return {}
    return doc if isinstance(doc, dict) else {}
