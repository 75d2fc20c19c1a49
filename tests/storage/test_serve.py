"""The holder protocol as a holder answers it: only for parties it holds for, only with a proof
bound to the connection and the op, every field checked, nothing deleted without the party's
signature naming this node."""

from __future__ import annotations

import dataclasses

import nacl.utils
import pytest

from apps.cadre import mirror_store
from apps.cadre.logs import page_read
from apps.cadre.models import MirrorThread
from apps.core.threads import services
from apps.p2p.app_protocols import AppRefused
from apps.storage import held, keys, wire
from apps.storage.models import HeldParty, HeldShare
from apps.storage.serve import NOT_HELD, serve
from apps.storage.space import device_key
from tests.storage.support import answer, hold_for, holder_request, now_ms, other_master

pytestmark = pytest.mark.django_db(transaction=True)

PEER = b"\x07" * 32  # the asking device, as the connection names it
OPS = ("put", "get", "audit", "release", "usage", "deposit")


def ask(master: bytes, op: str, **fields) -> dict:
    return answer(serve(PEER, holder_request(master, op, requester=PEER, **fields)))


def refused(master: bytes, op: str, **fields) -> str:
    with pytest.raises(AppRefused) as caught:
        serve(PEER, holder_request(master, op, requester=PEER, **fields))
    return str(caught.value)


def test_a_stranger_gets_the_same_answer_for_every_op(node) -> None:
    stranger = other_master()
    HeldParty.objects.create(party="cd" * 32, quota=1 << 30)  # someone else is held here
    for op in OPS:
        assert refused(stranger, op, shares=[b"x"], digests=[]) == NOT_HELD
    left = other_master()
    hold_for(left)
    HeldParty.objects.filter(pk=keys.party_id(left).hex()).update(active=False)
    assert refused(left, "usage") == NOT_HELD


def test_a_proof_for_another_connection_or_purpose_or_time_is_refused(node) -> None:
    bob = other_master()
    hold_for(bob)
    share = nacl.utils.random(100)
    for bad in (
        {"responder": b"\x09" * 32},  # made for another holder
        {"purpose": keys.PURPOSE_GET},  # a get's proof used for a put
        {"at_ms": now_ms() - 3_600_000},  # an hour old
    ):
        assert "could not check your party" in refused(bob, "put", shares=[share], **bad)
    other_requester = holder_request(bob, "put", requester=b"\x08" * 32, shares=[share])
    with pytest.raises(AppRefused, match="could not check your party"):
        serve(PEER, other_requester)
    assert not HeldShare.objects.exists()


def test_put_get_audit_usage_and_release_round_trip(node) -> None:
    bob = other_master()
    party = hold_for(bob, quota=1 << 20)
    shares = [nacl.utils.random(1000 + i) for i in range(3)]
    digests = [keys.share_digest(s) for s in shares]
    put = ask(bob, "put", shares=shares)
    assert put == {"kept": digests, "used": 3003, "quota": 1 << 20, "v": 1}
    missing = b"\x03" * 32
    got = ask(bob, "get", digests=[digests[1], missing])
    assert got["shares"] == [shares[1], None]
    nonce = nacl.utils.random(32)
    audited = ask(bob, "audit", items=[[digests[0], nonce], [missing, nonce]])
    assert audited["answers"] == [keys.audit_answer(nonce, shares[0]), None]
    assert ask(bob, "usage") == {"used": 3003, "quota": 1 << 20, "shares": 3, "v": 1}
    at = now_ms()
    sig = keys.release_sign(bob, holder=device_key(), digests=digests[:2], at_ms=at)
    released = ask(bob, "release", digests=digests[:2], at=at, sig=sig)
    assert released == {"released": 2, "used": 1002, "v": 1}
    assert held.held_get(party, digests[2]) == shares[2]
    assert held.held_get(party, digests[0]) is None


