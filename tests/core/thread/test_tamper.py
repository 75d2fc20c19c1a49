"""Tampering: no change to a valid op, by a party without the device key, is ever accepted.

A realistic history (create, invites, data from several members, a role change, a removal with
rotation, multi-row changes) is built with the real writer; then 10 000 seeded mutations of its ops
(random bit flips, and re-encodings with one field changed) are fed to a replica that holds every
original. A mutant's signature cannot verify, so each must be refused as malformed (or, when its
thread id no longer names this thread, as foreign), and the replica must be left untouched.
"""

from __future__ import annotations

import itertools
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import nacl.signing
import nacl.utils
import pytest

from apps.core.thread import codec
from apps.core.thread import payloads as p
from apps.core.thread.hlc import HybridClock
from apps.core.thread.op import KINDS, MAX_OP_SIZE, Op, op_decode
from apps.core.thread.replica import Replica
from apps.core.thread.writer import ThreadWriter, redemption_request
from tests.core.thread.conftest import rid

MUTATIONS = 10_000
EXPIRY = 2**47  # far in the future of the fake clocks


@dataclass
class Party:
    master: bytes
    device: nacl.signing.SigningKey


def party(n: int) -> Party:
    return Party(master=bytes([n]) * 32, device=nacl.signing.SigningKey(bytes([100 + n]) * 32))


class Wall:
    """One fake wall clock shared by every writer: a millisecond per reading."""

    def __init__(self) -> None:
        self.now = 1_700_000_000_000

    def __call__(self) -> int:
        self.now += 1
        return self.now


def seeded_random_bytes(seed: int) -> Callable[[int], bytes]:
    rng = random.Random(seed)
    return lambda size: rng.randbytes(size)


def sync(target: ThreadWriter, *sources: ThreadWriter) -> None:
    """Deliver what ``sources`` hold. A newcomer decides older ops only once the keys op that
    grants it the older keys arrives, so individual results are not checked here; the history is
    checked as a whole on the owner's replica and on fresh ones."""
    for source in sources:
        for op in source.replica.admitted:
            if op.hash not in target.replica.by_hash:
                result = target.replica.ingest(op.raw)
                assert result.status not in ("malformed", "fork", "foreign"), result
    # A newcomer holds ops whose authors' certification it cannot read until its own keys op
    # arrives; by the end of the log nothing waits.
    assert target.replica.waiting == 0


def join(admitter: ThreadWriter, who: Party, role: str, wall: Wall) -> ThreadWriter:
    invite = admitter.invite_create(role=role, expiry=EXPIRY, inviter="peer-a")
    admitter.admit(redemption_request(invite, master_secret=who.master, device_key=who.device))
    writer = ThreadWriter.for_member(
        Replica.for_members(admitter.thread),
        master_secret=who.master,
        device_key=who.device,
        clock=HybridClock(wall=wall),
    )
    sync(writer, admitter)
    return writer


def note(pk: Any, **cols: Any) -> p.RowChange:
    return p.RowChange("notes", pk, p.UPSERT, cols)


@dataclass
class History:
    owner: ThreadWriter
    ops: list[Op]  # every op, in a causal order
    other_thread: ThreadWriter


def build_history() -> History:
    wall = Wall()
    alice, bob, carol, dave, erin = (party(n) for n in range(1, 6))
    a = ThreadWriter.create(
        master_secret=alice.master,
        device_key=alice.device,
        name="Tamper club",
        clock=HybridClock(wall=wall),
    )
    a.write_data([note("n1", text="hello", n=1)])
    b = join(a, bob, "writer", wall)
    b.write_data(
        [note(rid(b, "n2"), text="bob", x=1.5, y=None, z=b"\x00"), note(rid(b, "7"), flag=True)]
    )
    # Concurrent writes by the owner and a writer, on different rows.
    a.write_data([note("n3", text="concurrent")])
    b.write_data(
        [
            note(rid(b, "n4"), text="also concurrent"),
            note(rid(b, "n5"), text="five"),
            note(rid(b, "n6"), text=""),
        ]
    )
    sync(a, b)
    sync(b, a)
    c = join(a, carol, "admin", wall)
    c.write_data([p.RowChange("todo", b"\x01\x02", p.UPSERT, {"done": False, "title": "x"})])
    d = join(c, dave, "reader", wall)  # an admin admits a reader
    sync(a, c)
    d.control(p.SetAddresses(("/ip4/192.0.2.7/tcp/4001",)))
    sync(a, d)
    a.write_data([note("n1", text="edited"), note(7, flag=False), note("n8", k=1)])
    a.set_role(b.member, "reader")  # a role change
    sync(b, a)
    b.control(p.SetAddresses(("/dns4/bob.example/tcp/443/wss",)))
    sync(a, b)
    sync(c, a)
    c.write_data([p.RowChange("todo", b"\x03", p.UPSERT, {"done": True})])
    sync(a, c)
    a.remove_member(c.member)  # a removal, with rotation
    a.write_data(
        [
            note("n2", text="owner edit"),
            p.RowChange("notes", 7, p.DELETE, {}),
            p.RowChange("todo", b"\x03", p.DELETE, {}),
            note("n9", text="after removal"),
        ]
    )
    a.control(p.SetMeta("Tamper club (renamed)"))
    other = ThreadWriter.create(
        master_secret=erin.master,
        device_key=erin.device,
        name="Elsewhere",
        clock=HybridClock(wall=wall),
    )
    other.write_data([note("n1", text="other thread")])
    return History(owner=a, ops=list(a.replica.admitted), other_thread=other)


