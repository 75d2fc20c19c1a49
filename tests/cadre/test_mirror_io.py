"""The p2p node's view of a mirror (``threads_io.use(mirror_io)``): its threads are those it
keeps, its peers the rosters, a roster device gets everything and anyone else nothing; and a full
node pushing rosters to its mirrors (``mirror_client``) certifies them in every thread."""

from __future__ import annotations

from dataclasses import replace

import nacl.signing
import pytest

from apps.cadre import control, mirror_client, mirror_serve, mirror_store
from apps.cadre.models import MirrorParty, MirrorThread, PartyDevice
from apps.core.thread.op import op_decode
from apps.core.threads import services
from apps.p2p import client, mirror_io, threads_io
from apps.p2p.app_protocols import AppRequestError
from tests.cadre.test_mirror_support import busy_thread, forged, log_of, mirror_rows, party_secret


@pytest.fixture
def swapped(node):
    """This process's threads_io serves the mirror's store."""
    mirror_store.forget()
    mirror_io.install()
    yield
    threads_io.use(None)
    mirror_store.forget()


@pytest.fixture
def kept(swapped):
    thread, _other = busy_thread()
    alice, bob = nacl.signing.SigningKey.generate(), nacl.signing.SigningKey.generate()
    control_thread, _ = busy_thread("Control", renames=0)
    devices = [bytes(alice.verify_key), bytes(bob.verify_key)]
    mirror_rows(party_secret(), [control_thread, thread], roster=devices)
    MirrorThread.objects.filter(pk=control_thread.id).update(
        roster=[{"device": devices[0].hex(), "addrs": []}]
    )
    mirror_store.ingest(thread.thread, log_of(thread))
    return thread, devices[0], devices[1]


def test_the_seam_swaps_and_restores(swapped) -> None:
    assert threads_io.in_use() == "apps.p2p.mirror_io"
    assert threads_io.flight is mirror_io.flight
    threads_io.use(None)
    assert threads_io.in_use() == "threads"
    assert threads_io.flight.__module__ == "apps.p2p.threads_io"
    mirror_io.install()
    assert threads_io.access is mirror_io.access


def test_the_threads_and_peers_are_the_mirrors(kept, node) -> None:
    thread, alice, bob = kept
    me = bytes(node.device.verify_key)
    assert thread.thread in threads_io.thread_ids()
    info = threads_io.thread_info(thread.thread, alice)
    assert info.member
    # Alice asks: her peers are the others of the roster (this node is not on it).
    assert [peer.device for peer in info.peers] == [bob]
    assert threads_io.thread_info(thread.thread, me).peers[0].device in (alice, bob)
    assert info.peers[0].addrs == ("/ip4/127.0.0.1/tcp/1",)
    assert info.vv == mirror_store.version_vector(thread.thread)
    assert threads_io.thread_info(bytes(32), me) is None
    assert not threads_io.addresses_publish(thread.thread, ["/ip4/1.2.3.4/tcp/1"])
    assert threads_io.keys_sealed_to(thread.thread, bytes(32)) == []
    assert threads_io.member_of(thread.thread, alice) is None


def test_a_roster_device_gets_everything_and_a_stranger_nothing(kept) -> None:
    thread, alice, _bob = kept
    stranger = bytes(nacl.signing.SigningKey.generate().verify_key)
    assert threads_io.access(thread.thread, alice) == ("full", None)
    assert threads_io.access(thread.thread, stranger) == ("none", None)
    assert threads_io.access(bytes(32), alice) == ("none", None)
    assert threads_io.accesses(thread.thread, [alice, stranger]) == [
        ("full", None),
        ("none", None),
    ]
    grant, _removal, flight = threads_io.opening(
        thread.thread, alice, {}, limit_bytes=1 << 20, limit_ops=256
    )
    assert grant == "full"
    assert flight.page == log_of(thread)
    assert flight.mine == mirror_store.version_vector(thread.thread)
    assert set(flight.heads) == set(flight.mine)
    assert (flight.forks, flight.news) == ({}, [])
    assert threads_io.opening(thread.thread, stranger, {}, limit_bytes=1, limit_ops=1)[2] is None
    page, cursor = threads_io.ops_page(
        thread.thread, {}, "none", None, limit_bytes=1 << 20, limit_ops=10
    )
    assert (page, cursor) == ([], {})
    # What this session sent already is not sent again.
    sent = threads_io.flight(
        thread.thread, {}, "full", None, limit_bytes=1 << 20, limit_ops=256, sent=flight.mine
    )
    assert sent.page == []


def test_a_sync_ingest_trusts_the_party_devices_only(kept) -> None:
    thread, alice, bob = kept
    stranger = nacl.signing.SigningKey.generate()
    op = forged(stranger, thread.thread, 1, None)
    # Not said who sent it: not trusted either.
    assert threads_io.ingest(thread.thread, [op.raw]).accepted == 0
    try:
        client.received.source = (bob, True)
        got = threads_io.ingest(thread.thread, [op.raw])
        assert (got.accepted, got.other, got.junk) == (0, 1, 0)
        # The node is told the ops did not come from their author: it passes them on to all.
        assert client.received.source == (bob, False)
        client.received.source = (alice, True)  # on the party's control thread roster
        got = threads_io.ingest(thread.thread, [op.raw, b"junk"])
        assert (got.accepted, got.malformed, got.junk) == (1, 1, 1)
    finally:
        client.received.source = None
    assert op_decode(op.raw).device in mirror_store.version_vector(thread.thread)


