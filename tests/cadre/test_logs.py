"""Whole logs between a party's devices (``apps.cadre.logs``): the LOG and SUBMIT handlers of a
full node refuse everyone but the party (a proof of another party, of another connection, a
device not certified here) in the same words, page in log order within the bounds, and count
junk without harm; the asking side checks every answer."""

from __future__ import annotations

import time
from typing import Any

import nacl.signing
import nacl.utils
import pytest

from apps.cadre import control, logs, wire
from apps.cadre import keys as cadre_keys
from apps.core.identity import peer_id_from_public_key
from apps.core.models import Thread
from apps.core.thread import keys
from apps.core.threads import services as thread_services
from apps.core.threads.registry import thread_database
from apps.p2p.app_protocols import AppRefused


def _now() -> int:
    return time.time_ns() // 1_000_000


def _proof(purpose: str, requester: bytes, *, master: bytes | None = None, **kw: Any) -> dict:
    return cadre_keys.party_proof_sign(
        master or control.master_secret(),
        purpose=purpose,
        requester=requester,
        responder=kw.pop("responder", control.this_device()),
        at_ms=kw.pop("at_ms", _now()),
    )


def _ask(handler, device: bytes, doc: dict[str, Any]) -> dict[str, Any]:
    return wire.decode(handler(device, wire.encode(doc)), max_size=logs.MAX_RESPONSE)


def _refused(handler, device: bytes, doc: dict[str, Any] | bytes) -> str:
    raw = doc if isinstance(doc, bytes) else wire.encode(doc)
    with pytest.raises(AppRefused) as caught:
        handler(device, raw)
    return str(caught.value)


def _log(thread: Thread) -> list[bytes]:
    rows = (
        thread_database(thread.thread)
        .raw()
        .execute("SELECT raw FROM sereus_ops WHERE place = 'log' ORDER BY n")
    )
    return [bytes(raw) for (raw,) in rows]


def _grow(thread: Thread, count: int) -> None:
    database = thread_database(thread.thread)
    for i in range(count):
        database.write(lambda writer, i=i: writer.set_name(f"Name {i}"))


@pytest.fixture
def party(node):
    """This node with a thread and its control thread."""
    chat = thread_services.thread_create(name="Chat")
    ctl = control.control_ensure()
    return chat, ctl


def _stranger() -> bytes:
    return bytes(nacl.signing.SigningKey.generate().verify_key)


def _certified_device(thread: Thread) -> bytes:
    key = nacl.signing.SigningKey.generate()
    proof = keys.device_proof_sign(key, thread.thread, bytes.fromhex(thread.member_id))
    assert control.certify(thread, bytes(key.verify_key), proof)
    return bytes(key.verify_key)


# -- peer ids ---------------------------------------------------------------------------------


def test_a_peer_id_names_its_device_and_nothing_else_does(node) -> None:
    device = _stranger()
    assert logs.device_of_peer(peer_id_from_public_key(device)) == device
    for bad in (
        "",
        "hello",
        "Qm" + "1" * 44,
        "x" * 500,
        "ünïcode",
        peer_id_from_public_key(device)[:-2],
    ):
        with pytest.raises(logs.LogError):
            logs.device_of_peer(bad)


# -- threads --------------------------------------------------------------------------------------


def test_threads_lists_the_control_thread_first_with_op_counts(party) -> None:
    chat, ctl = party
    asker = _stranger()
    answer = _ask(logs.serve_log, asker, {"op": "threads", "proof": _proof("threads", asker)})
    listed = answer["threads"]
    assert [t["thread"] for t in listed] == [ctl.thread, chat.thread]
    assert [t["control"] for t in listed] == [True, False]
    assert listed[1]["name"] == "Chat"
    assert listed[1]["ops"] == len(_log(chat))


def test_threads_refuses_anyone_but_the_party(party) -> None:
    asker = _stranger()
    other_party = nacl.utils.random(32)
    forged = [
        {"op": "threads"},  # no proof
        {"op": "threads", "proof": _proof("threads", asker, master=other_party)},
        {"op": "threads", "proof": _proof("threads", _stranger())},  # another connection's
        {"op": "threads", "proof": _proof("threads", asker, responder=_stranger())},
        {"op": "threads", "proof": _proof("page", asker)},  # another purpose
        {"op": "threads", "proof": _proof("threads", asker, at_ms=_now() - 3_600_000)},
        {"op": "threads", "proof": {"party": b"x" * 32, "at": "now", "sig": 7}},
    ]
    for doc in forged:
        assert _refused(logs.serve_log, asker, doc) == logs.NOT_PARTY


