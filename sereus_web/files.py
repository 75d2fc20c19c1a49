"""Owner-only files in the data directory, written atomically.

Secrets (the Django secret key, the device key, the master secret) are created with mode 0600 and
published with ``link()``, which fails if the name exists: two processes starting together
(daphne and a worker) can never both create a key, and a reader never sees a half-written file.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path


class InsecureFileError(PermissionError):
    """A secret file that other users can read."""


def _temp_write(path: Path, data: bytes) -> str:
    """Write ``data`` to a new 0600 file beside ``path``, flushed to disk; return its name."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def _dir_sync(directory: Path) -> None:
    # The new name must survive a power cut too, not only the file's contents.
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def secret_file_create(path: Path, data: bytes) -> bool:
    """Write ``data`` to a new 0600 file at ``path``; False if the file already exists."""
    tmp = _temp_write(path, data)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)
    _dir_sync(path.parent)
    return True


def secret_file_replace(path: Path, data: bytes) -> None:
    """Atomically replace ``path`` with a new 0600 file holding ``data``."""
    tmp = _temp_write(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    _dir_sync(path.parent)


def secret_file_read(path: Path) -> bytes:
    """Read a secret file, refusing one that group or others can read (like ssh does)."""
    with open(path, "rb") as f:
        mode = os.fstat(f.fileno()).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise InsecureFileError(
                f"{path} is accessible by other users (mode {oct(mode & 0o777)}); "
                f"run: chmod 600 {path}"
            )
        return f.read()
