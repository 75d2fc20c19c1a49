"""Hostile input to a person's several nodes (issue 17, Acceptance), between real ``runnode``
processes on 127.0.0.1: a device link used twice, an expired one, one redeemed by a node that
belongs to someone already; a mirror that serves a modified op; a stranger's phrase at the
mirror; a removed device (served nothing new by A, Bob or the mirror) that goes on writing.
Each is refused, in words where a person made the mistake, and nothing breaks."""

from __future__ import annotations

import json
import os

import pytest

from apps.core import identity
from tests.support import cadre
from tests.support.api import ApiError, wait_for
from tests.support.cadre import peers  # noqa: F401 (a fixture)
from tests.support.p2p import Peer, converged

pytestmark = pytest.mark.slow


def test_a_device_link_works_once_in_time_and_only_on_a_fresh_node(
    peers,  # noqa: F811 (the fixture imported above)
    tmp_path,
):
    a, b, c = cadre.start_all(
        peers, Peer(tmp_path / "a"), Peer(tmp_path / "b"), Peer(tmp_path / "c")
    )
    thread = a.thread_create("Private")
    a.note(thread, "only for Alice's devices")

    # B redeems the link; C, a stranger holding the same link afterwards, is refused.
    link = cadre.link_make(a, label="phone")
    cadre.join_start(b, link)
    cadre.join_done(b)
    assert cadre.thread_ids(b) == {thread}
    cadre.join_start(c, link)
    words = cadre.join_failed(c)
    assert "used by another device" in words, words
    assert cadre.thread_ids(c) == set()

    # A link past its time is refused (its node says it has expired).
    late = cadre.link_make(a)
    assert cadre.expire_links(a) >= 1
    try:
        cadre.join_start(c, late)
    except ApiError as exc:  # C's own node may see the expiry in the link itself
        words = json.dumps(exc.body)
    else:
        words = cadre.join_failed(c)
    assert "device link has expired" in words, words
    assert cadre.thread_ids(c) == set()

    # A node that has threads of its own belongs to someone: a device link never joins it.
    c.thread_create("C's own")
    words = cadre.refusal(lambda: cadre.join_start(c, cadre.link_make(a)))
    assert "already belongs" in words or "threads of its own" in words, words
    assert "only for Alice's devices" not in str(cadre.thread_names(c))
    # Nor a node that is already a device of someone else: B (Alice's) and a link of C's.
    words = cadre.refusal(lambda: cadre.join_start(b, cadre.link_make(c)))
    assert "already belongs" in words or "threads of its own" in words, words
    assert cadre.thread_ids(b) == {thread}
    assert not cadre.folder_holds(c.data_dir, b"only for Alice's devices")
    # A still works, and B is its only other device.
    a.note(thread, "still fine")
    cadre.has_note(b, thread, "still fine")