@pytest.fixture(scope="module")
def history() -> History:
    with pytest.MonkeyPatch.context() as mp:
        # Keys, nonces and epoch secrets from a seeded generator (sealed boxes stay random).
        mp.setattr(nacl.utils, "random", seeded_random_bytes(1234))
        built = build_history()
    return built


def auditor(history: History) -> Replica:
    return Replica.for_members(history.owner.thread, [history.owner.member_key])


# --- the history itself is valid ------------------------------------------------------------------


def test_history_is_realistic(history: History):
    ops = history.ops
    assert 20 <= len(ops) <= 40
    assert {op.kind for op in ops} == set(KINDS)
    assert len({op.device for op in ops}) == 4
    assert max(op.epoch for op in ops) >= 4
    assert any(len(op.deps) >= 2 for op in ops)
    assert all(d.status == "accepted" for d in history.owner.replica.decisions.values())
    snap = history.owner.replica.snapshot()
    assert sorted(snap.roles.values()) == ["owner", "reader", "reader"]
    assert snap.name == "Tamper club (renamed)"


def test_every_original_op_is_accepted_in_causal_order(history: History):
    fresh = auditor(history)
    for op in history.ops:
        result = fresh.ingest(op.raw)
        assert result.status == "accepted", (op, result.reason)
    assert fresh.snapshot() == history.owner.replica.snapshot()
    assert len(list(fresh.accepted_data())) == sum(op.kind == "data" for op in history.ops)
    # And again: every one is now a duplicate, with no effect.
    for op in history.ops:
        assert fresh.ingest(op.raw).status == "duplicate"
    assert len(fresh.admitted) == len(history.ops)


def test_original_ops_in_reverse_order_end_accepted(history: History):
    fresh = auditor(history)
    for op in reversed(history.ops):
        assert fresh.ingest(op.raw).status in ("pending", "accepted")
    assert not fresh.pending
    assert fresh.accepted_hashes() == {op.hash for op in history.ops}


# --- mutations ------------------------------------------------------------------------------------


