"""The request path of one real node (a ``runnode`` process on 127.0.0.1), with floors measured in
the same run:

- a trivial authenticated API GET (``/api/v1/node/`` with the node's API token) through HTTP,
  p50 over many requests, on one kept-alive connection (what a client with a connection pool
  sees) and on a new connection each (what ``urllib`` does); and the CPU time a request takes,
  in the node and in process (steadier than wall time on a busy machine). Floor: the same
  view, same token, same databases, called in process through Django's test ``Client`` (a
  ``manage.py shell`` on the node's data dir, beside the running node): all of Django, DRF and
  the database, no daphne and no socket.
- sequential message POSTs through the messaging API on node A, each sent as soon as the previous
  one was answered, with node B a member of the conversation receiving them: messages/s
  accepted on A (target >= 200/s), and until B lists the last one; and A's CPU time per message
  (its whole process: the requests and the push to B), steadier than the rates on a busy machine.
  Floor: one-row commits per second of plain SQLite with the same durability on the same disk
  (each message is one).
"""

from __future__ import annotations

import http.client
import json
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil

from bench.report import figure
from bench.stats import percentiles
from tests.support.api import wait_for
from tests.support.nodes import manage
from tests.support.p2p import Peer

TRIVIAL = "/api/v1/node/"
MESSAGES_TARGET = 200  # messages/s accepted, sequentially, on one node


class KeptAlive:
    """One HTTP/1.1 connection to a node, reused for every request (as a pooled client would)."""

    def __init__(self, url: str, token: str) -> None:
        parts = urlsplit(url)
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        self.headers = {
            "Authorization": f"Token {token}",
            "Accept": "application/json",
            "Content-Type": "application/json",
        }

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        self.connection.request(method, path, body=data, headers=self.headers)
        response = self.connection.getresponse()
        raw = response.read()
        if response.status >= 400:
            raise AssertionError(f"HTTP {response.status} on {path}: {raw[:300]!r}")
        return json.loads(raw) if raw else None

    def close(self) -> None:
        self.connection.close()


