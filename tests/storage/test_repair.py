"""Repair: a share lost, damaged or on a holder gone for good is made again byte for byte from
any k others and placed where no other share of its chunk is (the same holder if it came back
empty, never one that answered wrongly); a holder briefly away is waited for; a chunk with
fewer than k shares left is LOST and its files named; used-up audit answers are refreshed.

Friends' nodes run in this process: the holder protocol's transport hands each request to the
real handler (``serve.serve``) as that friend's device; they keep their shares in one store
(different shares have different digests, so each holder's are its own)."""

from __future__ import annotations

import os
import threading

import nacl.signing
import pytest

from apps.core.identity import peer_id_from_public_key
from apps.p2p import client as p2p_client
from apps.p2p.app_protocols import AppRefused, AppRequestError
from apps.storage import audit, client, engine, held, keys, repair, restore, serve, space
from apps.storage.models import Chunk, FileEntry, Holder, Share, Snapshot
from tests.storage.support import hold_for

pytestmark = pytest.mark.django_db(transaction=True)

NAMES = ("Bob", "Carol", "Dan", "Eve", "Fay")


_SERVING = threading.Lock()


class Friends:
    """Friends' nodes answering the holder protocol in this process."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, count: int) -> None:
        self.devices: dict[str, bytes] = {}
        self.offline: set[str] = set()
        self.corrupting: set[bytes] = set()  # digests a friend answers a get with wrong bytes
        monkeypatch.setattr(p2p_client, "app_request", self.app_request)
        thread = space.storage_ensure()
        self.holders: list[Holder] = []
        for name in NAMES[:count]:
            device = bytes(nacl.signing.SigningKey.generate().verify_key)
            peer_id = peer_id_from_public_key(device)
            self.devices[peer_id] = device
            self.holders.append(
                space.write(
                    thread,
                    lambda name=name, device=device, peer_id=peer_id: Holder.objects.create(
                        kind=Holder.Kind.PEER,
                        device=device.hex(),
                        peer_id=peer_id,
                        addrs=["/ip4/127.0.0.1/tcp/9"],
                        label=name,
                        party=os.urandom(32).hex(),  # each its own party
                        quota=1 << 30,
                    ),
                )
            )
        hold_for(space.master_secret(), label="Alice")

    def app_request(
        self, peer_id: str, addrs: list[str], protocol: str, payload: bytes, *, timeout: float
    ) -> bytes:
        if peer_id in self.offline:
            raise AppRequestError("unreachable", "No connection to that node.")
        device = self.devices[peer_id]
        # Restores fetch from several holders at once: patching the module from two threads
        # at a time would leave the other's patch behind for later tests.
        with _SERVING, pytest.MonkeyPatch.context() as mp:
            mp.setattr(serve, "_own_device", lambda: device)
            mp.setattr(held, "own_party_id", lambda: None)
            try:
                answer = serve.serve(space.device_key(), payload)
            except AppRefused as exc:
                raise AppRequestError("refused", str(exc)) from None
        if self.corrupting:
            doc = serve.wire.decode(answer, max_size=8 << 20)
            asked = serve.wire.decode(payload, max_size=8 << 20)
            if asked["op"] == "get":
                doc["shares"] = [
                    b"x" + s[1:] if d in self.corrupting and s else s
                    for d, s in zip(asked["digests"], doc["shares"], strict=True)
                ]
                answer = serve.wire.encode(doc)
        return answer

    def empty(self, digest: str) -> None:
        """The holder lost the share (its disk was replaced)."""
        held.held_release(
            held.held_party(keys.party_id(space.master_secret())), [bytes.fromhex(digest)]
        )

    def has(self, digest: str) -> bytes | None:
        return held.held_get(held.own_party(), bytes.fromhex(digest))


@pytest.fixture(autouse=True)
def _fresh():
    audit.forget()
    yield
    audit.forget()


def _friends(monkeypatch, count: int) -> Friends:
    return Friends(monkeypatch, count)


def _rows(model, **filters) -> list:
    return list(model.objects.using(space.using(space.storage_thread())).filter(**filters))


def _backup(holders: list[Holder], *, k: int = 2, n: int = 4, path: str = "notes.txt"):
    """One chunk of a snapshot's file, its shares i on holders[i]; (chunk, shares, plain)."""
    master = space.master_secret()
    plain = os.urandom(200_000)
    cid = keys.chunk_id(keys.dedup_key(master), plain)
    packed = engine.pack(plain, chunk=cid, seal_root=keys.seal_root(master), k=k, n=n)
    audit_key = keys.audit_key(master)
    for i, holder in enumerate(holders[:n]):
        client.put(client.target_of(holder), [packed.shares[i]])

    def write() -> Chunk:
        snap = Snapshot.objects.create(source="/home", device="d1", started_ms=1, state="complete")
        FileEntry.objects.create(snapshot=snap.pk, path=path, chunks=[cid.hex()])
        chunk = Chunk.objects.create(
            key=cid.hex(), size=packed.size, packed=packed.packed, k=k, n=n, state="placed"
        )
        for i in range(n):
            Share.objects.create(
                chunk=chunk.pk,
                index=i,
                holder=holders[i].pk,
                digest=packed.digests[i].hex(),
                size=len(packed.shares[i]),
                state="placed",
                answers=engine.audit_answers(
                    packed.shares[i],
                    packed.digests[i],
                    audit=audit_key,
                    start=0,
                    rounds=engine.AUDIT_ROUNDS,
                ),
            )
        return chunk

    chunk = space.write(space.storage_thread(), write)
    return chunk, sorted(_rows(Share, chunk=chunk.pk), key=lambda s: s.index), plain, packed


