"""What a mirror answers: party proofs (of a party it serves, for this connection and purpose,
fresh) open its LOG, SUBMIT and MIRROR requests; a device on a thread's roster may page that
thread; anyone else is told the same as for a thread it does not keep."""

from __future__ import annotations

import time
from dataclasses import replace

import nacl.signing
import pytest

from apps.cadre import keys as cadre_keys
from apps.cadre import logs, mirror_serve, mirror_store, wire
from apps.cadre.models import MirrorOp, MirrorParty, MirrorThread
from apps.core.thread import keys as thread_keys
from apps.core.threads import services
from apps.p2p.app_protocols import AppRefused
from tests.cadre.test_mirror_support import busy_thread, log_of, mirror_rows, party_secret


@pytest.fixture
def mirror_key(node, monkeypatch, settings) -> nacl.signing.SigningKey:
    """The mirror's own device key (this process plays the mirror, apart from the node's)."""
    settings.SEREUS = replace(settings.SEREUS, mirror=True)
    key = nacl.signing.SigningKey.generate()
    monkeypatch.setattr(mirror_serve, "_own_key", lambda: key)
    monkeypatch.setattr(mirror_serve, "_own_device", lambda: bytes(key.verify_key))
    mirror_store.forget()
    yield key
    mirror_store.forget()


@pytest.fixture
def served(mirror_key):
    """A party the mirror serves, with a control thread and another thread; its device Alice
    (a party device) and Bob's device on the second thread's roster."""
    master = party_secret()
    control, _ = busy_thread("Control", renames=1)
    chat, _ = busy_thread("Chat", renames=2)
    alice, bob = nacl.signing.SigningKey.generate(), nacl.signing.SigningKey.generate()
    party = mirror_rows(master, [control, chat], roster=[bytes(alice.verify_key)])
    MirrorThread.objects.filter(pk=chat.id).update(
        roster=[
            {"device": bytes(alice.verify_key).hex(), "addrs": []},
            {"device": bytes(bob.verify_key).hex(), "addrs": []},
        ]
    )
    for thread in (control, chat):
        mirror_store.ingest(thread.thread, log_of(thread))
    return {
        "master": master,
        "party": party,
        "control": control,
        "chat": chat,
        "alice": bytes(alice.verify_key),
        "bob": bytes(bob.verify_key),
        "mirror": bytes(mirror_key.verify_key),
    }


def proof(master: bytes, purpose: str, requester: bytes, responder: bytes, *, age_s: float = 0):
    at = time.time_ns() // 1_000_000 - int(age_s * 1000)
    return cadre_keys.party_proof_sign(
        master, purpose=purpose, requester=requester, responder=responder, at_ms=at
    )


def ask(handler, device: bytes, doc: dict) -> dict:
    return wire.decode(handler(device, wire.encode(doc)), max_size=8 << 20)


def test_the_party_lists_its_threads_control_first(served) -> None:
    s = served
    doc = ask(
        mirror_serve.serve_log,
        s["alice"],
        {"op": "threads", "proof": proof(s["master"], "threads", s["alice"], s["mirror"])},
    )
    listed = [(t["thread"], t["control"], t["ops"]) for t in doc["threads"]]
    assert listed == [
        (s["control"].thread, True, len(log_of(s["control"]))),
        (s["chat"].thread, False, len(log_of(s["chat"]))),
    ]
    assert all(t["name"] == "" for t in doc["threads"])  # never known here


@pytest.mark.parametrize(
    "forge",
    [
        "another party",
        "another purpose",
        "too old",
        "another mirror",
        "another requester",
        "bad signature",
        "missing",
    ],
)
def test_a_wrong_party_proof_is_refused(served, forge: str) -> None:
    s = served
    master, purpose, requester, responder, age = (
        s["master"],
        "threads",
        s["alice"],
        s["mirror"],
        0,
    )
    if forge == "another party":
        master = party_secret()
    elif forge == "another purpose":
        purpose = "submit"
    elif forge == "too old":
        age = 11 * 60
    elif forge == "another mirror":
        responder = bytes(32)
    elif forge == "another requester":
        requester = s["bob"]
    made = proof(master, purpose, requester, responder, age_s=age)
    if forge == "bad signature":
        made["sig"] = bytes(64)
    if forge == "missing":
        made = None
    with pytest.raises(AppRefused) as refused:
        ask(mirror_serve.serve_log, s["alice"], {"op": "threads", "proof": made})
    assert "party" in str(refused.value)


def test_a_roster_device_pages_a_thread_and_a_stranger_learns_nothing(served) -> None:
    s = served
    chat = s["chat"]
    doc = ask(mirror_serve.serve_log, s["bob"], {"op": "page", "thread": chat.thread, "after": 0})
    assert doc["ops"] == log_of(chat)
    assert doc["done"] is True
    # Bob is not on the control thread's roster; a stranger on none; an unknown thread.
    stranger = nacl.signing.SigningKey.generate().verify_key
    asks = [
        (s["bob"], s["control"].thread),
        (bytes(stranger), chat.thread),
        (s["alice"], bytes(32)),
    ]
    words = set()
    for device, thread in asks:
        with pytest.raises(AppRefused) as refused:
            ask(mirror_serve.serve_log, device, {"op": "page", "thread": thread, "after": 0})
        words.add(str(refused.value))
    assert words == {mirror_serve.NOT_HERE}