# -- the full node's side ---------------------------------------------------------------------


@pytest.fixture
def party_with_mirror(node, monkeypatch, settings):
    """This node's party with a control thread, two threads and a mirror device (its requests
    answered in this process by the mirror's own handler, with a key of its own)."""
    mirror_store.forget()
    mirror_client.forget()
    key = nacl.signing.SigningKey.generate()
    mirror = bytes(key.verify_key)
    monkeypatch.setattr(mirror_serve, "_own_key", lambda: key)
    monkeypatch.setattr(mirror_serve, "_own_device", lambda: mirror)
    chat = services.thread_create(name="Chat")
    control_thread = control.control_ensure()
    control.device_record(device=mirror, kind=PartyDevice.Kind.MIRROR, addrs=["/ip4/1.1.1.1/tcp/9"])
    from apps.cadre import keys as cadre_keys

    MirrorParty.objects.create(party=cadre_keys.party_id(control.master_secret()).hex())
    asked: list[tuple[str, list[str]]] = []
    failing: list[bool] = []

    def app_request(peer_id, addrs, protocol, payload, *, timeout):
        asked.append((peer_id, list(addrs)))
        if failing:
            raise AppRequestError("unreachable", "that node is away")
        full = settings.SEREUS
        settings.SEREUS = replace(full, mirror=True)  # the mirror answering
        try:
            return mirror_serve.serve_mirror(control.this_device(), payload)
        finally:
            settings.SEREUS = full

    monkeypatch.setattr(client, "app_request", app_request)
    yield {
        "mirror": mirror,
        "chat": chat,
        "control": control_thread,
        "asked": asked,
        "failing": failing,
    }
    mirror_client.forget()
    mirror_store.forget()


def test_rosters_go_to_the_mirror_which_is_certified_everywhere(party_with_mirror) -> None:
    s = party_with_mirror
    mirror_client.rosters_step()
    assert len(s["asked"]) == 1
    assert s["asked"][0][1] == ["/ip4/1.1.1.1/tcp/9"]
    for thread in (s["control"], s["chat"]):
        assert control.certified(thread, s["mirror"])
    # Certifying it changed the rosters: sent again, with the mirror on them.
    mirror_client.rosters_step()
    assert len(s["asked"]) == 2
    standby = control.standby_current()
    for thread in (s["control"], s["chat"]):
        row = MirrorThread.objects.get(pk=thread.id)
        assert row.control == (thread.pk == s["control"].pk)
        assert row.member == thread.member_id
        devices = {entry["device"] for entry in row.roster}
        # Every active device of the thread, the mirror too; never the standby key.
        assert devices == {control.this_device().hex(), s["mirror"].hex()}
        assert standby.device not in devices
    # A chunk of an attachment this node holds is named to the mirror.
    assert all(row["chunks"] == [] for row in mirror_client.assignment())
    from apps.core import blobs

    blobs.chunk_put(s["chat"].thread, blobs.chunk_hash(b"x"), b"x")
    chat = next(r for r in mirror_client.assignment() if r["thread"] == s["chat"].thread)
    assert chat["chunks"] == [blobs.chunk_hash(b"x")]
    mirror_client.rosters_step()  # the chunk list changed: sent again
    assert len(s["asked"]) == 3
    # Unchanged: not sent again before its time. A new thread: sent at once.
    mirror_client.rosters_step()
    assert len(s["asked"]) == 3
    later = services.thread_create(name="Later")
    mirror_client.rosters_step()
    assert len(s["asked"]) == 4
    assert control.certified(later, s["mirror"])


def test_a_mirror_away_is_asked_again_later(party_with_mirror, monkeypatch) -> None:
    s = party_with_mirror
    s["failing"].append(True)
    mirror_client.rosters_step()
    mirror_client.rosters_step()
    assert len(s["asked"]) == 1  # backing off
    s["failing"].clear()
    clock = [mirror_client.time.monotonic() + 60]
    monkeypatch.setattr(mirror_client.time, "monotonic", lambda: clock[0])
    mirror_client.rosters_step()
    assert len(s["asked"]) == 2
    assert control.certified(s["chat"], s["mirror"])


def test_a_mirror_node_pushes_no_rosters(party_with_mirror, settings) -> None:
    settings.SEREUS = replace(settings.SEREUS, mirror=True)
    mirror_client.rosters_step()
    assert party_with_mirror["asked"] == []


def test_assignments_are_split_under_the_mirrors_request_bound() -> None:
    from apps.core.thread import codec

    def entry(n: int, devices: int) -> dict:
        roster = [
            {"device": bytes([n % 256]) * 32, "addrs": ["/ip4/10.0.0.1/tcp/1"] * 16}
        ] * devices
        return {"thread": bytes(32), "member": bytes(32), "control": False, "roster": roster}

    threads = [entry(n, 200) for n in range(40)] + [entry(99, 20_000)]
    batches = mirror_client._batches(threads)
    assert len(batches) > 1
    assert sum(len(b) for b in batches) == len(threads)
    for batch in batches:
        assert len(codec.encode(batch)) <= mirror_client.BATCH_BYTES + 1024
    # The huge roster was cut to fit, never sent over the bound.
    assert 0 < len(batches[-1][-1]["roster"]) < 20_000