def test_a_release_not_signed_for_this_holder_by_this_party_deletes_nothing(node) -> None:
    bob, mallory = other_master(), other_master()
    hold_for(bob)
    hold_for(mallory)
    share = nacl.utils.random(500)
    digest = ask(bob, "put", shares=[share])["kept"][0]
    at = now_ms()
    forged = (
        keys.release_sign(
            mallory, holder=device_key(), digests=[digest], at_ms=at
        ),  # another party
        keys.release_sign(bob, holder=b"\x09" * 32, digests=[digest], at_ms=at),  # another holder
        keys.release_sign(
            bob, holder=device_key(), digests=[b"\x01" * 32], at_ms=at
        ),  # other shares
    )
    for sig in forged:
        words = refused(bob, "release", digests=[digest], at=at, sig=sig)
        assert words.endswith("nothing was deleted.")
    old = at - 3_600_000
    sig = keys.release_sign(bob, holder=device_key(), digests=[digest], at_ms=old)
    assert "too old" in refused(bob, "release", digests=[digest], at=old, sig=sig)
    assert ask(bob, "get", digests=[digest])["shares"] == [share]


def test_over_the_quota_is_refused_in_words_and_a_partial_put_says_so(node) -> None:
    bob = other_master()
    hold_for(bob, quota=2500)
    shares = [nacl.utils.random(1000) for _ in range(3)]
    put = ask(bob, "put", shares=shares)
    assert put["kept"] == [keys.share_digest(s) for s in shares[:2]]
    assert put["full"].startswith(held.FULL_START)
    words = refused(bob, "put", shares=[shares[2]])
    assert words.startswith(held.FULL_START)
    assert "cannot take 1000 bytes more" in words


def test_malformed_requests_are_refused_in_words(node) -> None:
    bob = other_master()
    hold_for(bob)
    with pytest.raises(AppRefused, match="not readable"):
        serve(PEER, b"\xff\x00garbage")
    with pytest.raises(AppRefused, match="not readable"):
        serve(PEER, wire.encode({"op": "put"})[:-3])
    assert "puts, gets" in refused(bob, "steal")
    cases = [
        ("put", {"shares": "nope"}),
        ("put", {"shares": [b""]}),
        ("put", {"shares": [123]}),
        ("get", {"digests": [b"short"]}),
        ("audit", {"items": [[b"\x01" * 32]]}),
        ("audit", {"items": [[b"\x01" * 32, b"nonce"]]}),
        ("release", {"digests": [b"\x01" * 32], "at": -1, "sig": b"s" * 64}),
        ("release", {"digests": [b"\x01" * 32], "at": now_ms(), "sig": b"short"}),
        ("deposit", {"thread": b"t", "control": False, "member": b"m" * 32, "ops": []}),
        ("deposit", {"thread": b"t" * 32, "control": "yes", "member": b"m" * 32, "ops": []}),
        ("deposit", {"thread": b"t" * 32, "control": False, "member": b"m" * 32, "ops": [1]}),
    ]
    for op, fields in cases:
        words = refused(bob, op, **fields)
        assert words.startswith(f"This {op} request is malformed: "), words
        assert "Traceback" not in words


def test_oversize_lists_are_refused(node) -> None:
    bob = other_master()
    hold_for(bob)
    many = [b"\x01" * 32] * (wire.MAX_GET + 1)
    assert "at most 64" in refused(bob, "get", digests=many)
    items = [[b"\x01" * 32, b"\x02" * 32]] * (wire.MAX_AUDIT + 1)
    assert "at most 1024" in refused(bob, "audit", items=items)
    big = [nacl.utils.random(1 << 20) for _ in range(5)]  # 5 MiB of shares: over one put
    with pytest.raises(AppRefused, match=r"larger than|at most"):
        serve(PEER, holder_request(bob, "put", requester=PEER, shares=big))
    assert not HeldShare.objects.exists()


