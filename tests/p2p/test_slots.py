"""Inbound session slots: strangers share a small pool, members the rest, each peer a few."""

from __future__ import annotations

from apps.p2p.slots import PER_PEER, STRANGERS, TOTAL, SessionSlots


def test_strangers_fill_only_their_pool_and_members_still_get_slots():
    slots = SessionSlots()
    held = [f"stranger-{i}" for i in range(TOTAL) if slots.take(f"stranger-{i}", "stranger")]
    assert len(held) == STRANGERS
    members = [f"member-{i}" for i in range(TOTAL) if slots.take(f"member-{i}", "member")]
    assert len(members) == TOTAL - STRANGERS
    assert slots.summary() == {
        "members": TOTAL - STRANGERS,
        "member_slots": TOTAL - STRANGERS,
        "strangers": STRANGERS,
        "stranger_slots": STRANGERS,
    }
    slots.give(held[0], "stranger")
    assert slots.take("stranger-new", "stranger")
    assert not slots.take("stranger-newer", "stranger")


def test_each_peer_holds_a_few_slots_and_gets_them_back():
    slots = SessionSlots()
    assert all(slots.take("peer", "member") for _ in range(PER_PEER))
    assert not slots.take("peer", "member")
    assert not slots.take("peer", "stranger")  # the per-peer share counts both pools
    slots.give("peer", "member")
    assert slots.take("peer", "member")
    for _ in range(PER_PEER):
        slots.give("peer", "member")
    assert slots.held == {}
    assert slots.summary()["members"] == 0