def _set(model, pk, **fields) -> None:
    space.write(space.storage_thread(), lambda: model.objects.filter(pk=pk).update(**fields))


def test_a_holder_back_empty_gets_its_share_again_identical(node, monkeypatch) -> None:
    f = _friends(monkeypatch, 4)
    chunk, shares, plain, packed = _backup(f.holders)
    f.empty(shares[1].digest)
    assert audit.audit_step(force=True)["missing"] == 1
    assert repair.repair_step() == {"repaired": 1, "lost": 0, "refreshed": 0}
    again = _rows(Share, pk=shares[1].pk)[0]
    assert (again.state, again.holder, again.digest) == (
        "placed",
        f.holders[1].pk,
        shares[1].digest,
    )
    assert f.has(again.digest) == packed.shares[1]
    assert restore.chunk_fetch(_rows(Chunk, pk=chunk.pk)[0]) == plain
    assert audit.audit_step(force=True)["verified"] == 4  # its answers still hold
    assert repair.repair_step()["repaired"] == 0  # nothing more to do


def test_shares_of_a_holder_that_left_move_where_the_chunk_has_none(node, monkeypatch) -> None:
    f = _friends(monkeypatch, 5)
    chunk, shares, plain, _ = _backup(f.holders)
    _set(Holder, f.holders[0].pk, state="left")
    assert repair.repair_step()["repaired"] == 1
    moved = _rows(Share, pk=shares[0].pk)[0]
    assert (moved.state, moved.holder) == ("placed", f.holders[4].pk)
    holders = [s.holder for s in _rows(Share, chunk=chunk.pk)]
    assert len(set(holders)) == 4
    assert restore.chunk_fetch(_rows(Chunk, pk=chunk.pk)[0]) == plain


def test_a_holder_briefly_away_is_waited_for_then_replaced(node, monkeypatch) -> None:
    f = _friends(monkeypatch, 5)
    _chunk, shares, _, _ = _backup(f.holders)
    now = audit.clock_ms()
    _set(Holder, f.holders[2].pk, state="unreachable", seen_ms=now - audit.check_ms())
    assert repair.repair_step(now_ms=now)["repaired"] == 0
    later = now + audit.AWAY_CHECKS * audit.check_ms()
    assert repair.repair_step(now_ms=later)["repaired"] == 1
    assert _rows(Share, pk=shares[2].pk)[0].holder == f.holders[4].pk


def test_a_corrupt_share_goes_to_another_holder_than_the_one_that_lied(node, monkeypatch) -> None:
    f = _friends(monkeypatch, 5)
    chunk, shares, plain, _ = _backup(f.holders)
    _set(Share, shares[3].pk, state="corrupt")  # as an audit leaves it
    _set(Holder, f.holders[3].pk, state="failing")
    assert repair.repair_step()["repaired"] == 1
    row = _rows(Share, pk=shares[3].pk)[0]
    assert row.state == "placed"
    assert row.holder == f.holders[4].pk
    assert restore.chunk_fetch(_rows(Chunk, pk=chunk.pk)[0]) == plain