def test_a_get_answer_is_bounded_and_says_where_it_stopped(node) -> None:
    bob = other_master()
    hold_for(bob)
    shares = [nacl.utils.random(1_500_000) for _ in range(4)]
    digests = [ask(bob, "put", shares=[s])["kept"][0] for s in shares]
    got = ask(bob, "get", digests=digests)
    assert got["cut"] == 2  # 3 MB answered; the third would pass the 4 MiB bound
    assert got["shares"][:2] == shares[:2]
    assert got["shares"][2:] == [None, None]


def test_a_deposit_keeps_the_ops_of_the_party_and_refuses_another_partys(node) -> None:
    bob, mallory = other_master(), other_master()
    hold_for(bob)
    hold_for(mallory)
    thread = services.thread_create(name="Bob's control")  # any real thread's ops will do
    ops, _position, done = page_read(thread.thread, 0)
    assert done
    assert ops
    fields = {"thread": thread.thread, "control": True, "member": b"\x05" * 32}
    kept = ask(bob, "deposit", ops=ops, **fields)
    assert kept["admitted"] == len(ops)
    assert kept["used"] == sum(len(op) for op in ops)
    assert mirror_store.op_count(thread.thread) == len(ops)
    row = MirrorThread.objects.get(pk=thread.thread.hex())
    assert row.party_id == keys.party_id(bob).hex()
    assert row.control
    again = ask(bob, "deposit", ops=ops, **fields)  # nothing new: costs nothing more
    assert again["admitted"] == 0
    assert again["used"] == kept["used"]
    words = refused(mallory, "deposit", ops=ops, **{**fields, "control": False})
    assert words == "That thread is kept here for another party."
    assert HeldParty.objects.get(pk=keys.party_id(mallory).hex()).used == 0


def test_a_deposit_over_the_quota_keeps_nothing(node) -> None:
    bob = other_master()
    hold_for(bob, quota=100)
    thread = services.thread_create(name="Big")
    ops, _position, _done = page_read(thread.thread, 0)
    fields = {"thread": thread.thread, "control": False, "member": b"\x05" * 32}
    assert refused(bob, "deposit", ops=ops, **fields).startswith(held.FULL_START)
    assert mirror_store.op_count(thread.thread) == 0
    assert not MirrorThread.objects.exists()
    assert HeldParty.objects.get(pk=keys.party_id(bob).hex()).used == 0


# -- the owner's client against this handler ------------------------------------------------------

HOLDER_DEVICE = b"\x0b" * 32  # the holder as the loop below makes this node answer


@pytest.fixture
def loop(node, monkeypatch) -> list[bytes]:
    """The client's requests answered by ``serve`` on this node as if it were another device of
    the party (the p2p transport is the integration tests'): the requests it saw."""
    from apps.p2p import client as p2p_client
    from apps.p2p.app_protocols import AppRequestError
    from apps.storage import serve as serve_module

    monkeypatch.setattr(serve_module, "_own_device", lambda: HOLDER_DEVICE)
    monkeypatch.setattr(serve_module, "_own_devices", lambda: {HOLDER_DEVICE})
    seen: list[bytes] = []

    def app_request(peer_id, addrs, protocol, payload, *, timeout):
        assert protocol == wire.PROTOCOL
        seen.append(payload)
        try:
            return serve(device_key(), payload)
        except AppRefused as exc:
            raise AppRequestError("refused", str(exc)[:300]) from None

    monkeypatch.setattr(p2p_client, "app_request", app_request)
    return seen


def bob_target():
    from apps.storage.client import Target

    return Target(HOLDER_DEVICE, "12D3KooWBob", ("/ip4/127.0.0.1/tcp/4001",), "Bob's node")


