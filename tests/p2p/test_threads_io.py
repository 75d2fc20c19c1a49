"""What the p2p layer reads from and writes to this node's threads: who may receive what, the
missing ops page by page in admission order, the ops that show a peer a fork it does not know,
ingesting a peer's ops, and who to sync with."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import nacl.signing
import pytest

from apps.core.models import Thread
from apps.core.thread import keys
from apps.core.thread import payloads as p
from apps.core.thread.op import Op
from apps.core.threads import services
from apps.core.threads.database import ThreadDatabase
from apps.p2p import threads_io
from apps.p2p.threads_io import Ingested, Peer
from tests.core.thread.conftest import forge
from tests.core.threads.conftest import (
    OtherNode,
    admit,
    exchange,
    log_since,
    log_size,
    new_thread,
    other_node,
)
from tests.integration.hostile_ops import junk_ops
from tests.replicated_app.models import Note

pytestmark = pytest.mark.django_db(transaction=True)

NOTE = "replicated_app_note"
UNLIMITED = 10**9


def device_of(database: ThreadDatabase) -> bytes:
    return bytes(database.node.device.verify_key)


def member_of(node: OtherNode) -> bytes:
    return bytes(keys.member_key(node.keys.master_secret, node.database.thread).verify_key)


def log(database: ThreadDatabase) -> list[Op]:
    """The database's log, in admission order."""
    return [op for _n, op, place in database.replica().store.log_after(0) if place == "log"]


def write_note(database: ThreadDatabase, title: str) -> Op:
    """Write a note on ``database``'s node; its op."""
    before = log_size(database)
    Note.objects.using(database.alias).create(title=title)
    ((op, _changes),) = log_since(database, before)
    return op


def all_pages(thread: bytes, after: dict, grant, removal, *, limit_ops: int, limit_bytes: int):
    """Every page a sync flight would send from ``after``, the final empty one included."""
    pages = []
    cursor = after
    for _ in range(500):
        page, cursor = threads_io.ops_page(
            thread, cursor, grant, removal, limit_ops=limit_ops, limit_bytes=limit_bytes
        )
        pages.append((page, cursor))
        if not page:
            return pages
    raise AssertionError("ops_page never returned an empty page")


def sent(pages) -> list[bytes]:
    return [raw for page, _cursor in pages for raw in page]


@pytest.fixture
def nodes_dir(tmp_path_factory) -> Path:
    """Where other nodes keep their files: one folder for the session, so the thread-schema
    template is built once, as on a real node."""
    folder = tmp_path_factory.getbasetemp() / "p2p-other-nodes"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture
def another(tdb: ThreadDatabase, nodes_dir: Path):
    """Make another node of this node's thread (not yet a member), named for this test."""

    def make(name: str) -> OtherNode:
        return other_node(nodes_dir, tdb.thread, f"{name}_{uuid.uuid4().hex[:8]}")

    return make


@pytest.fixture
def bob(tdb: ThreadDatabase, another) -> OtherNode:
    """A writer on a node of its own, admitted by this node and holding its whole log."""
    joiner = another("bob")
    admit(tdb, joiner, "writer")
    return joiner


# -- access ----------------------------------------------------------------------------------------


def test_an_active_members_devices_get_everything(thread, tdb, bob):
    assert threads_io.access(thread.thread, device_of(tdb)) == ("full", None)
    assert threads_io.access(thread.thread, device_of(bob.database)) == ("full", None)


def test_a_stranger_and_an_unknown_thread_get_the_same_nothing(thread, tdb):
    stranger = os.urandom(32)
    unknown_thread = os.urandom(32)
    assert threads_io.access(thread.thread, stranger) == ("none", None)
    assert threads_io.access(unknown_thread, stranger) == ("none", None)
    assert threads_io.access(unknown_thread, device_of(tdb)) == ("none", None)


def test_a_removed_members_device_gets_what_led_to_its_removal(thread, tdb, bob):
    before = log_size(tdb)
    services.member_remove(thread=thread, member_id=member_of(bob).hex())
    removal, _rotation = (op for op, _changes in log_since(tdb, before))

    grant, until = threads_io.access(thread.thread, device_of(bob.database))
    assert grant == "until"
    assert until is not None
    assert until.hash == removal.hash
    assert threads_io.access(thread.thread, device_of(tdb)) == ("full", None)


