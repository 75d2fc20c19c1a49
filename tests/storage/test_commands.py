"""``manage.py backup`` and ``manage.py restore`` without a running node: the job runs in the
command's process, its progress shown on one line, a failure in words and a non-zero exit."""

from __future__ import annotations

import threading
import time
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections

from apps.core import datadir_lock
from apps.storage import jobs
from apps.storage.models import Job
from tests.storage.test_backup import device_holder
from tests.support.storage import tree_diff

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_backup_then_restore_latest_in_this_process(node, tmp_path) -> None:
    device_holder()
    source = tmp_path / "src"
    (source / "docs").mkdir(parents=True)
    (source / "docs" / "a.txt").write_text("alpha\n" * 500)
    (source / "b.bin").write_bytes(bytes(range(256)) * 2000)
    said = run("backup", str(source), "--label", "mine")
    assert "The node is not running: this process runs the backup." in said
    assert "your other holders get theirs when the node runs" in said
    assert "[" + "#" * 30 + "] 100%  2 of 2 files" in said
    assert "Done: 2 files" in said
    job = Job.objects.get(kind=Job.Kind.BACKUP)
    assert job.state == Job.State.DONE
    assert job.label == "mine"
    assert job.snapshot in said
    said = run("restore", "latest", str(tmp_path / "back"), "--path", "docs")
    assert "Done: 1 files" in said
    assert tree_diff(source / "docs", tmp_path / "back" / "docs") == []
    assert not (tmp_path / "back" / "b.bin").exists()
    # The p2p lock the command held is free again: a node may start.
    assert datadir_lock.record(Path(tmp_path / "data"), datadir_lock.P2P) is None


def test_a_bad_folder_exits_with_words(node, data_dir, tmp_path) -> None:
    with pytest.raises(CommandError, match="There is no folder at"):
        run("backup", str(tmp_path / "missing"))
    with pytest.raises(CommandError, match="own data"):
        run("backup", str(data_dir))
    assert not Job.objects.exists()


def test_a_restore_of_nothing_exits_with_words(node, tmp_path) -> None:
    with pytest.raises(CommandError, match="no backups yet"):
        run("restore", "latest", str(tmp_path / "back"))


def test_with_the_node_running_the_command_follows_the_nodes_job(node, data_dir, tmp_path):
    device_holder()
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.txt").write_text("alpha\n" * 500)
    out = StringIO()
    failed: list[BaseException] = []

    def command() -> None:
        try:
            call_command("backup", str(source), stdout=out)
        except BaseException as exc:  # shown by the assertion below
            failed.append(exc)
        finally:
            connections.close_all()

    # This process holds the p2p lock as a running node does; its runner is run_queued here.
    lock = datadir_lock.DataDirLock.acquire(data_dir, datadir_lock.P2P)
    try:
        follower = threading.Thread(target=command)
        follower.start()
        deadline = time.monotonic() + 30
        while not Job.objects.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert jobs.run_queued() == 1
        follower.join(30)
    finally:
        lock.release()
    assert not failed, failed
    said = out.getvalue()
    assert "The node is running: it runs this backup now." in said
    assert "Done: 1 files" in said