def test_an_op_a_mirror_modified_is_refused_and_the_genuine_one_arrives_later(
    peers,  # noqa: F811 (the fixture imported above)
    tmp_path,
):
    a, bob, mirror = cadre.start_all(
        peers,
        Peer(tmp_path / "a"),
        Peer(tmp_path / "bob"),
        Peer(tmp_path / "mirror", env={"SEREUS_MIRROR": "on"}),
    )
    thread = a.thread_create("Plans")
    cadre.join_thread(bob, a.invite(thread))
    a.note(thread, "before")
    converged([a, bob], thread)
    cadre.device_add(a, mirror, kind="mirror")
    cadre.mirror_holds(mirror, thread, (op["hash"] for op in cadre.ops(a, thread)))

    # Bob is away while Alice writes; the mirror keeps it; then Alice goes away too.
    bob.stop()
    a.note(thread, "untouched")
    known = {op["hash"] for op in cadre.ops(a, thread)}
    a.note(thread, "the genuine words")
    written = [op for op in cadre.ops(a, thread) if op["hash"] not in known]
    target = next(op["hash"] for op in written if op["kind"] == "data")
    cadre.mirror_holds(mirror, thread, [target])
    a.stop()

    # The mirror's disk is modified: one byte of that op's ciphertext flipped.
    mirror.stop()
    cadre.mirror_tamper(mirror, target)
    mirror.start()
    bob.start()
    # Bob reaches only the mirror: he takes the op it kept intact, and not the modified one.
    cadre.has_note(bob, thread, "untouched", timeout=60)
    cadre.settle(2)
    assert "the genuine words" not in cadre.titles(bob, thread)
    decision = cadre.op_decision(bob, thread, target)
    assert decision is None or decision[0] == "refused", decision

    # Nothing broke: Bob writes, and once Alice is back everyone has the genuine op.
    bob.note(thread, "Bob goes on")
    a.start()
    cadre.has_note(bob, thread, "the genuine words", timeout=60)
    dump = converged([a, bob], thread)
    assert {row[1] for row in dump["notes"]} == {
        "before",
        "untouched",
        "the genuine words",
        "Bob goes on",
    }
    assert cadre.op_decision(bob, thread, target) == ("accepted", "")

    # Someone with another phrase who knows the mirror's address gets nothing from it.
    stranger = Peer(tmp_path / "stranger")
    peers.append(stranger)
    other = identity.recovery_phrase_from_secret(os.urandom(32))
    cadre.node_restore(stranger, other, [cadre.p2p_address(mirror)])
    stranger.start()
    words = cadre.restore_failed(stranger)
    assert "serves your party" in words, words
    assert cadre.thread_ids(stranger) == set()


def test_a_removed_device_gets_nothing_new_anywhere_and_its_later_ops_are_refused(
    peers,  # noqa: F811 (the fixture imported above)
    tmp_path,
):
    a, bob, b, mirror = cadre.start_all(
        peers,
        Peer(tmp_path / "a"),
        Peer(tmp_path / "bob"),
        Peer(tmp_path / "b"),
        Peer(tmp_path / "mirror", env={"SEREUS_MIRROR": "on"}),
    )
    thread = a.thread_create("Council")
    cadre.join_thread(bob, a.invite(thread))
    a.note(thread, "before")
    cadre.device_add(a, b)
    cadre.has_note(b, thread, "before")
    alice = cadre.member_id(a, thread)
    device_b = cadre.device_here(b)
    converged([a, b, bob], thread)
    cadre.device_add(a, mirror, kind="mirror")
    cadre.mirror_holds(mirror, thread, (op["hash"] for op in cadre.ops(a, thread)))

    # Removing the device this node is refused in words; A removes B.
    words = cadre.refusal(lambda: cadre.device_remove(b, device_b))
    assert "another" in words.lower(), words
    cadre.device_remove(a, device_b)
    wait_for(
        lambda: device_b not in cadre.members(bob, thread)[alice],
        timeout=30,
        what="the removal to reach Bob",
    )
    # Nothing written afterwards reaches B: not from A, not from Bob, not from the mirror.
    a.note(thread, "after the removal")
    cadre.has_note(bob, thread, "after the removal")
    cadre.mirror_holds(mirror, thread, (op["hash"] for op in cadre.ops(a, thread)))
    cadre.settle(5)
    assert "after the removal" not in cadre.titles(b, thread)
    assert not cadre.folder_holds(b.data_dir, b"after the removal")

    # B's modified node signs a note after its removal and pushes it to A, Bob and the mirror
    # (which may keep it: it cannot read it; the members refuse it, whoever serves it).
    b.stop()
    late = cadre.late_op_push(b, thread, [a, bob, mirror])
    a.note(thread, "after the late op")
    dump = converged([a, bob], thread)
    assert "written after removal" not in {row[1] for row in dump["notes"]}
    for peer in (a, bob):
        decision = cadre.op_decision(peer, thread, late)
        assert decision is None or decision[0] == "refused", decision
