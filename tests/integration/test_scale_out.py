"""Scale-out mode's separate p2p worker, as an operator meets it: one per data dir, and a join
through a node whose worker is not running fails in seconds with a plain answer."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from apps.core import datadir_lock
from tests.integration.test_p2p import (  # noqa: F401 - peers is a fixture
    REDIS_URL,
    peers,
    redis_available,
    start,
)
from tests.support.api import ApiError
from tests.support.nodes import REPO, node_env

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not redis_available(), reason="no Redis on 127.0.0.1:6379"),
]


def test_join_through_a_node_whose_p2p_worker_is_down_fails_fast(
    peers,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
):
    a = start(peers, tmp_path / "a")
    b = start(peers, tmp_path / "b", redis_url=REDIS_URL)
    assert b.worker is not None

    # A second p2p worker on B's data dir would be B's peer id twice: it is refused.
    second = subprocess.run(
        [sys.executable, "manage.py", "runworker", "sereus-p2p"],
        cwd=REPO,
        env=node_env(b.data_dir, b.env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert second.returncode != 0
    assert (
        "Another process already runs this node's peer-to-peer host on this data directory "
        f"({b.data_dir}, pid {b.worker.pid})"
    ) in second.stderr

    b.worker.terminate()
    assert b.worker.wait(30) == 0
    b.worker = None
    assert datadir_lock.record(b.data_dir, datadir_lock.P2P) is None

    thread = a.thread_create("Nobody home")
    link = a.invite(thread)
    began = time.monotonic()
    with pytest.raises(ApiError) as refused:
        b.redeem(link)
    took = time.monotonic() - began
    assert refused.value.status == 503
    assert refused.value.body["detail"] == (
        "This node's peer-to-peer worker is not running, so it cannot reach the inviter. "
        "Start it with: python manage.py runworker sereus-p2p"
    )
    assert took < 15, f"the join took {took:.1f}s to fail"
    # Nothing is left half-joined: the thread is not on B.
    assert all(t["id"] != thread for t in b.api.get("/api/v1/threads/"))
