"""runnode as a real process: serves the public site, the PWA files and the API schema; stops
cleanly on SIGTERM; keeps its identity across restarts; its claim link works over HTTP; one node
per data dir; a port in use stops it with a clear message and a non-zero status."""

from __future__ import annotations

import json
import re
import socket
import urllib.error
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path
from urllib.parse import urlencode

import pytest

from apps.core import datadir_lock, identity
from tests.conftest import OWNER_PASSWORD
from tests.support.api import Api
from tests.support.nodes import NodeProcess, manage

pytestmark = pytest.mark.slow


def _get(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.fixture
def node(tmp_path: Path):
    process = NodeProcess(tmp_path / "node").start()
    yield process
    process.kill()


def test_serves_site_pwa_and_schema_then_stops_on_sigterm(node: NodeProcess, tmp_path: Path):
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", node.url)

    status, headers, body = _get(node.url + "/")
    assert status == 200
    assert b"Sereus" in body
    assert "text/html" in headers["Content-Type"]

    status, headers, body = _get(node.url + "/manifest.webmanifest")
    assert status == 200
    assert headers["Content-Type"].startswith("application/manifest+json")
    assert json.loads(body)["display"] == "standalone"

    status, headers, body = _get(node.url + "/sw.js")
    assert status == 200
    assert "javascript" in headers["Content-Type"]

    status, _, body = _get(node.url + "/api/schema/", Accept="application/json")
    assert status == 200
    assert "/api/v1/node/" in json.loads(body)["paths"]

    status, _, _ = _get(node.url + "/static/css/sereus.css")
    assert status == 200
    status, _, _ = _get(node.url + "/api/v1/node/")
    assert status == 401
    status, _, _ = _get(node.url + "/", Host="attacker.example")
    assert status == 400

    assert node.stop() == 0
    log = node.log()
    assert "p2p worker stopped" in log
    assert "background tasks: embedded worker stopped" in log
    assert "Sereus node stopped" in log
    assert "Traceback" not in log

    # Everything the node wrote is private to its owner.
    data_dir = tmp_path / "node"
    for path in [data_dir, *data_dir.rglob("*")]:
        assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"

    # A second start reuses the device key: same peer id, and the API says so.
    device = identity.device_key_load(tmp_path / "node")
    assert node.peer_id == device.peer_id
    second = NodeProcess(tmp_path / "node").start()
    try:
        assert second.peer_id == node.peer_id
        token = manage(tmp_path / "node", "node_token").stdout.strip()
        status, _, body = _get(second.url + "/api/v1/node/", Authorization=f"Token {token}")
        assert status == 200
        assert json.loads(body)["peer_id"] == node.peer_id
    finally:
        assert second.stop() == 0


def test_claim_link_printed_at_first_start_works_once_over_http(node: NodeProcess):
    assert node.claim_url is not None
    assert node.claim_url.startswith(node.url + "/claim/?token=")
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(node.claim_url, timeout=10) as response:  # follows the redirect
        form = response.read().decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
    data = urlencode(
        {
            "csrfmiddlewaretoken": csrf,
            "username": "alice",
            "password1": OWNER_PASSWORD,
            "password2": OWNER_PASSWORD,
        }
    ).encode()
    request = urllib.request.Request(
        node.url + "/claim/", data=data, headers={"Referer": node.url + "/claim/"}
    )
    with opener.open(request, timeout=30) as response:
        page = response.read().decode()
    assert len(re.findall(r"<li>[a-z]+</li>", page)) == 24
    with opener.open(node.url + "/node/", timeout=10) as response:
        assert response.url == node.url + "/node/"  # logged in: not sent to the login page

    # Used: the link now leads to the login page.
    with urllib.request.urlopen(node.claim_url, timeout=10) as response:
        assert response.url.startswith(node.url + "/login/")
    assert node.stop() == 0


def test_bad_flags_are_refused_with_a_clear_message(tmp_path: Path):
    result = manage(tmp_path / "n", "runnode", "--http", "nowhere")
    assert result.returncode != 0
    assert "--http='nowhere'" in result.stderr


def test_one_node_per_data_dir_and_the_api_gives_the_addresses_it_bound(
    node: NodeProcess, tmp_path: Path
):
    data_dir = tmp_path / "node"
    second = manage(data_dir, "runnode", "--http", "127.0.0.1:0")
    assert second.returncode != 0
    assert (
        f"Another node is already running on this data directory ({data_dir}, pid "
        f"{node.proc.pid}). Stop it first, or use --data-dir for a second node."
    ) in second.stderr
    assert "Traceback" not in second.stderr
    # Nor may a restore replace the identity of the running node.
    restore = manage(data_dir, "node_restore", stdin="not a phrase")
    assert restore.returncode != 0
    assert "Another node is already running" in restore.stderr

    # The first node serves on, and says where it listens: the ports it was given (0) were
    # chosen when it started.
    token = manage(data_dir, "node_token").stdout.strip()
    status, _, body = _get(node.url + "/api/v1/node/", Authorization=f"Token {token}")
    assert status == 200
    addresses = json.loads(body)
    assert "http://" + addresses["http"] == node.url
    host, port = re.fullmatch(r"/ip4/(127\.0\.0\.1)/tcp/(\d+)", addresses["p2p_listen"]).groups()
    assert int(port) != 0
    socket.create_connection((host, int(port)), timeout=5).close()  # the p2p host is there

    # Checking a thread reads only and may run beside the node; repairing it may not.
    thread = Api(node.url, token).post("/api/v1/threads/", {"name": "Checked"})["id"]
    check = manage(data_dir, "thread_rebuild", thread)
    assert check.returncode == 0, check.stderr
    assert "matches the live tables" in check.stdout
    repair = manage(data_dir, "thread_rebuild", thread, "--repair")
    assert repair.returncode != 0
    assert "Another node is already running" in repair.stderr
    assert "--repair needs the node stopped" in repair.stderr
    assert node.stop() == 0


@pytest.mark.parametrize("which", ["http", "p2p"])
def test_a_port_in_use_stops_the_node_with_a_clear_message(which: str, tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        http, p2p = "127.0.0.1:0", "/ip4/127.0.0.1/tcp/0"
        if which == "http":
            http = f"127.0.0.1:{port}"
            advice = f"Choose another with --http 127.0.0.1:{port + 1}."
        else:
            p2p = f"/ip4/127.0.0.1/tcp/{port}"
            advice = f"Choose another p2p port with --p2p-listen /ip4/127.0.0.1/tcp/{port + 1}"
        result = manage(tmp_path / "n", "runnode", "--http", http, "--p2p-listen", p2p)
    assert result.returncode != 0
    assert f"Port {port} on 127.0.0.1 is already in use by another program. " in result.stderr
    assert advice in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    # Stopped, everything: the data dir is free for the next start.
    assert datadir_lock.record(tmp_path / "n") is None
    assert datadir_lock.record(tmp_path / "n", datadir_lock.P2P) is None