def test_a_push_reads_every_devices_access_at_once_as_one_by_one(thread, tdb, bob):
    stranger = os.urandom(32)
    devices = [device_of(tdb), device_of(bob.database), stranger]
    assert threads_io.accesses(thread.thread, devices) == [
        ("full", None),
        ("full", None),
        ("none", None),
    ]
    before = log_size(tdb)
    services.member_remove(thread=thread, member_id=member_of(bob).hex())
    removal, _rotation = (op for op, _changes in log_since(tdb, before))
    together = threads_io.accesses(thread.thread, devices)
    assert together == [threads_io.access(thread.thread, device) for device in devices]
    assert together[1][0] == "until"
    assert together[1][1].hash == removal.hash
    assert threads_io.accesses(os.urandom(32), devices) == [("none", None)] * 3


def test_a_revoked_device_of_a_member_still_in_the_thread_gets_nothing(thread, tdb):
    second_key = nacl.signing.SigningKey.generate()
    second = bytes(second_key.verify_key)
    proof = keys.device_proof_sign(second_key, thread.thread, bytes.fromhex(thread.member_id))
    services.device_certify(thread=thread, device_id=second.hex(), device_proof=proof.hex())
    assert threads_io.access(thread.thread, second) == ("full", None)
    services.device_revoke(thread=thread, device_id=second.hex())
    assert threads_io.access(thread.thread, second) == ("none", None)


def test_a_thread_this_node_is_no_longer_in_is_served_to_nobody(thread, tdb, bob):
    raws = [write_note(bob.database, "too late").raw]
    assert thread.thread in threads_io.thread_ids()
    for state in (Thread.State.LEFT, Thread.State.REMOVED):
        # The index row as thread_leave or a removal leaves it (the owner itself cannot leave).
        Thread.objects.filter(pk=thread.pk).update(state=state)
        assert threads_io.access(thread.thread, device_of(bob.database)) == ("none", None)
        assert threads_io.thread_info(thread.thread, device_of(tdb)) is None
        assert threads_io.ingest(thread.thread, raws) == Ingested(0, 0, 0, 0, other=1)
        assert thread.thread not in threads_io.thread_ids()
    assert raws[0] not in {op.raw for op in log(tdb)}, "the note was not ingested"


# -- ops_page --------------------------------------------------------------------------------------


@pytest.fixture
def busy(tdb, bob) -> tuple[dict[bytes, int], list[bytes]]:
    """Bob's vector at his admission, then interleaved notes of both nodes on this node: the
    vector and what it lacks, in this node's admission order."""
    at_join = bob.database.replica().version_vector()
    for round_ in range(3):
        write_note(tdb, f"mine {round_}")
        write_note(bob.database, f"bob's {round_}")
        exchange(bob.database, tdb)
        write_note(tdb, f"mine again {round_}")
    missing = [op.raw for op in log(tdb) if op.seq > at_join.get(op.device, 0)]
    assert len(missing) == 9
    return at_join, missing


def test_ops_page_returns_what_the_peer_lacks_in_admission_order(thread, tdb, busy):
    after, missing = busy
    page, cursor = threads_io.ops_page(
        thread.thread, after, "full", None, limit_ops=UNLIMITED, limit_bytes=UNLIMITED
    )
    assert page == missing
    assert cursor == threads_io.version_vector(thread.thread)

    everything, _ = threads_io.ops_page(
        thread.thread, {}, "full", None, limit_ops=UNLIMITED, limit_bytes=UNLIMITED
    )
    assert everything == [op.raw for op in log(tdb)], "a new peer gets the whole log"


PAGE_LIMITS = [
    (1, UNLIMITED),
    (2, UNLIMITED),
    (4, UNLIMITED),
    (UNLIMITED, 1),
    (UNLIMITED, 2500),
    (3, 1500),
]


def test_ops_page_pages_through_everything_missing(thread, tdb, busy):
    after, missing = busy
    by_raw = {op.raw: op for op in log(tdb)}
    for limit_ops, limit_bytes in PAGE_LIMITS:
        limits = f"limit_ops={limit_ops}, limit_bytes={limit_bytes}"
        pages = all_pages(
            thread.thread, after, "full", None, limit_ops=limit_ops, limit_bytes=limit_bytes
        )

        assert sent(pages) == missing, f"{limits}: consecutive, no gap, no duplicate, in order"
        assert pages[-1] == ([], threads_io.version_vector(thread.thread)), limits
        cursor = dict(after)
        for page, next_cursor in pages[:-1]:
            assert 1 <= len(page) <= limit_ops, limits
            assert len(page) == 1 or sum(map(len, page)) <= limit_bytes, limits
            for raw in page:
                cursor[by_raw[raw].device] = by_raw[raw].seq
            assert next_cursor == cursor, f"{limits}: the cursor is the vector after the page"
        if limit_ops == 1 or limit_bytes == 1:
            assert len(pages) == len(missing) + 1, f"{limits}: one op per page"


