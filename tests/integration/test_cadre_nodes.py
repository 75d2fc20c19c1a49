"""One person on several real nodes (issue 17, Acceptance): real ``runnode`` processes on
127.0.0.1, driven through their HTTP API and ``manage.py`` only.

- Alice's node A is in three threads with Bob. She adds a second device B with a device link:
  within seconds B lists the same threads with their history and writes in each; Bob's node sees
  one Alice with two devices; A and B writing in one thread converge; removing B on A stops it
  receiving anything new, and what B writes afterwards is refused by A and Bob.
- A mirror M of Alice's (ciphertext only): Bob, reaching only M while Alice's nodes A and B
  are off, receives her latest ops through it. A and B are then lost (killed, their data
  deleted); a fresh node R is
  restored from the recovery phrase alone through M and ends with every thread, all history, the
  same member identity as Bob sees, and writes again. M's data folder holds no plaintext and no
  key the phrase derives."""

from __future__ import annotations

import contextlib
import shutil

import pytest

from apps.cadre import keys as cadre_keys
from apps.core import identity
from apps.core.thread import keys
from tests.support import cadre
from tests.support.api import ApiError, wait_for
from tests.support.cadre import peers  # noqa: F401 (a fixture)
from tests.support.p2p import Peer, converged

pytestmark = pytest.mark.slow

MIRROR_ENV = {"SEREUS_MIRROR": "on"}


def shared_threads(alice: Peer, bob: Peer, names: list[str]) -> list[str]:
    """Threads Alice makes, each with a note of hers, and Bob joins (with a note of his)."""
    made = []
    for name in names:
        thread = alice.thread_create(name)
        alice.note(thread, f"{name}: from Alice")
        cadre.join_thread(bob, alice.invite(thread))
        bob.note(thread, f"{name}: from Bob")
        made.append(thread)
    return made


def test_a_second_device_joins_every_thread_writes_converges_and_is_removed(
    peers,  # noqa: F811 (the fixture imported above)
    tmp_path,
):
    a, bob, b = cadre.start_all(
        peers, Peer(tmp_path / "a"), Peer(tmp_path / "bob"), Peer(tmp_path / "b")
    )
    names = ["Family", "Work", "Club"]
    threads = shared_threads(a, bob, names)
    for thread in threads:
        converged([a, bob], thread)

    # Alice adds her second device: B holds the same threads, with their history, in seconds.
    cadre.device_add(a, b, label="laptop")
    wait_for(lambda: cadre.thread_ids(b) >= set(threads), timeout=30, what="B to list the threads")
    assert cadre.thread_ids(b) == set(threads)  # the control thread is never listed
    assert cadre.thread_names(b) == cadre.thread_names(a)
    for thread, name in zip(threads, names, strict=True):
        assert cadre.titles(b, thread) >= {f"{name}: from Alice", f"{name}: from Bob"}
        # The same person: B writes as Alice's member, not as a newcomer.
        assert cadre.member_id(b, thread) == cadre.member_id(a, thread)

    # B writes in each; A and B write at once in one thread: everyone converges, no fork.
    for thread, name in zip(threads, names, strict=True):
        b.note(thread, f"{name}: from B")
    family = threads[0]
    for i in range(5):
        a.note(family, f"A {i}")
        b.note(family, f"B {i}")
    for thread, name in zip(threads, names, strict=True):
        dump = converged([a, b, bob], thread)
        got = {row[1] for row in dump["notes"]}
        assert f"{name}: from B" in got
    assert {f"A {i}" for i in range(5)} | {f"B {i}" for i in range(5)} <= cadre.titles(bob, family)
    for thread in threads:
        refused = [op for op in cadre.ops(bob, thread) if op["status"] == "refused"]
        assert not refused, refused

    # Bob's node: one Alice (one member id) with two devices, A's and B's.
    # (A member key is the party's in one thread: each thread has its own.)
    alice = {thread: cadre.member_id(a, thread) for thread in threads}
    device_a, device_b = cadre.device_here(a), cadre.device_here(b)
    for thread in threads:
        seen = cadre.members(bob, thread)
        assert len(seen) == 2, seen
        assert {device_a, device_b} <= set(seen[alice[thread]]), seen

    # A's device list: B, by its label, certified in every thread.
    laptop = next(d for d in cadre.devices(a) if d["device"] == device_b)
    assert (laptop["kind"], laptop["label"], laptop["state"]) == ("full", "laptop", "active")
    assert {t["thread"] for t in laptop["threads"] if t["certified"]} >= set(threads)

    # A removes B: B's device leaves every thread, and B gets nothing written afterwards.
    cadre.device_remove(a, device_b)
    assert all(d["state"] != "active" for d in cadre.devices(a) if d["device"] == device_b)
    for thread in threads:
        wait_for(
            lambda t=thread: device_b not in cadre.members(bob, t)[alice[t]],
            timeout=30,
            what="Bob to learn that B was removed",
        )
    a.note(family, "after removal: secret")
    bob.note(family, "after removal: from Bob")
    cadre.has_note(bob, family, "after removal: secret")
    cadre.has_note(a, family, "after removal: from Bob")
    cadre.settle(5)
    for text in ("after removal: secret", "after removal: from Bob"):
        assert text not in cadre.titles(b, family)
        assert not cadre.folder_holds(b.data_dir, text.encode())

    # What B writes now is refused: by its own node, or else by A and Bob.
    with contextlib.suppress(ApiError):  # its own node may refuse it already, or not
        b.note(family, "B after removal")
    a.note(family, "A later")
    cadre.has_note(bob, family, "A later")
    cadre.settle(3)
    for peer in (a, bob):
        assert "B after removal" not in cadre.titles(peer, family)


