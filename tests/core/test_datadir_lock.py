"""The data dir lock (one node per data dir) and the addresses a running node recorded in it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from apps.core import datadir_lock
from apps.core.datadir_lock import NODE, P2P, DataDirBusy, DataDirLock
from apps.core.listen_errors import http_listen_error, p2p_listen_error
from apps.core.node_addresses import http_note, p2p_note, running_config
from sereus_web.config import HttpBind

HOLD = """
import sys, time
from pathlib import Path
from apps.core.datadir_lock import DataDirLock
lock = DataDirLock.acquire(Path(sys.argv[1]))
lock.note(http=["127.0.0.1", 9123])
print("held", flush=True)
time.sleep(60)
"""


def test_a_second_holder_is_refused_naming_the_data_dir_and_pid(tmp_path: Path):
    first = DataDirLock.acquire(tmp_path)
    with pytest.raises(DataDirBusy) as refused:
        DataDirLock.acquire(tmp_path)
    assert str(refused.value) == (
        f"Another node is already running on this data directory ({tmp_path}, pid "
        f"{os.getpid()}). Stop it first, or use --data-dir for a second node."
    )
    # The p2p lock is a lock of its own.
    DataDirLock.acquire(tmp_path, P2P).release()
    first.release()
    DataDirLock.acquire(tmp_path).release()


def test_a_killed_holder_leaves_no_stale_lock_or_record(tmp_path: Path):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        assert datadir_lock.record(tmp_path) == {"pid": holder.pid, "http": ["127.0.0.1", 9123]}
        with pytest.raises(DataDirBusy, match=f"pid {holder.pid}"):
            DataDirLock.acquire(tmp_path)
    finally:
        holder.kill()
        holder.wait(10)
    # The kernel dropped the lock with the process: the record it left counts no more.
    assert datadir_lock.record(tmp_path) is None
    DataDirLock.acquire(tmp_path).release()


def test_held_takes_every_lock_or_none(tmp_path: Path):
    p2p = DataDirLock.acquire(tmp_path, P2P)
    with (
        pytest.raises(DataDirBusy, match="peer-to-peer host"),
        datadir_lock.held(tmp_path, NODE, P2P),
    ):
        pass
    p2p.release()
    # The node lock taken on the way was given back.
    DataDirLock.acquire(tmp_path, NODE).release()


def test_running_config_has_the_bound_addresses_while_the_node_runs(settings, data_dir: Path):
    asked = settings.SEREUS
    assert running_config() == asked  # nothing runs: the settings are the answer

    node = DataDirLock.acquire(data_dir, NODE)
    node.note(**p2p_note("/ip4/0.0.0.0/tcp/0", None), **http_note("127.0.0.1", 43210))
    config = running_config()
    assert (config.http.host, config.http.port) == ("127.0.0.1", 43210)
    assert config.p2p_listen == "/ip4/0.0.0.0/tcp/0"  # the host has not bound yet

    p2p = DataDirLock.acquire(data_dir, P2P)
    p2p.note(**p2p_note("/ip4/0.0.0.0/tcp/0", 40123))
    assert running_config().p2p_listen == "/ip4/0.0.0.0/tcp/40123"
    assert running_config().domain == asked.domain  # the rest is the settings'

    p2p.release()
    node.release()
    assert running_config() == asked


@pytest.mark.parametrize("page", ["core:settings", "core:network"])
def test_settings_pages_have_the_port_the_node_listens_on(
    page: str, owner_client: Client, data_dir: Path
):
    lock = DataDirLock.acquire(data_dir, NODE)
    try:
        lock.note(**http_note("127.0.0.1", 43217))
        response = owner_client.get(reverse(page))
    finally:
        lock.release()
    # What the page is given (where the template shows it is the template's business).
    assert response.context["config"].http == HttpBind("127.0.0.1", 43217)
    assert "127.0.0.1:43217" in response.content.decode()


def test_node_api_gives_the_bound_addresses(owner_client: Client, data_dir: Path):
    node = DataDirLock.acquire(data_dir, NODE)
    p2p = DataDirLock.acquire(data_dir, P2P)
    try:
        node.note(**http_note("::1", 43218))
        p2p.note(**p2p_note("/ip6/::/tcp/0", 40999))
        body = owner_client.get("/api/v1/node/").json()
    finally:
        p2p.release()
        node.release()
    assert body["http"] == "[::1]:43218"
    assert body["p2p_listen"] == "/ip6/::/tcp/40999"


def test_listen_errors_name_the_port_and_another_choice():
    busy = OSError(98, "Address already in use")
    assert str(http_listen_error(HttpBind("127.0.0.1", 8000), busy)) == (
        "Port 8000 on 127.0.0.1 is already in use by another program. "
        "Choose another with --http 127.0.0.1:8001."
    )
    assert str(p2p_listen_error("/ip4/0.0.0.0/tcp/4001", busy)) == (
        "Port 4001 on 0.0.0.0 is already in use by another program. Choose another p2p port "
        "with --p2p-listen /ip4/0.0.0.0/tcp/4002 (or SEREUS_P2P_LISTEN)."
    )
    assert "below 1024" in str(http_listen_error(HttpBind("::1", 80), OSError(13, "denied")))