def test_garbage_requests_are_refused_in_words(party) -> None:
    asker = _stranger()
    assert "CBOR" in _refused(logs.serve_log, asker, b"\xff\x00garbage")
    assert "version" in _refused(logs.serve_log, asker, b"\xa1\x61v\x02")
    assert "Unknown request" in _refused(logs.serve_log, asker, {"op": "delete"})
    proof = _proof("page", asker)
    for doc in (
        {"op": "page", "thread": b"short", "after": 0, "proof": proof},
        {"op": "page", "thread": party[0].thread, "after": -1, "proof": proof},
        {"op": "page", "thread": party[0].thread, "after": "0", "proof": proof},
    ):
        assert "must be" in _refused(logs.serve_log, asker, doc)


# -- pages ----------------------------------------------------------------------------------------


def test_a_page_needs_the_party_or_a_device_certified_here(party) -> None:
    chat, ctl = party
    stranger = _stranger()
    asks = {"op": "page", "thread": chat.thread, "after": 0}
    assert _refused(logs.serve_log, stranger, asks) == logs.NOT_SHARED
    other = {**asks, "proof": _proof("page", stranger, master=nacl.utils.random(32))}
    assert _refused(logs.serve_log, stranger, other) == logs.NOT_SHARED
    # A thread this node does not have: the same words.
    unknown = {"op": "page", "thread": nacl.utils.random(32), "after": 0}
    proof = _proof("page", stranger)
    assert _refused(logs.serve_log, stranger, {**unknown, "proof": proof}) == logs.NOT_SHARED
    # The party's proof, or a device certified for this node's member in that very thread.
    assert _ask(logs.serve_log, stranger, {**asks, "proof": proof})["ops"] == _log(chat)
    device = _certified_device(chat)
    assert _ask(logs.serve_log, device, asks)["ops"] == _log(chat)
    assert _refused(logs.serve_log, device, {**asks, "thread": ctl.thread}) == logs.NOT_SHARED


def test_a_device_of_another_member_is_not_served(party, tmp_path) -> None:
    from tests.core.threads.conftest import admit, other_node

    chat, _ctl = party
    bob = other_node(tmp_path, chat.thread, "bob")
    admit(thread_database(chat.thread), bob, "writer")
    bob_device = bytes(bob.keys.device.verify_key)
    asks = {"op": "page", "thread": chat.thread, "after": 0}
    assert _refused(logs.serve_log, bob_device, asks) == logs.NOT_SHARED


def test_pages_follow_the_log_within_their_bounds(party, monkeypatch) -> None:
    chat, _ctl = party
    _grow(chat, 7)
    whole = _log(chat)
    monkeypatch.setattr(wire, "PAGE_OPS", 3)
    asker = _stranger()
    got, after, pages = [], 0, 0
    while True:
        doc = {"op": "page", "thread": chat.thread, "after": after}
        answer = _ask(logs.serve_log, asker, {**doc, "proof": _proof("page", asker)})
        assert len(answer["ops"]) <= 3
        got += answer["ops"]
        after, pages = answer["next"], pages + 1
        if answer["done"]:
            break
    assert got == whole
    assert pages == -(-len(whole) // 3)
    # Bytes: a page stops before the op that would pass the bound, but holds one at least.
    monkeypatch.setattr(wire, "PAGE_BYTES", 1)
    first = logs.page_read(chat.thread, 0)
    assert first[0] == whole[:1]
    assert first[2] is False
    # Past the end: nothing, done, the position kept.
    assert logs.page_read(chat.thread, 10**9) == ([], 10**9, True)


# -- submit ---------------------------------------------------------------------------------------


def test_submit_takes_the_party_s_ops_and_counts_junk(party, tmp_path) -> None:
    from tests.core.threads.conftest import admit, other_node

    chat, _ctl = party
    asker = _stranger()
    doc = {"thread": chat.thread, "ops": [b"\x00junk", b"\xa0", 7, b""]}
    assert _refused(logs.serve_submit, asker, doc) == logs.NOT_PARTY
    junk = _ask(logs.serve_submit, asker, {**doc, "proof": _proof("submit", asker)})
    assert junk == {"admitted": 0, "refused": 0, "other": 4, "v": 1}
    # Another member's ops (as a restored device's would be) are taken in.
    bob = other_node(tmp_path, chat.thread, "bob")
    before = _log(chat)
    admit(thread_database(chat.thread), bob, "writer")
    bob.database.write(lambda writer: writer.set_name("Bob"))
    theirs = [
        bytes(raw)
        for (raw,) in bob.database.raw().execute(
            "SELECT raw FROM sereus_ops WHERE place = 'log' ORDER BY n"
        )
    ]
    fresh = [raw for raw in theirs if raw not in _log(chat)]
    assert fresh
    counts = _ask(
        logs.serve_submit, asker, {**doc, "ops": theirs, "proof": _proof("submit", asker)}
    )
    assert counts["admitted"] == len(theirs)
    assert counts["other"] == 0
    assert set(_log(chat)) >= set(before) | set(fresh)
    unknown = {"thread": nacl.utils.random(32), "ops": [], "proof": _proof("submit", asker)}
    assert _refused(logs.serve_submit, asker, unknown) == logs.NOT_SHARED


# -- the asking side ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        ({"ops": "x", "next": 1, "done": True}, "malformed"),
        ({"ops": [], "next": 1}, "last"),
        ({"ops": [b"a", 3], "next": 1, "done": True}, "not an op"),
        ({"ops": [], "next": 0, "done": False}, "do not advance"),
        ({"ops": [b"a"], "next": 5, "done": False}, "do not advance"),
        ({"ops": [b"a"], "next": -1, "done": True}, "malformed"),
    ],
)
def test_a_hostile_page_is_refused_in_words(doc, words) -> None:
    with pytest.raises(logs.LogError) as caught:
        logs._page_check(doc, after=5)
    assert words in caught.value.words