def test_a_peer_up_to_date_or_ahead_or_without_grant_gets_nothing(thread, tdb, busy):
    mine = threads_io.version_vector(thread.thread)
    assert threads_io.ops_page(
        thread.thread, mine, "full", None, limit_ops=10, limit_bytes=UNLIMITED
    ) == ([], mine)
    ahead = {device: seq + 5 for device, seq in mine.items()} | {os.urandom(32): 3}
    assert threads_io.ops_page(
        thread.thread, ahead, "full", None, limit_ops=10, limit_bytes=UNLIMITED
    ) == ([], ahead)
    assert threads_io.ops_page(
        thread.thread, {}, "none", None, limit_ops=10, limit_bytes=UNLIMITED
    ) == ([], {}), "and without a grant, nobody gets anything"


def test_a_removed_member_gets_only_the_past_of_its_removal(thread, tdb, bob):
    write_note(bob.database, "bob's")
    exchange(bob.database, tdb)
    bob_vv = bob.database.replica().version_vector()
    before_removal = write_note(tdb, "before the removal")
    before = log_size(tdb)
    services.member_remove(thread=thread, member_id=member_of(bob).hex())
    removal, rotation = (op for op, _changes in log_since(tdb, before))
    later = [write_note(tdb, f"after the removal {i}") for i in range(3)]

    grant, until = threads_io.access(thread.thread, device_of(bob.database))
    for limit_ops in (1, UNLIMITED):
        pages = all_pages(
            thread.thread, bob_vv, grant, until, limit_ops=limit_ops, limit_bytes=UNLIMITED
        )
        assert sent(pages) == [before_removal.raw, removal.raw], limit_ops
        assert not {rotation.raw, *(op.raw for op in later)} & set(sent(pages))

    # Enough for Bob's node to learn it was removed.
    results = bob.database.ingest(sent(pages))
    assert [r.status for r in results] == ["accepted", "accepted"]
    assert bob.database.replica().control.state.role_of(member_of(bob)) is None


def test_a_removal_from_elsewhere_excludes_ops_admitted_before_it_but_concurrent(
    thread, tdb, bob, another
):
    """An admin removes Bob on its own node while this node writes: this node admits its note
    before the removal, but the note is not in the removal's past, so Bob does not get it."""
    bob_vv = bob.database.replica().version_vector()
    before = log_size(tdb)
    carol = another("carol")
    admit(tdb, carol, "admin")
    carols_admission = [op for op, _changes in log_since(tdb, before)]
    removal, carols_rotation = carol.database.write(
        lambda writer: writer.remove_member(member_of(bob))
    )
    concurrent = write_note(tdb, "concurrent with the removal")
    exchange(carol.database, tdb)
    order = [op.hash for op in log(tdb)]
    assert order.index(concurrent.hash) < order.index(removal.hash)

    grant, until = threads_io.access(thread.thread, device_of(bob.database))
    assert grant == "until"
    assert until.hash == removal.hash
    for limit_ops in (1, 2, UNLIMITED):
        pages = all_pages(
            thread.thread, bob_vv, grant, until, limit_ops=limit_ops, limit_bytes=UNLIMITED
        )
        assert sent(pages) == [op.raw for op in carols_admission] + [removal.raw], limit_ops
        assert concurrent.raw not in sent(pages)
        assert carols_rotation.raw not in sent(pages)


def test_opening_a_session_is_access_and_the_first_flight_in_one_call(thread, tdb, bob, busy):
    after, missing = busy
    limits = {"limit_ops": 4, "limit_bytes": UNLIMITED}
    grant, removal, first = threads_io.opening(
        thread.thread, device_of(bob.database), after, **limits
    )
    assert (grant, removal) == ("full", None)
    assert (first.page, first.cursor) == threads_io.ops_page(
        thread.thread, after, "full", None, **limits
    )
    assert first.page == missing[:4]
    assert first.mine == threads_io.version_vector(thread.thread)

    _grant, _removal, unknown_vv = threads_io.opening(
        thread.thread, device_of(bob.database), None, **limits
    )
    assert (unknown_vv.page, unknown_vv.mine) == ([], first.mine), "no vector: only ours"
    assert threads_io.opening(thread.thread, os.urandom(32), after, **limits) == (
        "none",
        None,
        None,
    ), "a stranger gets no flight"


