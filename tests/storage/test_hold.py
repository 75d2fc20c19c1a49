"""Holding threads and holder rows: the owner's terms and the holder's grant, each writable by
its side alone (every replica enforces it); a holder holds only for terms that carry the
owner's party signature; the owner's holder rows follow the holding threads, and a refresh
that finds nothing new writes nothing."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest
from django.conf import settings

from apps.core.models import Thread
from apps.core.thread import payloads as p
from apps.core.thread.invite import invite_parse
from apps.core.thread.policy import OWNER
from apps.core.thread.replica import Replica
from apps.core.thread.writer import ThreadWriter, redemption_request
from apps.core.threads import services
from apps.core.threads.coltypes import schema_of
from apps.core.threads.database import NodeKeys
from apps.core.threads.registry import thread_database
from apps.storage import hold, keys, space
from apps.storage.models import HeldParty, Holder, HoldQuota, HoldTerms
from apps.storage.policy import HOLD_SHAPE, HOLDER, QUOTA, TERMS, hold_spec
from apps.storage.serve import serve
from tests.core.thread.conftest import Party, join, now_ms, rid, sync
from tests.storage.support import answer, holder_request
from tests.support.replica_groups import (
    ReplicaGroup,
    accepted_everywhere,
    forged,
    opened,
    refused_alike,
    write,
)

MB = 1 << 20


def op_count(thread: Thread) -> int:
    raw = thread_database(thread.thread).raw()
    return raw.execute("SELECT count(*) FROM sereus_ops WHERE place = 'log'").fetchone()[0]


def terms(writer: ThreadWriter, party: Party, *, asked: int, signed_over: bytes | None = None):
    proof = keys.terms_sign(party.master, signed_over or writer.thread)
    cols = {
        "party": keys.party_id(party.master).hex(),
        "proof": proof.hex(),
        "asked": asked,
        "label": party.name,
    }
    return p.RowChange(TERMS, rid(writer, "terms"), p.UPSERT, cols)


def grant(writer: ThreadWriter, quota: int) -> p.RowChange:
    cols = {"device": writer.device.hex(), "peer_id": "12D3KooWHolder", "quota": quota}
    return p.RowChange(QUOTA, rid(writer, "quota"), p.UPSERT, cols)


# -- the rules every replica enforces -------------------------------------------------------------


@dataclass
class Holding(ReplicaGroup):
    alice: ThreadWriter  # the owner
    bob: ThreadWriter  # the holder
    parties: tuple[Party, ...]

    @property
    def writers(self) -> tuple[ThreadWriter, ...]:
        return (self.alice, self.bob)


@pytest.fixture
def holding() -> Holding:
    alice, bob = Party("Alice"), Party("Bob")
    owner = opened(alice, name="Backups of Alice", app=HOLD_SHAPE, spec=hold_spec())
    group = Holding(owner, join(owner, bob, HOLDER), (alice, bob)).settled()
    return group


def test_only_the_owner_writes_terms_and_only_the_holder_its_grant(holding: Holding) -> None:
    alice, bob = holding.parties
    good = [
        write(holding, holding.alice, terms(holding.alice, alice, asked=100 * MB)),
        write(holding, holding.bob, grant(holding.bob, 50 * MB)),
    ]
    fake_terms = forged(holding, holding.bob, terms(holding.bob, bob, asked=1))
    assert TERMS in refused_alike(holding, fake_terms)
    fake_grant = forged(holding, holding.alice, grant(holding.alice, 10_000 * MB))
    assert QUOTA in refused_alike(holding, fake_grant)
    # The owner cannot change the holder's grant row either.
    changed = p.RowChange(QUOTA, rid(holding.bob, "quota"), p.UPSERT, {"quota": 10_000 * MB})
    assert QUOTA in refused_alike(holding, forged(holding, holding.alice, changed))
    accepted_everywhere(holding, *good)


# -- the holder's side ---------------------------------------------------------------------------


def join_here(owner: ThreadWriter, *, rows: list[p.RowChange]) -> Thread:
    """This node joins ``owner``'s holding thread at the holder role (thread_added runs)."""
    owner.write_data(rows, schema=schema_of({TERMS}))
    invite = owner.invite_create(role=HOLDER, expiry=now_ms() + 3_600_000, inviter="peer")
    node = NodeKeys.of_this_node()
    owner.admit(
        redemption_request(invite, master_secret=node.master_secret, device_key=node.device)
    )
    return services.thread_join(invite=invite, raws=[op.raw for op in owner.replica.admitted])


def grants_here(thread: Thread) -> list[HoldQuota]:
    return list(HoldQuota.objects.using(space.using(thread)).all())


@pytest.mark.django_db(transaction=True)
def test_joining_a_holding_thread_holds_for_the_owner_and_grants_what_it_asks(node) -> None:
    alice = Party("Alice")
    owner = opened(alice, name="Backups of Alice", app=HOLD_SHAPE, spec=hold_spec())
    thread = join_here(owner, rows=[terms(owner, alice, asked=300 * MB)])
    party = HeldParty.objects.get(pk=keys.party_id(alice.master).hex())
    assert (party.quota, party.label, party.hold_thread, party.active) == (
        300 * MB,
        "Alice",
        thread.id,
        True,
    )
    (row,) = grants_here(thread)
    assert (row.device, row.quota) == (hold.device_hex(), 300 * MB)
    # The owner's replica takes the grant: written by the holder, at its role.
    before = op_count(thread)
    for op in thread_database(thread.thread).replica().admitted:
        owner.replica.ingest(op.raw)
    mine = [op for op in owner.replica.admitted if op.device == bytes.fromhex(row.device)]
    assert mine
    assert all(owner.replica.decision(op.hash).status == "accepted" for op in mine)
    hold.hold_joined(thread)  # again: nothing more written
    hold.holders_refresh()
    assert op_count(thread) == before
    hold.quota_grant(thread=thread, quota_mb=120)
    assert grants_here(thread)[0].quota == 120 * MB
    assert HeldParty.objects.get(pk=party.pk).quota == 120 * MB
    assert [p["label"] for p in hold.holding_for_others()] == ["Alice"]
    # Alice's node is served now.
    peer = b"\x07" * 32
    usage = answer(serve(peer, holder_request(alice.master, "usage", requester=peer)))
    assert usage["quota"] == 120 * MB