def test_a_party_proof_pages_its_own_threads_only(served) -> None:
    s = served
    stranger = bytes(nacl.signing.SigningKey.generate().verify_key)
    page = {
        "op": "page",
        "thread": s["control"].thread,
        "after": 0,
        "proof": proof(s["master"], "page", stranger, s["mirror"]),
    }
    assert ask(mirror_serve.serve_log, stranger, page)["ops"] == log_of(s["control"])
    # Another party this mirror serves cannot page this party's threads.
    other = party_secret()
    MirrorParty.objects.create(party=cadre_keys.party_id(other).hex())
    page["proof"] = proof(other, "page", stranger, s["mirror"])
    with pytest.raises(AppRefused, match="nothing for you"):
        ask(mirror_serve.serve_log, stranger, page)


def test_submitted_ops_are_kept_and_garbage_is_counted(served, node) -> None:
    s = served
    chat = s["chat"]
    MirrorOp.objects.filter(thread_id=chat.id).delete()
    mirror_store.forget()
    raws = log_of(chat)
    request = {
        "thread": chat.thread,
        "ops": [*raws, b"garbage", 7],
        "proof": proof(s["master"], "submit", s["alice"], s["mirror"]),
    }
    doc = ask(mirror_serve.serve_submit, s["alice"], request)
    assert (doc["admitted"], doc["refused"], doc["other"]) == (len(raws), 2, 0)
    # Into a thread of no party it serves: refused.
    elsewhere = services.thread_create(name="Elsewhere")
    request.update(thread=elsewhere.thread, ops=log_of(elsewhere))
    request["proof"] = proof(s["master"], "submit", s["alice"], s["mirror"])
    with pytest.raises(AppRefused, match="nothing for you"):
        ask(mirror_serve.serve_submit, s["alice"], request)


def test_an_assignment_keeps_new_threads_and_rosters_and_answers_device_proofs(served) -> None:
    s = served
    later = services.thread_create(name="Later")
    member = bytes.fromhex(later.member_id)
    roster = [{"device": s["alice"], "addrs": ["/ip4/127.0.0.1/tcp/4001"]}]
    threads = [
        {"thread": s["chat"].thread, "member": bytes.fromhex(s["chat"].member_id)},
        {"thread": later.thread, "member": member},
    ]
    request = {
        "op": "assign",
        "proof": proof(s["master"], "assign", s["alice"], s["mirror"]),
        "threads": [{**t, "control": False, "roster": roster} for t in threads],
    }
    doc = ask(mirror_serve.serve_mirror, s["alice"], request)
    assert [p["thread"] for p in doc["proofs"]] == [s["chat"].thread, later.thread]
    for item in doc["proofs"]:
        member = bytes.fromhex(MirrorThread.objects.get(pk=item["thread"].hex()).member)
        thread_keys.device_proof_verify(item["thread"], member, s["mirror"], item["proof"])
    kept = MirrorThread.objects.get(pk=later.id)
    assert (kept.party_id, kept.control) == (s["party"].pk, False)
    assert kept.roster == [{"device": s["alice"].hex(), "addrs": ["/ip4/127.0.0.1/tcp/4001"]}]
    # Bob is off the chat's roster now: he may not page it any more.
    with pytest.raises(AppRefused):
        ask(
            mirror_serve.serve_log, s["bob"], {"op": "page", "thread": s["chat"].thread, "after": 0}
        )


def test_a_thread_kept_for_another_party_is_not_taken_over(served) -> None:
    s = served
    other = party_secret()
    MirrorParty.objects.create(party=cadre_keys.party_id(other).hex())
    request = {
        "op": "assign",
        "proof": proof(other, "assign", s["bob"], s["mirror"]),
        "threads": [
            {
                "thread": s["chat"].thread,
                "member": bytes(32),
                "control": False,
                "roster": [{"device": s["bob"], "addrs": []}],
            }
        ],
    }
    assert ask(mirror_serve.serve_mirror, s["bob"], request)["proofs"] == []
    assert MirrorThread.objects.get(pk=s["chat"].id).party_id == s["party"].pk


@pytest.mark.parametrize(
    "threads",
    [
        "not a list",
        [{"thread": b"short", "member": bytes(32), "control": False, "roster": []}],
        [{"thread": bytes(32), "member": bytes(32), "control": "yes", "roster": []}],
        [{"thread": bytes(32), "member": bytes(32), "control": False, "roster": [{"x": 1}]}],
        [
            {
                "thread": bytes(32),
                "member": bytes(32),
                "control": False,
                "roster": [{"device": bytes(32), "addrs": ["x" * 301]}],
            }
        ],
    ],
)
def test_a_malformed_assignment_is_refused_before_anything_is_kept(served, threads) -> None:
    s = served
    before = MirrorThread.objects.count()
    request = {
        "op": "assign",
        "proof": proof(s["master"], "assign", s["alice"], s["mirror"]),
        "threads": threads,
    }
    with pytest.raises(AppRefused):
        ask(mirror_serve.serve_mirror, s["alice"], request)
    assert MirrorThread.objects.count() == before


