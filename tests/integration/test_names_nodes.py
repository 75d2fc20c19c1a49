"""Names between two real nodes (``runnode`` processes talking libp2p on 127.0.0.1, driven
through their API; ADR 16): a display name travels with the member into each thread it creates
or joins, a thread's own name stays in that thread, and a contact name stays on its node."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.api import wait_for
from tests.support.messaging import by_id, conversation_create, member_id, send, start_all
from tests.support.p2p import Peer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def nodes(tmp_path_factory) -> Iterator[tuple[Peer, Peer]]:
    base = tmp_path_factory.mktemp("names")
    peers = [Peer(base / "alice"), Peer(base / "bob")]
    try:
        start_all(peers)
        yield peers[0], peers[1]
    finally:
        for peer in peers:
            peer.kill()


def _put(peer: Peer, path: str, name: str) -> Any:
    assert peer.api is not None
    return peer.api.request("PUT", path, {"name": name})


def _names(peer: Peer, thread: str) -> dict[str, str]:
    """Member id -> the name ``peer``'s node shows for it."""
    assert peer.api is not None
    members = peer.api.get(f"/api/v1/threads/{thread}/members/")
    return {member["id"]: member["name"] for member in members}


def _shows(peer: Peer, thread: str, member: str, name: str) -> None:
    wait_for(
        lambda: _names(peer, thread).get(member) == name,
        timeout=30,
        what=f"{peer.data_dir.name} to show {name!r} (shows {_names(peer, thread).get(member)!r})",
    )


def test_names_travel_with_members_and_stay_where_they_belong(nodes):
    alice, bob = nodes
    _put(alice, "/api/v1/node/name/", "Alice")
    _put(bob, "/api/v1/node/name/", "Bob")
    chat = conversation_create(alice, "Chat")
    other = alice.thread_create("Garden")
    for thread in (chat, other):
        bob.redeem(alice.invite(thread, "writer"))
    alice_in = {t: member_id(alice, t) for t in (chat, other)}
    bob_in = {t: member_id(bob, t) for t in (chat, other)}

    # Each node wrote its person's name when it created or joined: both see both.
    for thread in (chat, other):
        _shows(bob, thread, alice_in[thread], "Alice")
        _shows(alice, thread, bob_in[thread], "Bob")
    sent = send(alice, chat, "Hello Bob")
    seen = wait_for(
        lambda: by_id(bob, chat).get(sent["id"]), timeout=30, what="Alice's message to reach Bob"
    )
    assert seen["author_name"] == "Alice"

    # Alice's own name in the chat: only the chat says it.
    _put(alice, f"/api/v1/threads/{chat}/my-name/", "Al")
    _shows(bob, chat, alice_in[chat], "Al")
    assert _names(bob, other)[alice_in[other]] == "Alice"

    # Bob's name for Alice in the garden thread: on Bob's node only.
    answer = _put(bob, f"/api/v1/threads/{other}/members/{alice_in[other]}/contact-name/", "Mum")
    assert answer["name"] == "Mum"
    assert answer["own_name"] == "Alice"
    assert _names(bob, other)[alice_in[other]] == "Mum"

    # A new display name reaches the threads without their own name, and no other.
    _put(alice, "/api/v1/node/name/", "Alice Liddell")
    _shows(alice, other, alice_in[other], "Alice Liddell")
    assert bob.api is not None
    bob_garden = bob.api.request(
        "DELETE", f"/api/v1/threads/{other}/members/{alice_in[other]}/contact-name/"
    )
    assert bob_garden["contact_name"] == ""
    _shows(bob, other, alice_in[other], "Alice Liddell")
    assert _names(bob, chat)[alice_in[chat]] == "Al"
    # Nothing of Bob's contact name ever reached Alice's node: she shows her own name.
    assert _names(alice, other)[alice_in[other]] == "Alice Liddell"
