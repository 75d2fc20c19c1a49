"""Convergence: the same ops, delivered in any order and any number of times, give every fresh
replica the same members, roles, epochs, decisions and rows (DESIGN §4: validation is a pure
function of the op set)."""

from __future__ import annotations

import functools
import itertools
import random
import types

import nacl.bindings
import nacl.signing
import nacl.utils
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.core.thread import crypto, hlc
from apps.core.thread.lww import materialize
from apps.core.thread.op import Op
from apps.core.thread.replica import Replica
from tests.core.thread import conftest as thread_conftest
from tests.core.thread.simulation import Simulation

SEED = 2044


def fingerprint(replica: Replica):
    assert not replica.pending, "every op's past was delivered"
    return (
        replica.snapshot(),
        {h: (d.status, d.reason) for h, d in replica.decisions.items()},
        dict(replica.forks),
        materialize(replica.accepted_data()),
    )


def deliver(sim: Simulation, ops: list[Op], rng: random.Random, *, duplicates: bool) -> Replica:
    delivery = list(ops)
    if duplicates:
        delivery += rng.sample(ops, k=len(ops) // 3)
    rng.shuffle(delivery)
    replica = sim.auditor()
    for op in delivery:
        replica.ingest(op.raw)
    return replica


@settings(
    max_examples=500,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 2**32 - 1),
    members=st.integers(2, 6),
    steps=st.integers(5, 40),
)
def test_random_histories_converge_in_any_order(seed: int, members: int, steps: int):
    sim = Simulation.run(seed, members=members, steps=steps)
    ops = sim.all_ops()
    rng = random.Random(seed)
    first = fingerprint(deliver(sim, ops, rng, duplicates=False))
    second = fingerprint(deliver(sim, ops, rng, duplicates=True))
    assert first == second


def test_one_large_history_converges_over_100_permutations(monkeypatch):
    # Keys, nonces, epoch secrets, sealed boxes and the clock from seeded generators too: the same
    # history, and so the same order of ops and the same fold restarts, every run (concurrent ops
    # are ordered by hash, so one random byte anywhere changes which removals reach back).
    seeded = random.Random(5)
    monkeypatch.setattr(nacl.utils, "random", lambda size: seeded.randbytes(size))
    monkeypatch.setattr(nacl.signing, "random", lambda size: seeded.randbytes(size))
    monkeypatch.setattr(crypto, "seal", functools.partial(_seeded_seal, seeded))
    ticks = itertools.count(1_790_000_000_000 * 1_000_000, 1_000_000)
    fake_time = types.SimpleNamespace(time_ns=lambda: next(ticks))
    monkeypatch.setattr(hlc, "time", fake_time)
    monkeypatch.setattr(thread_conftest, "time", fake_time)
    sim = Simulation.run(SEED, members=6, steps=300)
    ops = sim.all_ops()
    rng = random.Random(11)
    first = deliver(sim, ops, rng, duplicates=False)
    reference = fingerprint(first)
    snapshot, decisions, _forks, rows = reference
    # The history is not trivial: members, refused and accepted ops, rows, rotations, and
    # removals that had to reach back over ops ordered before them (fold restarts).
    assert len(ops) >= 150
    assert len(snapshot.members) >= 3
    assert {status for status, _ in decisions.values()} >= {"accepted", "refused"}
    assert snapshot.current_epoch >= 5
    assert rows.get("notes")
    # A second app was enabled and disabled while members wrote to it; its items are ordered
    # (concurrent claims: one wins) and closed by list (rows the closer had not seen refused).
    assert rows.get("tasks_item")
    reasons = {reason for _, reason in decisions.values()}
    assert "tasks_item: the tasks app is not enabled in this thread" in reasons
    assert "tasks_item: the item is already claimed" in reasons
    assert "tasks_item: the list was closed before this row was seen" in reasons
    assert first.control.restarts >= 1
    for _ in range(100):
        assert fingerprint(deliver(sim, ops, rng, duplicates=True)) == reference


def _seeded_seal(rng: random.Random, recipient_ed25519_public: bytes, plaintext: bytes) -> bytes:
    """A sealed box as libsodium makes it (ephemeral key, then the box under the nonce
    BLAKE2b(ephemeral || recipient)), with the ephemeral key from ``rng``: the real one opens it,
    and the same seed gives the same bytes."""
    recipient = nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(recipient_ed25519_public)
    ephemeral_secret = rng.randbytes(32)
    ephemeral = nacl.bindings.crypto_scalarmult_base(ephemeral_secret)
    nonce = nacl.bindings.crypto_generichash_blake2b_salt_personal(
        ephemeral + recipient, digest_size=24
    )
    return ephemeral + nacl.bindings.crypto_box(plaintext, nonce, recipient, ephemeral_secret)
