"""Conversations between real nodes: separate ``runnode`` processes on 127.0.0.1 talking libp2p,
driven through their messaging API. Authorship, edits and deletes, offline catch-up in order,
privacy from non-members, and a member's removal (and return)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.support.api import ApiError, wait_for
from tests.support.messaging import (
    Nodes,
    all_running,
    by_id,
    conversation_create,
    delete,
    edit,
    member_id,
    messages,
    page,
    send,
    thread_detail,
    three_nodes,
)
from tests.support.p2p import Peer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def nodes(tmp_path_factory) -> Iterator[Nodes]:
    """Three nodes for the whole module (each test makes conversations of its own)."""
    with three_nodes(tmp_path_factory.mktemp("messaging")) as started:
        yield started


@pytest.fixture
def running(nodes: Nodes) -> Nodes:
    return all_running(nodes)


def arrived(peer: Peer, thread: str, message: str, *, timeout: float = 30.0) -> dict:
    """Wait until ``peer`` holds ``message``; returns it as that node shows it."""
    return wait_for(
        lambda: by_id(peer, thread).get(message),
        timeout=timeout,
        what=f"message {message} to reach {peer.data_dir.name}",
    )


def never_arrives(peer: Peer, thread: str, message: str, *, seconds: float = 3.0) -> None:
    """``message`` stays away from ``peer`` (checked again and again for ``seconds``)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert message not in by_id(peer, thread)
        time.sleep(0.2)


def refused(call) -> tuple[int, str]:
    with pytest.raises(ApiError) as failure:
        call()
    return failure.value.status, failure.value.body["error"]


def test_two_nodes_converse_reply_and_only_authors_edit_or_delete(running):
    alice, bob = running.alice, running.bob
    thread = conversation_create(alice, "Alice and Bob")
    assert bob.redeem(alice.invite(thread, "writer"))["id"] == thread
    alice_id, bob_id = member_id(alice, thread), member_id(bob, thread)
    assert alice_id != bob_id

    sent = send(alice, thread, "Hello **Bob**")
    assert (sent["author"], sent["mine"], sent["edited_at"]) == (alice_id, True, None)
    seen = arrived(bob, thread, sent["id"])
    assert seen["text"] == "Hello **Bob**"
    assert seen["html"] == sent["html"]
    assert "<strong>Bob</strong>" in seen["html"]
    assert (seen["author"], seen["mine"], seen["reply_to"]) == (alice_id, False, None)
    assert seen["created_at"] == sent["created_at"]
    assert seen["cursor"] == sent["cursor"]

    reply = send(bob, thread, "Hi Alice", reply_to=sent["id"])
    assert (reply["author"], reply["mine"], reply["reply_to"]) == (bob_id, True, sent["id"])
    got = arrived(alice, thread, reply["id"])
    assert (got["text"], got["author"], got["mine"]) == ("Hi Alice", bob_id, False)
    assert got["reply_to"] == sent["id"]
    assert [m["id"] for m in messages(alice, thread)] == [reply["id"], sent["id"]]

    # Bob may neither edit nor delete Alice's message: refused, and nothing written anywhere.
    assert refused(lambda: edit(bob, thread, sent["id"], "Bob was here")) == (403, "forbidden")
    assert refused(lambda: delete(bob, thread, sent["id"])) == (403, "forbidden")
    # A later message of Bob's reaching Alice means anything Bob wrote before it has too.
    marker = send(bob, thread, "after the refusals")
    arrived(alice, thread, marker["id"])
    for peer in (alice, bob):
        same = by_id(peer, thread)[sent["id"]]
        assert (same["text"], same["edited_at"], same["author"]) == (
            "Hello **Bob**",
            None,
            alice_id,
        )

    # Alice edits her message: Bob sees the new text, marked edited, still hers.
    edited = edit(alice, thread, sent["id"], "Hello *Bob*, edited")
    assert edited["edited_at"] is not None
    wait_for(
        lambda: by_id(bob, thread)[sent["id"]]["text"] == "Hello *Bob*, edited",
        what="the edit to reach Bob",
    )
    seen = by_id(bob, thread)[sent["id"]]
    assert seen["edited_at"] is not None
    assert "<em>Bob</em>" in seen["html"]
    assert (seen["author"], seen["created_at"], seen["cursor"]) == (
        alice_id,
        sent["created_at"],
        sent["cursor"],
    )

    # Bob deletes his own reply: gone on both nodes.
    delete(bob, thread, reply["id"])
    wait_for(lambda: reply["id"] not in by_id(alice, thread), what="the delete to reach Alice")
    assert [m["id"] for m in messages(bob, thread)] == [marker["id"], sent["id"]]