# -- ingest ----------------------------------------------------------------------------------------


def test_ingest_counts_accepted_duplicate_and_malformed_ops(thread, tdb, bob):
    first, second = write_note(bob.database, "one"), write_note(bob.database, "two")
    outcome = threads_io.ingest(thread.thread, [first.raw, second.raw, first.raw, b"\xa0"])
    assert outcome == Ingested(accepted=2, refused=0, pending=0, malformed=1, other=1)
    titles = set(Note.objects.using(tdb.alias).values_list("title", flat=True))
    assert {"one", "two"} <= titles

    again = threads_io.ingest(thread.thread, [first.raw, second.raw])
    assert again == Ingested(accepted=0, refused=0, pending=0, malformed=0, other=2)


def test_ingest_counts_pending_and_refused_ops(thread, tdb, bob, another):
    write_note(bob.database, "one")
    second = write_note(bob.database, "two")
    reader = another("reader")
    admit(tdb, reader, "reader")
    writer = reader.database.writer()
    change = p.RowChange(
        NOTE,
        uuid.uuid4().hex,
        p.UPSERT,
        {"title": "reader's", "body": "", "pinned": 0, "stars": 0, "created": "2026-01-01"},
    )
    hostile = forge(writer, kind="data", payload=p.data_doc([change]))

    outcome = threads_io.ingest(thread.thread, [second.raw, hostile.raw])
    assert outcome == Ingested(accepted=0, refused=1, pending=1, malformed=0, other=0)


def test_ingest_refuses_everything_for_a_thread_this_node_does_not_have(thread, tdb, bob):
    raws = [write_note(bob.database, f"note {i}").raw for i in range(3)]
    before = log_size(tdb)
    assert threads_io.ingest(os.urandom(32), raws) == Ingested(0, 0, 0, 0, other=3)
    assert log_size(tdb) == before


def test_ops_of_another_thread_are_not_ingested_into_this_one(thread, tdb, nodes_dir):
    elsewhere = new_thread(nodes_dir, f"elsewhere_{uuid.uuid4().hex[:8]}")
    raws = [op.raw for op in log(elsewhere.database)]
    before = log_size(tdb)
    assert threads_io.ingest(thread.thread, raws) == Ingested(0, 0, 0, 0, 0, foreign=len(raws))
    assert log_size(tdb) == before


def test_ops_of_devices_nobody_certified_are_counted_unknown_and_not_kept(thread, tdb):
    deps = threads_io.version_vector(thread.thread)
    junk = junk_ops(thread.thread, deps, 5)
    before = log_size(tdb)
    outcome = threads_io.ingest(thread.thread, [op.raw for op in junk])
    assert (outcome.unknown, outcome.junk, outcome.accepted + outcome.refused) == (5, 5, 0)
    assert log_size(tdb) == before
    assert threads_io.version_vector(thread.thread) == deps


def test_junk_is_what_no_honest_peer_sends():
    counts = Ingested(1, 2, 3, malformed=4, other=5, foreign=6, unknown=7, held=8)
    assert counts.junk == 4 + 6 + 7, "malformed, foreign and unknown; not held (a fast clock)"


# -- thread_info and version_vector ----------------------------------------------------------------

MINE = ("/ip4/192.0.2.1/tcp/4001", "/dns4/node.example/tcp/443/wss")
BOBS = ("/ip4/198.51.100.7/tcp/4001",)


def test_thread_info_lists_the_other_member_devices_with_their_addresses(thread, tdb, bob):
    assert services.addresses_set(thread=thread, addrs=MINE) is True
    assert services.addresses_set(thread=thread, addrs=MINE) is False, "no change, no op"
    bob.database.write(lambda writer: writer.control(p.SetAddresses(addrs=BOBS)))
    exchange(bob.database, tdb)
    me, bob_device = device_of(tdb), device_of(bob.database)

    info = threads_io.thread_info(thread.thread, me)
    assert info == threads_io.ThreadInfo(
        thread=thread.thread,
        member=True,
        peers=(Peer(bob_device, BOBS),),
        vv=threads_io.version_vector(thread.thread),
        my_addrs=MINE,
    )
    # As Bob's device would see it from here.
    as_bob = threads_io.thread_info(thread.thread, bob_device)
    assert (as_bob.member, as_bob.peers, as_bob.my_addrs) == (True, (Peer(me, MINE),), BOBS)

    outsider = threads_io.thread_info(thread.thread, os.urandom(32))
    assert outsider.member is False
    assert outsider.peers == tuple(
        sorted([Peer(me, MINE), Peer(bob_device, BOBS)], key=lambda peer: peer.device)
    )
    assert threads_io.thread_info(os.urandom(32), me) is None, "a thread this node lacks"


