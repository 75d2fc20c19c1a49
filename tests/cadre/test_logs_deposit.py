"""A full node that holds backup shares for a friend keeps the friend's control and storage
threads as a mirror does (deposited, ``apps.storage.deposit``): its LOG and SUBMIT handlers
answer the friend's party for them (so a restore from the phrase finds them here), go on
answering this node's own party for its own threads, and tell anyone else exactly what they
tell them for a thread that is not here."""

from __future__ import annotations

from typing import Any

import nacl.signing
import nacl.utils
import pytest

from apps.cadre import control, logs, mirror_store
from apps.cadre import keys as cadre_keys
from apps.cadre.models import MirrorParty, MirrorThread
from apps.core.threads import services as thread_services
from tests.cadre.test_logs import _ask, _now, _proof, _refused
from tests.cadre.test_mirror_support import forged


def _device() -> bytes:
    return bytes(nacl.signing.SigningKey.generate().verify_key)


def _chain(key: nacl.signing.SigningKey, thread: bytes, count: int, start: int = 1) -> list:
    ops, prev = [], None
    for seq in range(start, start + count):
        op = forged(key, thread, seq, prev)
        ops.append(op)
        prev = op.hash
    return ops


@pytest.fixture
def friend(node, monkeypatch) -> dict[str, Any]:
    """This node (its own party and a thread) keeps a friend's control thread (3 ops) and
    storage thread (5 ops) under a MirrorParty, as a deposit leaves them."""
    monkeypatch.setattr(mirror_store, "_notify", lambda thread: None)
    mirror_store.forget()
    own_chat = thread_services.thread_create(name="Chat")
    control.control_ensure()
    master = nacl.utils.random(32)
    party = MirrorParty.objects.create(party=cadre_keys.party_id(master).hex(), label="Alice")
    writer = nacl.signing.SigningKey.generate()
    threads = {"control": nacl.utils.random(32), "storage": nacl.utils.random(32)}
    ops = {"control": _chain(writer, threads["control"], 3)}
    ops["storage"] = _chain(writer, threads["storage"], 5)
    for name, thread in threads.items():
        MirrorThread.objects.create(
            thread_id=thread.hex(),
            party=party,
            member=bytes(writer.verify_key).hex(),
            control=name == "control",
        )
        counts = mirror_store.ingest(thread, [op.raw for op in ops[name]])
        assert counts.accepted == len(ops[name])
    yield {
        "master": master,
        "threads": threads,
        "ops": ops,
        "writer": writer,
        "own_chat": own_chat,
    }
    mirror_store.forget()


def test_the_friend_lists_its_deposited_threads_control_first(friend) -> None:
    asker = _device()  # a node of the friend's party restored from the phrase
    proof = _proof("threads", asker, master=friend["master"])
    listed = _ask(logs.serve_log, asker, {"op": "threads", "proof": proof})["threads"]
    assert [(t["thread"], t["control"], t["ops"]) for t in listed] == [
        (friend["threads"]["control"], True, 3),
        (friend["threads"]["storage"], False, 5),
    ]
    assert friend["own_chat"].thread not in {t["thread"] for t in listed}


def test_the_friend_pages_its_storage_thread(friend) -> None:
    asker = _device()
    thread = friend["threads"]["storage"]
    doc = {"op": "page", "thread": thread, "after": 0}
    doc["proof"] = _proof("page", asker, master=friend["master"])
    page = _ask(logs.serve_log, asker, doc)
    assert page["ops"] == [op.raw for op in friend["ops"]["storage"]]
    assert page["done"] is True


def test_this_nodes_own_party_still_gets_its_own_threads_only(friend) -> None:
    asker = _device()
    own = control.master_secret()
    listed = _ask(
        logs.serve_log, asker, {"op": "threads", "proof": _proof("threads", asker, master=own)}
    )["threads"]
    ids = {t["thread"] for t in listed}
    assert friend["own_chat"].thread in ids
    assert not ids & set(friend["threads"].values())
    # Its party proof opens nothing of the friend's.
    doc = {"op": "page", "thread": friend["threads"]["control"], "after": 0}
    doc["proof"] = _proof("page", asker, master=own)
    assert _refused(logs.serve_log, asker, doc) == logs.NOT_SHARED


def test_a_stranger_learns_nothing_about_the_friends_threads(friend) -> None:
    asker = _device()
    stranger = nacl.utils.random(32)
    deposited = friend["threads"]["storage"]
    absent = nacl.utils.random(32)
    for thread in (deposited, absent):
        for proof in (None, _proof("page", asker, master=stranger)):
            doc: dict[str, Any] = {"op": "page", "thread": thread, "after": 0}
            if proof is not None:
                doc["proof"] = proof
            assert _refused(logs.serve_log, asker, doc) == logs.NOT_SHARED
    forged_proofs = [
        _proof("threads", asker, master=stranger),
        _proof("threads", _device(), master=friend["master"]),  # another connection's
        _proof("page", asker, master=friend["master"]),  # another purpose
        _proof("threads", asker, master=friend["master"], at_ms=_now() - 3_600_000),  # stale
    ]
    for proof in forged_proofs:
        doc = {"op": "threads", "proof": proof}
        assert _refused(logs.serve_log, asker, doc) == logs.NOT_PARTY
    # The writer of the friend's ops is on no roster here: its device alone opens nothing.
    doc = {"op": "page", "thread": deposited, "after": 0}
    assert _refused(logs.serve_log, bytes(friend["writer"].verify_key), doc) == logs.NOT_SHARED


def test_the_friend_submits_its_restored_nodes_ops_and_a_stranger_cannot(friend) -> None:
    asker = _device()
    thread = friend["threads"]["storage"]
    last = friend["ops"]["storage"][-1]
    more = forged(friend["writer"], thread, last.seq + 1, last.hash)
    doc = {
        "thread": thread,
        "ops": [more.raw],
        "proof": _proof("submit", asker, master=friend["master"]),
    }
    assert _ask(logs.serve_submit, asker, doc)["admitted"] == 1
    assert mirror_store.op_count(thread) == 6

    stranger = nacl.utils.random(32)
    again = forged(friend["writer"], thread, more.seq + 1, more.hash)
    for target in (thread, nacl.utils.random(32)):
        bad = {
            "thread": target,
            "ops": [again.raw],
            "proof": _proof("submit", asker, master=stranger),
        }
        assert _refused(logs.serve_submit, asker, bad) == logs.NOT_PARTY
    # Nor may the friend write into this node's own threads.
    own = {
        "thread": friend["own_chat"].thread,
        "ops": [again.raw],
        "proof": _proof("submit", asker, master=friend["master"]),
    }
    assert _refused(logs.serve_submit, asker, own) == logs.NOT_PARTY
    assert mirror_store.op_count(thread) == 6