def test_a_node_that_was_offline_gets_every_message_in_order(running):
    alice, bob = running.alice, running.bob
    thread = conversation_create(alice, "While you were out")
    bob.redeem(alice.invite(thread))
    first = send(alice, thread, "before")
    arrived(bob, thread, first["id"])
    answer = send(bob, thread, "before, from Bob")
    arrived(alice, thread, answer["id"])

    bob.stop()
    sent = [send(alice, thread, f"offline {i}")["id"] for i in range(50)]
    bob.start()
    expected = [first["id"], answer["id"], *sent]  # oldest first
    wait_for(
        lambda: len(messages(bob, thread)) == len(expected),
        timeout=60,
        interval=0.25,
        what="Bob's node to catch up",
    )
    newest = page(bob, thread)
    assert len(newest) == 50  # a full page, and one more page behind it
    older = page(bob, thread, before=newest[-1]["cursor"])
    assert len(older) == 2
    assert page(bob, thread, before=older[-1]["cursor"]) == []
    listed = newest + older
    assert [m["id"] for m in reversed(listed)] == expected
    assert [m["text"] for m in reversed(listed)][2:] == [f"offline {i}" for i in range(50)]
    assert [m["cursor"] for m in listed] == [m["cursor"] for m in messages(alice, thread)]
    assert not any(m["mine"] for m in listed if m["id"] in sent)


def test_a_node_never_invited_gets_nothing(running):
    alice, bob, carol = running.alice, running.bob, running.carol
    # Carol shares another conversation with Alice, so their nodes do talk to each other.
    shared = conversation_create(alice, "Alice and Carol")
    carol.redeem(alice.invite(shared))
    thread = conversation_create(alice, "Not for Carol")
    bob.redeem(alice.invite(thread))
    private = send(alice, thread, "just us two")
    arrived(bob, thread, private["id"])

    def nothing_on_carol() -> None:
        assert thread not in [t["id"] for t in carol.api.get("/api/v1/threads/")]
        for path in ("", "messages/", "members/"):
            assert refused(lambda p=path: carol.api.get(f"/api/v1/threads/{thread}/{p}"))[0] == 404
        assert not (carol.data_dir / "threads" / f"{thread}.sqlite3").exists()

    nothing_on_carol()
    more = [send(alice, thread, "more from Alice"), send(bob, thread, "more from Bob")]
    arrived(bob, thread, more[0]["id"])
    arrived(alice, thread, more[1]["id"])
    hello = send(alice, shared, "hello Carol")  # her own conversation still reaches her
    arrived(carol, shared, hello["id"])
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        nothing_on_carol()
        time.sleep(0.3)


def test_a_removed_member_gets_nothing_new_and_may_be_invited_again(running):
    alice, bob, carol = running.alice, running.bob, running.carol
    thread = conversation_create(alice, "Group")
    bob.redeem(alice.invite(thread))
    carol.redeem(alice.invite(thread))
    hello = send(alice, thread, "hello both")
    for peer in (bob, carol):
        arrived(peer, thread, hello["id"])

    bob_id = member_id(bob, thread)
    alice.api.delete(f"/api/v1/threads/{thread}/members/{bob_id}/")
    wait_for(
        lambda: thread_detail(bob, thread)["state"] == "removed",
        what="Bob's node to learn of the removal",
    )
    assert thread not in [t["id"] for t in bob.api.get("/api/v1/threads/")]
    secret = send(alice, thread, "only for Carol now")
    arrived(carol, thread, secret["id"])
    never_arrives(bob, thread, secret["id"])
    assert refused(lambda: send(bob, thread, "am I still here?")) == (403, "forbidden")
    assert [m["id"] for m in messages(bob, thread)] == [hello["id"]]  # he keeps what he had

    # Alice invites Bob again with a new link, while his node still holds the removed thread:
    # redeeming it works (his node is not "already in the thread": it was removed).
    assert bob.redeem(alice.invite(thread))["id"] == thread
    wait_for(lambda: thread_detail(bob, thread)["state"] == "active", what="Bob to be back in")
    welcome = send(alice, thread, "welcome back, Bob")
    seen = arrived(bob, thread, welcome["id"])
    assert (seen["author"], seen["mine"]) == (member_id(alice, thread), False)
    back = send(bob, thread, "glad to be back")
    for peer in (alice, carol):
        arrived(peer, thread, back["id"])
    # Readmitted as a writer (a role that reads history), he is given the older epochs' keys:
    # what was said while he was out is his to read now, as it would be for any new writer.
    order = [back["id"], welcome["id"], secret["id"], hello["id"]]
    wait_for(
        lambda: [m["id"] for m in messages(bob, thread)] == order,
        what="Bob to hold the whole conversation",
    )