def test_submit_chunks_stay_under_the_request_bound(monkeypatch) -> None:
    monkeypatch.setattr(logs, "SUBMIT_BUDGET", 100)
    raws = [b"a" * 40, b"b" * 40, b"c" * 40, b"d" * 200, b"e" * 10]
    chunks = list(logs._chunks(raws))
    assert chunks == [[b"a" * 40, b"b" * 40], [b"c" * 40, b"e" * 10]]


# -- over real hosts ------------------------------------------------------------------------------


class _Host:
    """A p2p host in this process (no DHT), for requests between two real hosts."""

    def __init__(self, key: nacl.signing.SigningKey, data_dir) -> None:
        from apps.p2p.bridge import TrioThread
        from apps.p2p.node import NodeSettings, SereusNode

        data_dir.mkdir()
        self.node = SereusNode(
            key, NodeSettings(data_dir=data_dir, listen="/ip4/127.0.0.1/tcp/0", dht=False)
        )
        self.bridge = TrioThread(f"host-{data_dir.name}")
        self.bridge.start(self.node.run)

    @property
    def where(self) -> dict[str, Any]:
        return {"peer": self.node.peer_id, "addrs": list(self.node.addrs)}


@pytest.fixture
def hosts(party, tmp_path):
    """This node's host (serving its logs) and another host of the party asking (this
    process's p2p node, as ``client.app_request`` finds it)."""
    from apps.p2p import client
    from apps.p2p.host import quiet_libp2p_logs

    quiet_libp2p_logs()
    server = _Host(thread_database(party[0].thread).node.device, tmp_path / "server")
    asker = _Host(nacl.signing.SigningKey.generate(), tmp_path / "asker")
    client.local_set(asker.bridge, asker.node)
    try:
        yield server, asker
    finally:
        client.local_clear()
        asker.bridge.stop()
        server.bridge.stop()


@pytest.mark.django_db(transaction=True)
def test_logs_travel_between_real_hosts(party, hosts, monkeypatch) -> None:
    chat, ctl = party
    server, _asker = hosts
    _grow(chat, 5)
    listed = logs.list_threads(**server.where)
    assert [(t["thread"], t["control"]) for t in listed] == [
        (ctl.thread, True),
        (chat.thread, False),
    ]
    monkeypatch.setattr(wire, "PAGE_OPS", 2)
    seen: list[int] = []
    assert logs.fetch_log(thread=chat.thread, progress=seen.append, **server.where) == _log(chat)
    assert seen == sorted(seen)
    assert seen[-1] == len(_log(chat))
    assert len(seen) == -(-len(_log(chat)) // 2)
    counts = logs.submit(thread=chat.thread, raws=[b"junk", *_log(chat)], **server.where)
    assert counts == {"admitted": len(_log(chat)), "refused": 0, "other": 1}
    with pytest.raises(logs.LogError) as caught:
        logs.fetch_log(thread=nacl.utils.random(32), **server.where)
    assert caught.value.code == "forbidden"
    assert caught.value.words == logs.NOT_SHARED
    # A log longer than any of ours (in ops, or in bytes held in memory) is cut off in words.
    monkeypatch.setattr(logs, "MAX_FETCH_OPS", 3)
    with pytest.raises(logs.LogError, match="more than 3 ops"):
        logs.fetch_log(thread=chat.thread, **server.where)
    monkeypatch.setattr(logs, "MAX_FETCH_OPS", 10**6)
    monkeypatch.setattr(logs, "MAX_FETCH_BYTES", 100)
    with pytest.raises(logs.LogError, match="more of one thread"):
        logs.fetch_log(thread=chat.thread, **server.where)


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_peer_is_said_in_words(party, hosts) -> None:
    server, _asker = hosts
    gone = {"peer": peer_id_from_public_key(_stranger()), "addrs": ["/ip4/127.0.0.1/tcp/9"]}
    with pytest.raises(logs.LogError) as caught:
        logs.list_threads(**gone)
    assert caught.value.code == "unavailable"
    with pytest.raises(logs.LogError) as caught:
        logs.fetch_log(thread=party[0].thread, peer="not-a-peer", addrs=server.where["addrs"])
    assert caught.value.code == "invalid"