def test_damaged_bytes_fetched_for_a_repair_are_remade_and_others_used(node, monkeypatch) -> None:
    f = _friends(monkeypatch, 5)
    _chunk, shares, _, packed = _backup(f.holders)
    _set(Holder, f.holders[3].pk, state="left")
    # Repair asks the holders of good shares in a fixed order (by key) until it has k: the one
    # asked first sends damaged bytes, so the damage is found on the way.
    liar = min(range(3), key=lambda i: str(f.holders[i].pk))
    f.corrupting.add(bytes.fromhex(shares[liar].digest))
    # Share 3 from two good ones; the damaged share, too (not on the liar again).
    assert repair.repair_step()["repaired"] == 2
    remade = [_rows(Share, pk=shares[i].pk)[0] for i in (liar, 3)]
    assert [s.state for s in remade] == ["placed", "placed"]
    assert not {s.holder for s in remade} & {f.holders[liar].pk, f.holders[3].pk}
    assert f.holders[4].pk in {s.holder for s in remade}  # the one with no share of it
    f.corrupting.clear()
    assert f.has(shares[3].digest) == packed.shares[3]


def test_fewer_than_k_shares_left_is_lost_and_names_its_files(node, monkeypatch) -> None:
    f = _friends(monkeypatch, 4)
    chunk, shares, _, _ = _backup(f.holders, path="photos/cat.jpg")
    for share in shares[:3]:
        f.empty(share.digest)
    audit.audit_step(force=True)
    assert repair.repair_step()["lost"] == 1
    assert _rows(Chunk, pk=chunk.pk)[0].state == "lost"
    assert [x["path"] for x in repair.lost_files()] == ["photos/cat.jpg"]
    assert repair.repair_step() == {"repaired": 0, "lost": 0, "refreshed": 0}  # not again


def test_shares_waiting_in_an_outbox_keep_a_chunk_from_being_lost(node, monkeypatch) -> None:
    f = _friends(monkeypatch, 4)
    chunk, shares, _, _ = _backup(f.holders)
    for share in shares[:2]:
        _set(Share, share.pk, state="pending", holder=None)
    for share in shares[2:]:
        _set(Share, share.pk, state="missing")
    assert repair.repair_step()["lost"] == 0
    assert _rows(Chunk, pk=chunk.pk)[0].state == "placed"


def test_with_no_holder_room_the_remade_share_waits_in_the_outbox(node, monkeypatch) -> None:
    from apps.storage import placement

    f = _friends(monkeypatch, 4)
    _chunk, shares, _, packed = _backup(f.holders)
    _set(Holder, f.holders[0].pk, state="left")
    for holder in f.holders:
        _set(Holder, holder.pk, quota=1)  # all full
    assert repair.repair_step()["repaired"] == 0
    row = _rows(Share, pk=shares[0].pk)[0]
    assert (row.state, row.holder) == ("pending", None)
    assert placement.outbox_get(bytes.fromhex(row.digest)) == packed.shares[0]


def test_used_up_answers_are_refreshed_from_the_holders_copy(node, monkeypatch) -> None:
    f = _friends(monkeypatch, 4)
    _chunk, shares, _, _ = _backup(f.holders)
    _set(Share, shares[0].pk, answers=b"", audits=engine.AUDIT_ROUNDS)
    assert audit.audit_step(force=True)["verified"] == 3  # nothing to ask it yet
    assert repair.repair_step()["refreshed"] == 1
    row = _rows(Share, pk=shares[0].pk)[0]
    assert len(bytes(row.answers)) == engine.AUDIT_ROUNDS * engine.ANSWER
    assert audit.audit_step(force=True)["verified"] == 4
    assert _rows(Share, pk=shares[0].pk)[0].audits == engine.AUDIT_ROUNDS + 1


def test_each_step_does_a_bounded_amount(node, monkeypatch) -> None:
    f = _friends(monkeypatch, 5)
    _backup(f.holders)
    _backup(f.holders)
    _set(Holder, f.holders[0].pk, state="left")
    monkeypatch.setattr(repair, "CHUNKS_PER_STEP", 1)
    assert repair.repair_step()["repaired"] == 1
    assert repair.repair_step()["repaired"] == 1
    assert repair.repair_step()["repaired"] == 0


def test_one_device_of_the_party_repairs_the_next_when_it_is_away(node, monkeypatch) -> None:
    from apps.storage import hold

    f = _friends(monkeypatch, 5)
    _backup(f.holders)
    _set(Holder, f.holders[0].pk, state="left")
    hold.holders_refresh()  # this device's own row
    laptop = space.write(  # the lowest key there is: the party's repairer while active
        space.storage_thread(),
        lambda: Holder.objects.create(kind=Holder.Kind.DEVICE, device="00" * 32, label="Laptop"),
    )
    assert not repair.repairer()
    assert repair.repair_round()["repaired"] == 0  # the laptop's to do
    _set(Holder, laptop.pk, state="unreachable")  # as this device's audit found it
    assert repair.repairer()
    assert repair.repair_round()["repaired"] == 1