def test_the_client_batches_puts_and_gets_and_checks_what_comes_back(loop) -> None:
    from apps.storage import client

    shares = [nacl.utils.random(1_500_000) for _ in range(4)] + [nacl.utils.random(10)]
    digests = [keys.share_digest(s) for s in shares]
    put = client.put(bob_target(), shares)
    assert put["kept"] == digests
    assert put["used"] == sum(len(s) for s in shares)
    assert len(loop) == 2  # two of these shares and the small one fill a put (4 MiB)
    loop.clear()
    missing = b"\x04" * 32
    got = client.get(bob_target(), [*digests, missing])
    assert got == {**dict(zip(digests, shares, strict=True)), missing: None}
    assert len(loop) == 2  # the holder's answer stops at 4 MiB: the client asks for the rest
    nonce = nacl.utils.random(32)
    answers = client.audit(bob_target(), [(digests[4], nonce), (missing, nonce)])
    assert answers == [keys.audit_answer(nonce, shares[4]), None]
    assert client.release(bob_target(), digests[:2]) == 2
    assert client.usage(bob_target())["shares"] == 3


def test_a_share_that_comes_back_changed_is_corrupt(loop, monkeypatch) -> None:
    from apps.p2p import client as p2p_client
    from apps.storage import client

    share = nacl.utils.random(1000)
    (digest,) = client.put(bob_target(), [share])["kept"]
    honest = p2p_client.app_request

    def lying(*args, **kwargs):
        doc = answer(honest(*args, **kwargs))
        doc["shares"] = [s[:-1] + b"!" if s else s for s in doc["shares"]]
        return wire.encode(doc)

    monkeypatch.setattr(p2p_client, "app_request", lying)
    assert client.get(bob_target(), [digest]) == {digest: "corrupt"}


def test_the_client_says_what_went_wrong_in_words(loop, monkeypatch, settings) -> None:
    from apps.p2p import client as p2p_client
    from apps.p2p.app_protocols import AppRequestError
    from apps.storage import client

    # The party's own devices hold what the node's setting grants.
    settings.SEREUS = dataclasses.replace(settings.SEREUS, storage_quota=2500)
    shares = [nacl.utils.random(1000) for _ in range(3)]
    with pytest.raises(client.HolderError) as caught:
        client.put(bob_target(), shares)
    assert caught.value.code == "full"
    assert caught.value.words.startswith("Bob's node is full: This node keeps at most")
    assert caught.value.kept == [keys.share_digest(s) for s in shares[:2]]

    def offline(*args, **kwargs):
        raise AppRequestError("unreachable", "cannot reach that node at its addresses")

    monkeypatch.setattr(p2p_client, "app_request", offline)
    with pytest.raises(client.HolderError) as caught:
        client.usage(bob_target())
    assert (caught.value.code, caught.value.words) == (
        "unreachable",
        "Bob's node did not answer: it may be offline.",
    )
    monkeypatch.setattr(p2p_client, "app_request", lambda *a, **k: b"\x00not cbor")
    with pytest.raises(client.HolderError, match="cannot read") as caught:
        client.usage(bob_target())
    assert caught.value.code == "refused"


def test_a_target_that_is_this_node_is_served_without_the_network(node, monkeypatch) -> None:
    from apps.p2p import client as p2p_client
    from apps.storage import client

    def no_network(*args, **kwargs):
        raise AssertionError("this node asked itself over the network")

    monkeypatch.setattr(p2p_client, "app_request", no_network)
    me = client.Target(device_key(), "12D3KooWMe", ())
    assert client.is_self(me)
    share = nacl.utils.random(700)
    (digest,) = client.put(me, [share])["kept"]
    assert client.get(me, [digest]) == {digest: share}
    assert client.usage(me)["shares"] == 1
    assert client.release(me, [digest]) == 1


def test_an_audit_reads_a_bounded_amount_and_the_client_asks_for_the_rest(
    loop, monkeypatch
) -> None:
    from apps.storage import client
    from apps.storage import serve as serve_module

    monkeypatch.setattr(serve_module, "AUDIT_BYTES", 2500)
    shares = [nacl.utils.random(1000) for _ in range(5)]
    digests = client.put(bob_target(), shares)["kept"]
    nonce = nacl.utils.random(32)
    loop.clear()
    answers = client.audit(bob_target(), [(d, nonce) for d in digests])
    assert answers == [keys.audit_answer(nonce, s) for s in shares]
    assert len(loop) == 3  # two shares' worth of reading per request