def test_garbage_requests_are_refused_in_words(served) -> None:
    s = served
    for handler in (mirror_serve.serve_log, mirror_serve.serve_submit, mirror_serve.serve_mirror):
        for raw in (b"", b"\xff\xff", wire.encode({"op": "nothing"})[:-1], b"\xa1av\x02"):
            with pytest.raises(AppRefused):
                handler(s["alice"], raw)


def test_a_full_node_answers_no_mirror_request(served, settings) -> None:
    s = served
    settings.SEREUS = replace(settings.SEREUS, mirror=False)
    request = {"op": "status", "proof": proof(s["master"], "status", s["alice"], s["mirror"])}
    with pytest.raises(AppRefused, match="not a mirror"):
        ask(mirror_serve.serve_mirror, s["alice"], request)


def test_the_status_counts_each_thread_of_the_party(served) -> None:
    s = served
    doc = ask(
        mirror_serve.serve_mirror,
        s["alice"],
        {"op": "status", "proof": proof(s["master"], "status", s["alice"], s["mirror"])},
    )
    counted = {t["thread"]: t["ops"] for t in doc["threads"]}
    assert counted == {
        s["control"].thread: len(log_of(s["control"])),
        s["chat"].thread: len(log_of(s["chat"])),
    }
    assert all(t["last_ms"] > 0 for t in doc["threads"])


def test_joining_keeps_the_party_and_fetches_each_log(mirror_key, monkeypatch) -> None:
    master = party_secret()
    control, _ = busy_thread("Control", renames=1)
    chat, _ = busy_thread("Chat", renames=1)
    linker = nacl.signing.SigningKey.generate()
    from apps.core.identity import peer_id_from_public_key

    peer = peer_id_from_public_key(bytes(linker.verify_key))
    logs_by_thread = {t.thread: log_of(t) for t in (control, chat)}
    fetched = []

    def fetch_log(*, thread, peer, addrs, progress=None):
        fetched.append((thread, peer, tuple(addrs)))
        return logs_by_thread[thread]

    monkeypatch.setattr(logs, "fetch_log", fetch_log)
    threads = [
        {"thread": t.thread, "member": bytes.fromhex(t.member_id), "app": "x", "name": t.name}
        for t in (control, chat)
    ]
    addrs = ["/ip4/127.0.0.1/tcp/4001"]
    mirror_serve.mirror_joined(
        party=cadre_keys.party_id(master), threads=threads, peer=peer, addrs=addrs
    )
    assert [f[0] for f in fetched] == [control.thread, chat.thread]
    rows = list(MirrorThread.objects.order_by("-control"))
    assert [(r.thread_id, r.control) for r in rows] == [(control.id, True), (chat.id, False)]
    assert rows[0].roster == [{"device": bytes(linker.verify_key).hex(), "addrs": addrs}]
    for thread in (control, chat):
        assert mirror_store.op_count(thread.thread) == len(logs_by_thread[thread.thread])
    # No plaintext of the thread is kept: not its name, not its app.
    assert not any("Chat" in str(value) for row in rows for value in row.__dict__.values())


def test_an_assignment_names_the_chunks_to_fetch_and_only_those_missing_are_wanted(
    served, monkeypatch
) -> None:
    from apps.core import blobs
    from apps.p2p.client import NetworkClient

    s = served
    chat = s["chat"]
    data = b"sealed chunk"
    here = blobs.chunk_hash(data)
    blobs.chunk_put(chat.thread, here, data)
    away = blobs.chunk_hash(b"another")
    wanted = []
    monkeypatch.setattr(
        NetworkClient, "blobs_want", lambda self, thread, chunks: wanted.append((thread, chunks))
    )
    item = {
        "thread": chat.thread,
        "member": bytes.fromhex(chat.member_id),
        "control": False,
        "roster": [{"device": s["alice"], "addrs": []}],
        "chunks": [here, away],
    }
    request = {
        "op": "assign",
        "proof": proof(s["master"], "assign", s["alice"], s["mirror"]),
        "threads": [item],
    }
    ask(mirror_serve.serve_mirror, s["alice"], request)
    assert wanted == [(chat.thread, [away])]
    # Chunks that are not 32-byte hashes: the request is refused.
    request["threads"] = [{**item, "chunks": [b"short"]}]
    request["proof"] = proof(s["master"], "assign", s["alice"], s["mirror"])
    with pytest.raises(AppRefused, match="32-byte"):
        ask(mirror_serve.serve_mirror, s["alice"], request)
