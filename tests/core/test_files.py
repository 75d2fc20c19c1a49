"""Secret files: created 0600 and atomically, never overwritten by create, refused if exposed."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from sereus_web.files import (
    InsecureFileError,
    secret_file_create,
    secret_file_read,
    secret_file_replace,
)


def test_create_is_0600_and_never_overwrites(tmp_path: Path):
    path = tmp_path / "k"
    assert secret_file_create(path, b"one")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not secret_file_create(path, b"two")
    assert secret_file_read(path) == b"one"
    assert [p.name for p in tmp_path.iterdir()] == ["k"], "no temporary file left behind"


def test_replace_keeps_mode(tmp_path: Path):
    path = tmp_path / "k"
    secret_file_create(path, b"one")
    secret_file_replace(path, b"two")
    assert secret_file_read(path) == b"two"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_read_refuses_a_file_others_can_read(tmp_path: Path):
    path = tmp_path / "k"
    secret_file_create(path, b"one")
    path.chmod(0o644)
    with pytest.raises(InsecureFileError, match="chmod 600"):
        secret_file_read(path)