def test_a_mirror_serves_bob_while_alice_is_away_and_restores_her_from_the_phrase(
    peers,  # noqa: F811 (the fixture imported above)
    tmp_path,
):
    a, bob, b, mirror = cadre.start_all(
        peers,
        Peer(tmp_path / "a"),
        Peer(tmp_path / "bob"),
        Peer(tmp_path / "b"),
        Peer(tmp_path / "mirror", env=MIRROR_ENV),
    )
    names = ["Diary-7c1e", "Garden-3b9d"]
    threads = shared_threads(a, bob, names)
    cadre.device_add(a, b)
    for thread, name in zip(threads, names, strict=True):
        cadre.has_note(b, thread, f"{name}: from Alice")
        b.note(thread, f"{name}: from B")
    phrase = cadre.recovery_phrase(a)
    alice = {thread: cadre.member_id(a, thread) for thread in threads}

    cadre.device_add(a, mirror, kind="mirror", label="mirror")
    # Once assigned, the mirror keeps every thread's ops (ciphertext).
    for thread in threads:
        converged([a, b, bob], thread)
        cadre.mirror_holds(mirror, thread, (op["hash"] for op in cadre.ops(a, thread)))

    # Bob is away; Alice writes; the mirror takes it; Alice's nodes go away; Bob comes back
    # and reaches only the mirror: he gets Alice's latest.
    bob.stop()
    latest = {
        thread: f"{name}: latest from Alice" for thread, name in zip(threads, names, strict=True)
    }
    for thread, title in latest.items():
        a.note(thread, title)
    for thread in threads:
        cadre.mirror_holds(mirror, thread, (op["hash"] for op in cadre.ops(a, thread)))
    a.stop()
    b.stop()
    bob.start()
    for thread, title in latest.items():
        cadre.has_note(bob, thread, title, timeout=60)

    # Alice's nodes are lost: a fresh node R restored from the phrase through the mirror. (What
    # keys it held, its epochs' included, is noted first: the mirror must hold none of them.)
    master = identity.recovery_phrase_to_secret(phrase)
    control = cadre_keys.control_thread_id(master).hex()
    key_bytes = cadre.key_material(a, [control, *threads])
    for lost in (a, b):
        lost.kill()
        shutil.rmtree(lost.data_dir)
    r = Peer(tmp_path / "r")
    peers.append(r)
    cadre.node_restore(r, phrase, [cadre.p2p_address(mirror)])
    r.start()
    cadre.restore_done(r)
    wait_for(lambda: cadre.thread_ids(r) >= set(threads), timeout=30, what="R's threads")
    assert cadre.thread_ids(r) == set(threads)
    for thread, name in zip(threads, names, strict=True):
        # The same Alice: the member Bob knows (and no newcomer in her place).
        assert cadre.member_id(r, thread) == alice[thread]
        assert set(cadre.members(bob, thread)) == {alice[thread], cadre.member_id(bob, thread)}
        assert cadre.titles(r, thread) >= {
            f"{name}: from Alice",
            f"{name}: from Bob",
            f"{name}: from B",
            latest[thread],
        }
        r.note(thread, f"{name}: Alice is back")
    for thread, name in zip(threads, names, strict=True):
        cadre.has_note(bob, thread, f"{name}: Alice is back", timeout=60)
        converged([r, bob], thread)
        assert cadre.device_here(r) in cadre.members(bob, thread)[alice[thread]]
    # The recovery key R acted as is spent; a new one stands in every thread.
    listed = cadre.devices(r)
    spent = bytes(cadre_keys.standby_key(master, 0).verify_key).hex()
    assert all(d["state"] != "active" for d in listed if d["device"] == spent), listed
    standby = [d for d in listed if d["kind"] == "standby" and d["state"] == "active"]
    assert len(standby) == 1, listed
    wait_for(
        lambda: (
            {
                t["thread"]
                for d in cadre.devices(r)
                if d["device"] == standby[0]["device"]
                for t in d["threads"]
                if t["certified"]
            }
            >= set(threads)
        ),
        timeout=30,
        what="the new recovery key to be certified in every thread",
    )

    # The mirror's folder: no plaintext, no key the phrase opens.
    mirror.stop()
    derived = [master, bytes(cadre_keys.party_key(master)), bytes(cadre_keys.genesis_key(master))]
    derived += [bytes(keys.member_key(master, bytes.fromhex(t))) for t in [control, *threads]]
    plaintexts = [
        *names,
        *latest.values(),
        *(f"{n}: from Alice" for n in names),
        *(f"{n}: from Bob" for n in names),
        *(f"{n}: from B" for n in names),
        *(f"{n}: Alice is back" for n in names),
    ]
    for text in plaintexts:
        assert not cadre.folder_holds(mirror.data_dir, text.encode()), text
    for secret in {*derived, *key_bytes}:
        for form in cadre.secrets_forms(secret):
            assert not cadre.folder_holds(mirror.data_dir, form), secret.hex()