def _timed_gets(get, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        get()
        samples.append(time.perf_counter() - started)
    return samples


def in_process(token: str, host: str, path: str, count: int) -> None:
    """Run inside ``manage.py shell`` on the node's data dir: ``count`` GETs of ``path`` through
    Django's test Client with the token and the node's own Host; prints the samples (seconds)
    as one JSON line."""
    from django.test import Client

    client = Client(
        HTTP_AUTHORIZATION=f"Token {token}", HTTP_ACCEPT="application/json", HTTP_HOST=host
    )

    def get() -> None:
        response = client.get(path)
        assert response.status_code == 200, (response.status_code, response.content[:300])

    _timed_gets(get, 20)  # warm-up: imports, URL resolver, first queries
    cpu_before = time.process_time()
    samples = _timed_gets(get, count)
    print(json.dumps({"samples": samples, "cpu_s": time.process_time() - cpu_before}))


def _in_process_floor(peer: Peer, count: int) -> tuple[list[float], float]:
    """The in-process samples (seconds) and the CPU time (ms) a request took there."""
    host = urlsplit(peer.process.url).netloc
    call = f"in_process({peer.token!r}, {host!r}, {TRIVIAL!r}, {count})"
    code = f"from bench.request_path import in_process; {call}"
    result = manage(peer.data_dir, "shell", "-v", "0", "-c", code, env=peer.env)
    if result.returncode != 0:
        raise RuntimeError(result.stderr)
    found = json.loads(result.stdout.strip().splitlines()[-1])
    return found["samples"], found["cpu_s"] / count * 1000


def _trivial_get(peer: Peer, count: int) -> dict[str, Any]:
    assert peer.api is not None
    assert peer.token is not None
    kept = KeptAlive(peer.process.url, peer.token)
    try:
        _timed_gets(lambda: kept.request("GET", TRIVIAL), 50)  # warm-up
        cpu_before = _cpu_s(peer)
        alive = _timed_gets(lambda: kept.request("GET", TRIVIAL), count)
        cpu_ms = (_cpu_s(peer) - cpu_before) / count * 1000
    finally:
        kept.close()
    fresh = _timed_gets(lambda: peer.api.get(TRIVIAL), count)
    floor, floor_cpu_ms = _in_process_floor(peer, count)
    result = {
        "path": TRIVIAL,
        "requests": count,
        "kept_alive": percentiles(alive),
        "new_connection": percentiles(fresh),
        "in_process_floor": percentiles(floor),
        "node_cpu_ms_per_request": round(cpu_ms, 3),
        "in_process_cpu_ms_per_request": round(floor_cpu_ms, 3),
    }
    p50, floor_p50 = statistics.median(alive), statistics.median(floor)
    result["ratio_p50"] = round(p50 / floor_p50, 2)
    result["figure"] = figure(
        "trivial authenticated API GET through daphne, p50",
        round(p50 * 1000, 2),
        "ms",
        floor=f"same view in process {floor_p50 * 1000:.2f} ms ({p50 / floor_p50:.1f}x); new "
        f"connection each: {statistics.median(fresh) * 1000:.2f} ms; CPU a request: the node "
        f"{cpu_ms:.2f} ms (kept alive), in process {floor_cpu_ms:.2f} ms",
    )
    return result


def _commit_floor(folder: Path, count: int) -> float:
    """One-row commits per second of plain SQLite with a thread database's durability (WAL,
    synchronous=FULL) on the same disk: every accepted message costs at least one."""
    connection = sqlite3.connect(folder / "floor.sqlite3", isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, text TEXT)")
        started = time.perf_counter()
        for i in range(count):
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("INSERT INTO t (text) VALUES (?)", (f"message {i}",))
            connection.execute("COMMIT")
        return count / (time.perf_counter() - started)
    finally:
        connection.close()


def _cpu_s(peer: Peer) -> float:
    """CPU seconds the node's process has used (all its threads: requests, the p2p push):
    steadier than wall time on a shared machine, where the wall figures swing up to 2x."""
    assert peer.process.proc is not None
    times = psutil.Process(peer.process.proc.pid).cpu_times()
    return times.user + times.system


def _messages(alice: Peer, bob: Peer, count: int, commits_per_s: float) -> dict[str, Any]:
    from tests.support.messaging import conversation_create

    assert alice.token is not None
    assert bob.api is not None
    thread = conversation_create(alice, "request path")
    bob.redeem(alice.invite(thread, "writer"))
    path = f"/api/v1/threads/{thread}/messages/"
    kept = KeptAlive(alice.process.url, alice.token)
    try:
        for i in range(10):  # warm-up: the thread's database, the push sessions to Bob
            kept.request("POST", path, {"text": f"warm-up {i}"})
        wait_for(lambda: len(bob.api.get(path)) >= 10, timeout=60, what="Bob's warm-up")
        samples = []
        cpu_before = _cpu_s(alice)
        started = time.perf_counter()
        for i in range(count):
            sent = time.perf_counter()
            kept.request("POST", path, {"text": f"message {i} of the request path benchmark"})
            samples.append(time.perf_counter() - sent)
        accepted_s = time.perf_counter() - started
        cpu_ms = (_cpu_s(alice) - cpu_before) / count * 1000
    finally:
        kept.close()
    last = f"message {count - 1} of the request path benchmark"

    def bob_has_last() -> bool:
        return any(m["text"] == last for m in bob.api.get(path))

    wait_for(bob_has_last, timeout=300, interval=0.05, what="Bob to list the last message")
    received_s = time.perf_counter() - started
    rate = count / accepted_s
    return {
        "messages": count,
        "post": percentiles(samples),
        "accepted_per_s": round(rate, 1),
        "alice_cpu_ms_per_message": round(cpu_ms, 2),
        "received_by_bob_per_s": round(count / received_s, 1),
        "figure": figure(
            "message POSTs accepted sequentially on one node (a second node receiving)",
            round(rate, 1),
            "messages/s",
            target=MESSAGES_TARGET,
            floor=f"plain SQLite one-row commits {commits_per_s:.0f}/s; POST p50 "
            f"{statistics.median(samples) * 1000:.2f} ms; Alice's node used {cpu_ms:.2f} ms of "
            f"CPU a message (request and push to Bob); all on Bob's node after "
            f"{received_s:.2f} s ({count / received_s:.0f}/s)",
        ),
    }


def run(*, quick: bool = False) -> dict[str, Any]:
    gets = 300 if quick else 2000
    messages = 200 if quick else 1000
    folder = Path(tempfile.mkdtemp(prefix="sereus-bench-request-"))
    alice, bob = Peer(folder / "alice"), Peer(folder / "bob")
    try:
        with ThreadPoolExecutor(2) as pool:  # each start waits for its own p2p host
            for future in [pool.submit(alice.start), pool.submit(bob.start)]:
                future.result()
        result = {"trivial_get": _trivial_get(alice, gets)}
        commits_per_s = _commit_floor(folder, messages)
        result["messages"] = _messages(alice, bob, messages, commits_per_s)
        result["messages"]["plain_sqlite_commits_per_s"] = round(commits_per_s)
    finally:
        for peer in (alice, bob):
            if peer.process.proc is not None and peer.process.proc.poll() is None:
                peer.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return result


if __name__ == "__main__":
    sys.exit("run it as: python -m bench request_path")
