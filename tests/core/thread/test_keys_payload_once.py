"""A keys op's payload (a seal per member: it grows with the thread) is parsed once per replica,
shared by the keyring learning its keys and the fold judging it; a bad one is refused alike by a
replica that learns from it and by one that holds no member key."""

from __future__ import annotations

import pytest

from apps.core.thread import keyring
from apps.core.thread.op import KIND_KEYS
from apps.core.thread.replica import Replica
from apps.core.thread.writer import ThreadWriter
from tests.core.thread.conftest import Party, auditor, forge, join


@pytest.fixture
def thread(alice: Party) -> ThreadWriter:
    return ThreadWriter.create(master_secret=alice.master, device_key=alice.device, name="Club")


def test_each_keys_op_is_parsed_once_and_the_replica_decides_as_before(
    thread: ThreadWriter, alice: Party, bob: Party, carol: Party, monkeypatch
):
    join(thread, bob)
    join(thread, carol)
    thread.rotate()
    parsed: list[bytes] = []
    real = keyring.p.keys_parse

    def counting(doc):
        parsed.append(id(doc))
        return real(doc)

    monkeypatch.setattr(keyring.p, "keys_parse", counting)
    fresh = auditor(thread.thread, bob)
    for op in thread.replica.admitted:
        fresh.ingest(op.raw)
    keys_ops = [op for op in thread.replica.admitted if op.kind == KIND_KEYS]
    assert len(keys_ops) >= 3
    assert len(parsed) == len(keys_ops)  # learned from and judged: one parse each
    assert fresh.snapshot() == thread.replica.snapshot()
    assert fresh.accepted_hashes() == thread.replica.accepted_hashes()
    # Another member key added: its seals are read again (once each), the fold parses none.
    fresh.member_key_add(carol.member_key(thread.thread))
    assert len(parsed) == 2 * len(keys_ops)
    assert fresh.snapshot() == thread.replica.snapshot()


def test_keys_ops_held_for_the_fold_are_bounded_by_bytes(
    thread: ThreadWriter, alice: Party, bob: Party, monkeypatch
):
    """Keys ops parsed on arrival wait for the fold within a byte bound: a stranger's keys ops,
    never admitted, are not kept."""
    join(thread, bob)
    thread.rotate()
    keys_ops = [op for op in thread.replica.admitted if op.kind == KIND_KEYS]
    largest = max(len(op.body) for op in keys_ops)
    monkeypatch.setattr(keyring, "ARRIVED_BYTES", largest)
    ring = keyring.Keyring(thread.thread, [alice.member_key(thread.thread)])
    for op in keys_ops:
        ring.learn(op)
        assert ring._arrived_bytes <= largest
    assert len(ring._arrived) == 1
    assert not isinstance(ring.payload(keys_ops[-1]), str)  # held: taken without parsing
    assert ring._arrived_bytes == 0
    assert not isinstance(ring.payload(keys_ops[0]), str)  # let go: parsed again


def test_a_bad_keys_payload_is_refused_alike_with_and_without_member_keys(
    thread: ThreadWriter, alice: Party, bob: Party
):
    b = join(thread, bob)
    epoch = thread.replica.control.timeline.newest_epoch() + 1
    bad = forge(thread, kind=KIND_KEYS, payload={"epoch": epoch, "seal": "x"}, epoch=epoch, key=b"")
    decisions = []
    for replica in (thread.replica, b.replica, Replica.for_members(thread.thread)):
        if replica is not thread.replica:
            for op in thread.replica.admitted:
                replica.ingest(op.raw)
        replica.ingest(bad.raw)
        decisions.append(replica.decision(bad.hash))
    assert decisions[0] is not None
    assert decisions[0].status == "refused"
    assert decisions[0].reason.startswith("keys payload: ")
    assert decisions == [decisions[0]] * 3