class Mutator:
    def __init__(self, history: History, rng: random.Random) -> None:
        self.rng = rng
        self.ops = history.ops
        self.hashes = [op.hash for op in history.ops]
        self.devices = sorted({op.device for op in history.ops})
        self.other_thread = history.other_thread.thread

    def flip(self, data: bytes) -> bytes:
        i = self.rng.randrange(len(data) * 8)
        out = bytearray(data)
        out[i // 8] ^= 1 << (i % 8)
        return bytes(out)

    def bit_flip(self, op: Op) -> tuple[str, bytes]:
        return "bit flip", self.flip(op.raw)

    def field_change(self, op: Op) -> tuple[str, bytes]:
        rng = self.rng
        doc = codec.decode(op.raw, max_size=MAX_OP_SIZE)
        field = rng.choice(
            ["seq", "prev", "deps", "hlc", "epoch", "kind", "body", "thread", "device", "sig", "v"]
        )
        if field == "seq":
            doc["seq"] += rng.choice([-1, 1])
        elif field == "prev":
            doc["prev"] = rng.choice(
                [None, rng.choice(self.hashes), self.flip(doc["prev"] or bytes(32))]
            )
        elif field == "deps":
            deps = [list(entry) for entry in doc["deps"]]
            choice = rng.randrange(4)
            if choice == 0 and deps:
                deps.pop(rng.randrange(len(deps)))
            elif choice == 1 and deps:
                deps[rng.randrange(len(deps))][1] += rng.choice([-1, 1])
            elif choice == 2:
                named = {d for d, _ in deps} | {doc["device"]}
                candidates = [d for d in self.devices if d not in named]
                if candidates:
                    deps.append([rng.choice(candidates), rng.randint(1, 5)])
                    deps.sort()
                else:
                    deps = []
            else:
                deps = []
            doc["deps"] = deps
        elif field == "hlc":
            millis, counter = doc["hlc"]
            if rng.random() < 0.5:
                doc["hlc"] = [millis + rng.choice([-1, 1]), counter]
            else:
                doc["hlc"] = [millis, counter + 1 if counter == 0 else counter - 1]
        elif field == "epoch":
            doc["epoch"] = doc["epoch"] + 1 if doc["epoch"] == 0 else doc["epoch"] - 1
        elif field == "kind":
            doc["kind"] = rng.choice(sorted(KINDS - {doc["kind"]}))
        elif field == "body":
            doc["body"] = self.flip(doc["body"])
        elif field == "thread":
            doc["thread"] = self.other_thread
        elif field == "device":
            doc["device"] = rng.choice([d for d in self.devices if d != doc["device"]])
        elif field == "sig":
            doc["sig"] = self.flip(doc["sig"])
        else:
            doc["v"] = rng.choice([0, 2, 3])
        return f"{field} changed", codec.encode(doc)

    def mutants(self) -> Iterator[tuple[Op, str, bytes]]:
        while True:
            op = self.rng.choice(self.ops)
            mutate = self.bit_flip if self.rng.random() < 0.5 else self.field_change
            yield (op, *mutate(op))


def test_ten_thousand_mutants_are_never_accepted(history: History):
    started = time.perf_counter()
    held = auditor(history)
    for op in history.ops:
        assert held.ingest(op.raw).status == "accepted"
    before = held.snapshot()
    decisions_before = dict(held.decisions)
    other = Replica.for_members(history.other_thread.thread, [history.other_thread.member_key])
    for op in history.other_thread.replica.admitted:
        assert other.ingest(op.raw).status == "accepted"

    originals = {op.raw for op in history.ops}
    mutator = Mutator(history, random.Random(424242))
    statuses: Counter[tuple[str, str]] = Counter()
    no_ops = tested = 0
    for op, how, mutant in mutator.mutants():
        if mutant in originals:  # e.g. prev "changed" to the null it already was
            no_ops += 1
            continue
        tested += 1
        if tested > MUTATIONS:
            break
        result = held.ingest(mutant)
        statuses[(how.split()[0], result.status)] += 1
        try:
            decoded_thread = op_decode(mutant).thread
        except ValueError:
            decoded_thread = None
        if decoded_thread is not None and decoded_thread != held.thread:
            assert result.status == "foreign", (op, how, result)
            # Nor does the mutant pass in the thread it now names.
            if decoded_thread == other.thread:
                elsewhere = other.ingest(mutant)
                assert elsewhere.status == "malformed", (op, how, elsewhere)
        else:
            assert result.status == "malformed", (op, how, result.status, result.reason)
            assert result.reason

    # The replica kept nothing: no fork evidence, nothing pending, no decision changed.
    assert held.forks == {}
    assert held.fork_evidence() == []
    assert held.pending == {}
    assert len(held.by_hash) == len(history.ops)
    assert held.decisions == decisions_before
    assert held.snapshot() == before
    assert len(other.admitted) == len(history.other_thread.replica.admitted)
    assert other.forks == {}
    # The mutations did exercise every path: bit flips and each field change, on every op kind.
    kinds = {how for how, _ in statuses}
    assert kinds == {
        "bit", "seq", "prev", "deps", "hlc", "epoch", "kind", "body", "thread", "device", "sig",
        "v",
    }  # fmt: skip
    assert statuses[("thread", "foreign")] > 0
    assert statuses[("bit", "foreign")] > 0  # a flip inside the thread id
    assert sum(statuses.values()) == MUTATIONS
    assert no_ops < MUTATIONS // 20
    elapsed = time.perf_counter() - started
    assert elapsed < 30, f"{MUTATIONS} mutants took {elapsed:.1f}s"


@pytest.mark.parametrize("version", [True, 1.0])
def test_version_field_cannot_be_re_encoded(history: History, version: Any):
    """``v`` as ``true`` or ``1.0`` compares equal to 1 in Python; a mutant carrying it is other
    bytes (another hash) that nobody signed, so it must be malformed, never a fork of the honest
    device (that would let anyone relaying an op get its author banned)."""
    held = auditor(history)
    for op in history.ops:
        held.ingest(op.raw)
    victim = history.ops[0]  # the create op
    doc = codec.decode(victim.raw, max_size=MAX_OP_SIZE)
    doc["v"] = version
    mutant = codec.encode(doc)
    assert mutant != victim.raw
    result = held.ingest(mutant)
    assert result.status == "malformed", (result.status, result.reason)
    assert held.forks == {}


@pytest.mark.parametrize("version", [True, 1.0])
def test_version_re_encoding_does_not_displace_the_original(history: History, version: Any):
    fresh = auditor(history)
    victim = history.ops[0]
    doc = codec.decode(victim.raw, max_size=MAX_OP_SIZE)
    doc["v"] = version
    assert fresh.ingest(codec.encode(doc)).status == "malformed"
    assert fresh.ingest(victim.raw).status == "accepted"


def test_mutations_of_every_single_byte_of_one_op(history: History):
    """Exhaustive for one data op: every byte replaced by each of a few values."""
    held = auditor(history)
    for op in history.ops:
        held.ingest(op.raw)
    victim = next(op for op in history.ops if op.kind == "data" and op.seq > 1 and op.deps)
    for i, value in itertools.product(range(len(victim.raw)), (0x00, 0x01, 0xFF)):
        if victim.raw[i] == value:
            continue
        mutant = victim.raw[:i] + bytes([value]) + victim.raw[i + 1 :]
        result = held.ingest(mutant)
        assert result.status in ("malformed", "foreign"), (i, value, result.status)
    assert held.forks == {}
    assert held.pending == {}
