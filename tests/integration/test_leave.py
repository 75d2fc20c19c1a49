"""Leaving a thread between three real nodes (issue 11): C leaves over the API; within seconds A
and B no longer list C, and the thread's keys were rotated without it (what A writes next never
reaches C's node, nor a key for it); with a new invite C is a member again and reads on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.api import wait_for
from tests.support.messaging import Nodes, all_running, member_id, three_nodes
from tests.support.p2p import Peer

pytestmark = pytest.mark.slow

SECONDS = 10.0  # "within a few seconds", with margin for a loaded machine


@pytest.fixture(scope="module")
def nodes(tmp_path_factory) -> Iterator[Nodes]:
    with three_nodes(tmp_path_factory.mktemp("leave")) as started:
        yield started


def members(peer: Peer, thread: str) -> set[str]:
    assert peer.api is not None
    return {m["id"] for m in peer.api.get(f"/api/v1/threads/{thread}/members/")}


def ops(peer: Peer, thread: str) -> list[dict]:
    assert peer.api is not None
    return peer.api.get(f"/api/v1/threads/{thread}/ops/?limit=1000")["ops"]


def titles(peer: Peer, thread: str) -> set[str]:
    return {note["title"] for note in peer.notes(thread)}


def test_a_leave_reaches_everyone_the_keys_rotate_and_a_new_invite_brings_the_leaver_back(
    nodes: Nodes,
):
    a, b, c = all_running(nodes).each()
    assert a.api is not None
    assert c.api is not None
    thread = a.thread_create("Club")
    b.redeem(a.invite(thread))
    c.redeem(a.invite(thread))
    leaver = member_id(c, thread)
    everyone = {member_id(a, thread), member_id(b, thread), leaver}
    wait_for(lambda: members(b, thread) == everyone, what="B to know all three members")
    c_device = c.api.get(f"/api/v1/threads/{thread}/members/")[0]["devices"]
    a.note(thread, "before")
    wait_for(lambda: "before" in titles(c, thread), what="C to read A's note")

    left = c.api.request("POST", f"/api/v1/threads/{thread}/leave/", {})
    assert (left["state"], left["problem"]) == ("left", ""), "A's node took the leave at once"
    for peer in (a, b):
        wait_for(
            lambda peer=peer: leaver not in members(peer, thread),
            timeout=SECONDS,
            what=f"{peer.data_dir.name} to see C leave",
        )

    # A (the owner: it could have removed C) rotated the keys as it took in the leave.
    log = ops(a, thread)
    leave_at = max(op["n"] for op in log if op["device"] in c_device)
    rotations = [op for op in log if op["kind"] == "keys" and op["n"] > leave_at]
    assert rotations, "a new key epoch after the leave"
    a.note(thread, "while C was away")
    wait_for(lambda: "while C was away" in titles(b, thread), what="B to read A's new note")
    held = {op["hash"] for op in ops(c, thread)}
    assert not held & {op["hash"] for op in rotations}, "C's node holds no key of the new epoch"
    assert "while C was away" not in titles(c, thread)

    # Back with a new invite: a member again, reading what is written from now on.
    joined = c.redeem(a.invite(thread))
    assert joined["id"] == thread
    assert c.api.get(f"/api/v1/threads/{thread}/")["state"] == "active"
    wait_for(lambda: leaver in members(b, thread), timeout=SECONDS, what="B to see C back")
    a.note(thread, "welcome back")
    wait_for(lambda: "welcome back" in titles(c, thread), timeout=SECONDS, what="C to read on")
    c.note(thread, "glad to be back")
    wait_for(lambda: "glad to be back" in titles(b, thread), what="B to read C again")