def test_thread_info_gives_a_removed_members_device_its_removal(thread, tdb, bob):
    """Still listed (so its removal can be pushed to it), with the op it may receive last."""
    bob.database.write(lambda writer: writer.control(p.SetAddresses(addrs=BOBS)))
    exchange(bob.database, tdb)
    before = log_size(tdb)
    services.member_remove(thread=thread, member_id=member_of(bob).hex())
    removal, _rotation = (op for op, _changes in log_since(tdb, before))

    info = threads_io.thread_info(thread.thread, device_of(tdb))
    assert info.member is True
    (peer,) = info.peers
    assert (peer.device, peer.addrs) == (device_of(bob.database), BOBS)
    assert peer.until is not None
    assert peer.until.hash == removal.hash


def test_thread_info_leaves_out_a_revoked_device_of_a_current_member(thread, tdb):
    second_key = nacl.signing.SigningKey.generate()
    second = bytes(second_key.verify_key)
    proof = keys.device_proof_sign(second_key, thread.thread, bytes.fromhex(thread.member_id))
    services.device_certify(thread=thread, device_id=second.hex(), device_proof=proof.hex())
    assert threads_io.thread_info(thread.thread, device_of(tdb)).peers == (Peer(second, ()),)
    services.device_revoke(thread=thread, device_id=second.hex())
    assert threads_io.thread_info(thread.thread, device_of(tdb)).peers == ()


def test_addresses_publish_writes_at_most_max_addrs_once(thread, tdb):
    many = [f"/ip4/192.0.2.{i}/tcp/4001" for i in range(threads_io.MAX_ADDRS + 4)]
    assert threads_io.addresses_publish(thread.thread, many) is True
    info = threads_io.thread_info(thread.thread, device_of(tdb))
    assert info.my_addrs == tuple(many[: threads_io.MAX_ADDRS])
    before = log_size(tdb)
    assert threads_io.addresses_publish(thread.thread, many) is False, "unchanged: no op"
    assert log_size(tdb) == before
    assert threads_io.addresses_publish(os.urandom(32), many) is False


def test_version_vector_is_the_last_seq_of_each_device(thread, tdb, bob):
    write_note(bob.database, "bob's")
    exchange(bob.database, tdb)
    ops = log(tdb)
    expected = {op.device: op.seq for op in ops}  # the log is in order: the last one wins
    assert threads_io.version_vector(thread.thread) == expected
    assert set(expected) == {device_of(tdb), device_of(bob.database)}

    mine = write_note(tdb, "one more")
    assert threads_io.version_vector(thread.thread) == expected | {device_of(tdb): mine.seq}
    assert mine.seq == expected[device_of(tdb)] + 1


# -- forks: head hashes and fork evidence in a flight ---------------------------------------------


def forged_note(database: ThreadDatabase, title: str, **changes) -> Op:
    """A note signed by ``database``'s device and not written there (``forge``): with
    ``seq`` set to a place it has, a second op at that place."""
    with database.lock:
        writer = database.writer()
        cols = {"title": title, "body": "", "pinned": 0, "stars": 0, "created": "2026-01-01"}
        change = p.RowChange(NOTE, uuid.uuid4().hex, p.UPSERT, cols)
        return forge(writer, kind="data", payload=p.data_doc([change]), **changes)


@pytest.fixture
def equivocation(tdb, bob) -> tuple[Op, Op]:
    """Bob's node writes a note; this node gets it. Bob's device also signed another op at the
    same place, which this node does not have (yet)."""
    mine = write_note(bob.database, "the one this node has")
    theirs = forged_note(bob.database, "the other one", seq=mine.seq)
    assert theirs.id == mine.id
    assert theirs.hash != mine.hash
    assert threads_io.ingest(tdb.thread, [mine.raw]).accepted == 1
    return mine, theirs


def flight_for(thread, vv, heads=None, forks=None, **kwargs) -> threads_io.Flight:
    return threads_io.flight(
        thread,
        vv,
        "full",
        None,
        limit_ops=UNLIMITED,
        limit_bytes=UNLIMITED,
        their_heads=heads,
        their_forks=forks,
        **kwargs,
    )


