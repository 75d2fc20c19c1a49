"""The holder protocol as a holder answers it: only for parties it holds for, only with a proof
bound to the connection and the op, every field checked, nothing deleted without the party's
signature naming this node."""

from __future__ import annotations

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