@pytest.mark.django_db(transaction=True)
def test_a_grant_is_never_more_than_this_node_allows(node, settings) -> None:
    settings.SEREUS = dataclasses.replace(settings.SEREUS, storage_quota=100 * MB)
    alice = Party("Alice")
    owner = opened(alice, name="Backups of Alice", app=HOLD_SHAPE, spec=hold_spec())
    thread = join_here(owner, rows=[terms(owner, alice, asked=10**15)])
    assert grants_here(thread)[0].quota == 100 * MB
    assert HeldParty.objects.get(pk=keys.party_id(alice.master).hex()).quota == 100 * MB


@pytest.mark.django_db(transaction=True)
def test_terms_without_the_owners_signature_are_not_held(node) -> None:
    alice = Party("Alice")
    owner = opened(alice, name="Backups of Alice", app=HOLD_SHAPE, spec=hold_spec())
    bad = terms(owner, alice, asked=300 * MB, signed_over=b"\x01" * 32)  # another thread's
    thread = join_here(owner, rows=[bad])
    assert thread.role == HOLDER
    assert not HeldParty.objects.exists()
    assert grants_here(thread) == []
    hold.holders_refresh()  # tries again, and still holds nothing
    assert not HeldParty.objects.exists()
    with pytest.raises(space.StorageError, match="did not check out"):
        hold.quota_grant(thread=thread, quota_mb=10)


# -- the owner's side ----------------------------------------------------------------------------


def storage_rows() -> list[Holder]:
    return list(Holder.objects.using(space.using(space.storage_thread())).all())


@pytest.mark.django_db(transaction=True)
def test_an_invite_makes_signed_terms_and_a_holder_waiting_for_the_friend(node) -> None:
    made = hold.holder_invite(quota_mb=200, label="Bob")
    thread = Thread.objects.get(pk=made["hold_thread"])
    assert (thread.app, thread.role) == (HOLD_SHAPE, OWNER)
    (row,) = HoldTerms.objects.using(space.using(thread)).all()
    keys.terms_verify(bytes.fromhex(row.party), bytes.fromhex(row.proof), thread.thread)
    assert row.asked == 200 * MB
    assert invite_parse(made["link"]).thread == thread.thread
    (holder,) = storage_rows()
    assert (str(holder.pk), holder.state, holder.label) == (made["holder"], "invited", "Bob")
    for wrong in (0, -5, "200", 10**12):
        with pytest.raises(space.StorageError, match="whole number"):
            hold.holder_invite(quota_mb=wrong)


@pytest.mark.django_db(transaction=True)
def test_this_devices_own_row_is_written_once(node) -> None:
    storage = space.storage_ensure()
    hold.holders_refresh()
    (row,) = storage_rows()
    assert (row.kind, row.state, row.device) == ("device", "active", hold.device_hex())
    assert row.quota == settings.SEREUS.storage_quota
    assert row.peer_id
    before = op_count(storage)
    hold.holders_refresh()
    hold.holders_refresh()
    assert op_count(storage) == before
    assert [r.pk for r in hold.holders_usable()] == [row.pk]


@pytest.mark.django_db(transaction=True)
def test_a_friends_grant_makes_its_holder_active_and_its_leaving_marks_it_left(node) -> None:
    made = hold.holder_invite(quota_mb=200, label="Bob")
    thread = Thread.objects.get(pk=made["hold_thread"])
    bob = Party("Bob")
    invite = invite_parse(made["link"])
    request = redemption_request(invite, master_secret=bob.master, device_key=bob.device)
    services.invite_admit(thread=thread, request=request)
    replica = Replica.for_members(thread.thread)
    sync(thread_database(thread.thread).replica(), replica)
    friend = ThreadWriter.for_member(replica, master_secret=bob.master, device_key=bob.device)
    friend.write_data([grant(friend, 150 * MB)], schema=schema_of({QUOTA}))
    friend.control(p.SetAddresses(addrs=("/ip4/127.0.0.1/tcp/4101",)))
    services.thread_ingest(thread=thread, raws=[op.raw for op in friend.replica.admitted])
    hold.holders_refresh()
    peer = next(r for r in storage_rows() if r.kind == "peer")
    assert (peer.state, peer.device, peer.peer_id, peer.quota) == (
        "active",
        friend.device.hex(),
        "12D3KooWHolder",
        150 * MB,
    )
    assert peer.addrs == ["/ip4/127.0.0.1/tcp/4101"]
    assert peer.label == "Bob"
    assert [r.kind for r in hold.holders_usable()] == ["device", "peer"]
    storage = space.storage_thread()
    before = op_count(storage)
    hold.holders_refresh()
    assert op_count(storage) == before
    friend.control(p.Leave())
    services.thread_ingest(thread=thread, raws=[op.raw for op in friend.replica.admitted])
    hold.holders_refresh()
    peer = next(r for r in storage_rows() if r.kind == "peer")
    assert peer.state == "left"
    assert [r.kind for r in hold.holders_usable()] == ["device"]