def test_a_flight_states_the_hash_of_each_head_and_the_forks(thread, tdb, bob):
    write_note(bob.database, "bob's")
    exchange(bob.database, tdb)
    mine = write_note(tdb, "mine")
    flight = flight_for(thread.thread, {}, {}, {})
    heads = {op.device: op for op in log(tdb)}  # the log is in order: the last one wins
    assert flight.mine == {device: op.seq for device, op in heads.items()}
    assert flight.heads == {device: op.hash for device, op in heads.items()}
    assert flight.heads[device_of(tdb)] == mine.hash
    assert (flight.forks, flight.news) == ({}, [])


def test_an_ordinary_flight_carries_no_fork_news(thread, tdb, bob, busy):
    after, missing = busy
    same = flight_for(thread.thread, {}, {}, {})
    flight = flight_for(thread.thread, after, same.heads, {})
    assert flight.page == missing
    assert flight.news == []
    assert flight_for(thread.thread, after).news == [], "peer's forks unknown: no news"


def test_a_peer_with_another_op_at_a_head_gets_this_nodes_op_there(thread, tdb, bob, equivocation):
    mine, theirs = equivocation
    bob_device = device_of(bob.database)
    vv = threads_io.version_vector(thread.thread)
    heads = {bob_device: theirs.hash}
    assert flight_for(thread.thread, vv, heads, {}).news == [mine.raw]
    # Not when the peer holds the same op, knows the fork already, or is elsewhere in the chain.
    assert flight_for(thread.thread, vv, {bob_device: mine.hash}, {}).news == []
    assert flight_for(thread.thread, vv, heads, {bob_device: mine.seq}).news == []
    assert flight_for(thread.thread, vv, heads, {bob_device: mine.seq - 1}).news == []
    behind = vv | {bob_device: mine.seq - 1}
    assert flight_for(thread.thread, behind, heads, {}).news == []


def test_a_peer_that_does_not_list_a_fork_gets_its_evidence(thread, tdb, bob, equivocation):
    mine, theirs = equivocation
    bob_device = device_of(bob.database)
    outcome = threads_io.ingest(thread.thread, [theirs.raw])
    assert (outcome.accepted, outcome.other) == (0, 1), "a fork: kept as evidence"
    with tdb.lock:
        assert tdb.replica().forks == {bob_device: mine.seq}

    vv = threads_io.version_vector(thread.thread)
    flight = flight_for(thread.thread, vv, {}, {})
    assert flight.forks == {bob_device: mine.seq}
    assert sorted(flight.news) == sorted([mine.raw, theirs.raw])
    later = flight_for(thread.thread, vv, {}, {bob_device: mine.seq + 3}).news
    assert sorted(later) == sorted([mine.raw, theirs.raw]), "it knows only a later fork"
    assert flight_for(thread.thread, vv, {}, {bob_device: mine.seq}).news == []
    assert flight_for(thread.thread, vv, {}, {bob_device: 1}).news == []
    # A departed device gets evidence only from its departure's past (here: none).
    departed = threads_io.flight(
        thread.thread, vv, "until", log(tdb)[0], limit_ops=9, limit_bytes=UNLIMITED, their_forks={}
    )
    assert departed.news == []


def test_the_evidence_makes_another_replica_record_the_fork(
    thread, tdb, bob, another, equivocation
):
    """Replicas holding one of the two ops (the author's, another member's) record the fork from
    the evidence sent."""
    mine, theirs = equivocation
    threads_io.ingest(thread.thread, [theirs.raw])
    news = flight_for(thread.thread, threads_io.version_vector(thread.thread), {}, {}).news
    carol = another("carol")
    admit(tdb, carol, "writer")  # her node gets this node's log: it holds ``mine``
    for holder in (bob.database, carol.database):
        holder.ingest(news)
        with holder.lock:
            assert holder.replica().forks == {device_of(bob.database): mine.seq}


def test_what_a_session_sent_is_not_sent_again(thread, tdb, busy):
    after, missing = busy
    by_raw = {op.raw: op for op in log(tdb)}
    first = by_raw[missing[3]]
    sent = {first.device: first.seq}
    again = flight_for(thread.thread, after, sent=sent)
    skipped = {raw for raw in missing if by_raw[raw].device == first.device}
    skipped = {raw for raw in skipped if by_raw[raw].seq <= first.seq}
    assert again.page == [raw for raw in missing if raw not in skipped]
    assert again.start == after | sent
