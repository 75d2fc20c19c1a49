"""Crash test: a process writing through the ORM is killed with SIGKILL at random moments, 50
times. After each kill every acknowledged write is there with its op, no op is duplicated, and
the log is a valid chain that rebuilds the live table."""

from __future__ import annotations

import os
import queue
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from apps.core import identity
from apps.core.thread.lww import materialize
from apps.core.thread.replica import Replica
from apps.core.thread.writer import ThreadWriter
from apps.core.threads.database import NodeKeys, ThreadDatabase
from tests.support.nodes import REPO, node_env

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

KILLS = 50


def _writer(data_dir: Path, thread: bytes) -> subprocess.Popen[str]:
    """The writers' parent (``tests.support.crash_writer``): each ``go`` forks a writer."""
    env = node_env(data_dir, {"DJANGO_SETTINGS_MODULE": "sereus_web.settings.test"})
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.crash_writer", thread.hex()],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _lines(parent: subprocess.Popen[str]) -> queue.Queue[str]:
    """The parent's output lines, read by a thread: the test waits for each with a deadline
    (a writer that stops answering fails the test instead of hanging the suite)."""
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert parent.stdout is not None
        for line in parent.stdout:
            lines.put(line)
        lines.put("")  # the parent ended

    threading.Thread(target=read, daemon=True).start()
    return lines


def _next(lines: queue.Queue[str]) -> str:
    try:
        return lines.get(timeout=60)
    except queue.Empty:
        raise AssertionError("the writers' parent said nothing for a minute") from None


def _kill_one(
    parent: subprocess.Popen[str], lines: queue.Queue[str], rng: random.Random
) -> set[str]:
    """Start a writer, SIGKILL it at a random moment; the ids it acknowledged."""
    assert parent.stdin is not None
    parent.stdin.write("go\n")
    parent.stdin.flush()
    line = _next(lines)
    if not line.startswith("ready "):
        parent.kill()
        raise AssertionError(f"the writer did not start: {line}{parent.communicate()[1]}")
    pid = int(line.split()[1])
    time.sleep(rng.uniform(0.0, 0.25))
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        parent.kill()
        raise AssertionError(f"the writer died by itself: {parent.communicate()[1]}") from None
    acked = set()
    while line := _next(lines):
        if line.startswith("ack "):
            acked.add(line.split()[1])
        elif line.startswith("done "):
            return acked
    raise AssertionError(f"the writers' parent stopped: {parent.communicate()[1]}")


def _check(path: Path, thread: bytes, keys: NodeKeys, acked: set[str]) -> int:
    """Open the file as a restarted node would and check it; returns the number of ops."""
    connection = sqlite3.connect(path)
    try:
        log = [
            raw
            for (raw,) in connection.execute(
                "SELECT raw FROM sereus_ops WHERE place = 'log' ORDER BY n"
            )
        ]
        hashes = [h for (h,) in connection.execute("SELECT hash FROM sereus_ops")]
        live = {pk for (pk,) in connection.execute('SELECT "id" FROM replicated_app_note')}
        pending = connection.execute("SELECT count(*) FROM sereus_pending").fetchone()[0]
    finally:
        connection.close()
    assert len(hashes) == len(set(hashes)), "an op was written twice"
    assert pending == 0, "a committed transaction left captured changes unpacked"
    from apps.core.thread import keys as thread_keys

    replica = Replica.for_members(thread, [thread_keys.member_key(keys.master_secret, thread)])
    for start in range(0, len(log), 256):
        results = replica.ingest_many(log[start : start + 256])
        assert all(r.status == "accepted" for r in results), [
            (r.status, r.reason) for r in results if r.status != "accepted"
        ]
    assert not replica.forks
    assert not replica.pending
    in_log = set(materialize(replica.accepted_data()).get("replicated_app_note", {}))
    assert acked <= live, f"acknowledged writes lost: {sorted(acked - live)[:3]}"
    assert live == in_log, "the live table and the log disagree"
    return len(log)


def test_kill_9_at_random_moments_loses_no_acknowledged_write(
    tmp_path: Path, thread_databases_allowed
):
    data_dir = tmp_path / "node"
    data_dir.mkdir(mode=0o700)
    identity.master_secret_create(data_dir, bytes(range(32)))
    device = identity.device_key_ensure(data_dir)
    keys = NodeKeys(device.signing_key, bytes(range(32)))
    writer = ThreadWriter.create(master_secret=keys.master_secret, device_key=keys.device, name="c")
    path = data_dir / "threads" / f"{writer.thread.hex()}.sqlite3"
    setup = ThreadDatabase(
        writer.thread, path=path, alias=f"thread_{writer.thread.hex()}_crash", node=keys
    )
    setup.ingest(op.raw for op in writer.replica.admitted)
    setup.wrapper.close()

    rng = random.Random(99)
    acked: set[str] = set()
    ops = 0
    parent = _writer(data_dir, writer.thread)
    lines = _lines(parent)
    try:
        for _ in range(KILLS):
            acked |= _kill_one(parent, lines, rng)
            ops = _check(path, writer.thread, keys, acked)
    finally:
        parent.kill()
        parent.communicate(timeout=30)
    assert len(acked) > KILLS, "the writer got to write between kills"
    assert ops >= len(acked) + 2
