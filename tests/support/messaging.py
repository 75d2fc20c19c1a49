"""Conversations between real nodes (``Peer``): create, send, edit, delete and read messages
through each node's REST API, as a person's client would."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.p2p import Peer


@dataclass
class Nodes:
    alice: Peer
    bob: Peer
    carol: Peer

    def each(self) -> tuple[Peer, Peer, Peer]:
        return (self.alice, self.bob, self.carol)


def start_all(peers: list[Peer]) -> None:
    with ThreadPoolExecutor(len(peers)) as pool:  # each start waits on its own process
        list(pool.map(Peer.start, peers))


@contextmanager
def three_nodes(base: Path) -> Iterator[Nodes]:
    """Alice's, Bob's and Carol's nodes, started at once, killed at the end."""
    peers = [Peer(base / name) for name in ("alice", "bob", "carol")]
    try:
        start_all(peers)
        yield Nodes(*peers)
    finally:
        for peer in peers:
            peer.kill()


def all_running(nodes: Nodes) -> Nodes:
    """The nodes, each one running again (a test, or a failed one, may have stopped one)."""
    for peer in nodes.each():
        if peer.process.proc is None or peer.process.proc.poll() is not None:
            peer.start()
    return nodes


def _api(peer: Peer):
    assert peer.api is not None
    return peer.api


def conversation_create(peer: Peer, name: str) -> str:
    return _api(peer).post("/api/v1/threads/", {"name": name, "app": "messaging"})["id"]


def thread_detail(peer: Peer, thread: str) -> dict[str, Any]:
    return _api(peer).get(f"/api/v1/threads/{thread}/")


def member_id(peer: Peer, thread: str) -> str:
    """This node's member key in the thread, hex."""
    return thread_detail(peer, thread)["member_id"]


def send(peer: Peer, thread: str, text: str, **extra: Any) -> dict[str, Any]:
    return _api(peer).post(f"/api/v1/threads/{thread}/messages/", {"text": text, **extra})


def edit(peer: Peer, thread: str, message: str, text: str) -> dict[str, Any]:
    path = f"/api/v1/threads/{thread}/messages/{message}/"
    return _api(peer).request("PATCH", path, {"text": text})


def delete(peer: Peer, thread: str, message: str) -> None:
    _api(peer).delete(f"/api/v1/threads/{thread}/messages/{message}/")


def page(peer: Peer, thread: str, before: str | None = None) -> list[dict[str, Any]]:
    query = f"?before={before}" if before else ""
    return _api(peer).get(f"/api/v1/threads/{thread}/messages/{query}")


def messages(peer: Peer, thread: str) -> list[dict[str, Any]]:
    """Every message of the conversation on this node, newest first, following the ``before``
    cursor from page to page."""
    found: list[dict[str, Any]] = []
    before = None
    while batch := page(peer, thread, before):
        found += batch
        before = batch[-1]["cursor"]
    return found


def by_id(peer: Peer, thread: str) -> dict[str, dict[str, Any]]:
    return {m["id"]: m for m in messages(peer, thread)}
