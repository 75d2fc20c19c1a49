"""Attachments between real nodes: separate ``runnode`` processes on 127.0.0.1. A member uploads
files with a message (multipart/form-data through the API); the other member's node fetches the
encrypted chunks over ``/sereus/blob/1.0.0`` when its client lists the message, and serves the
same bytes. A node never invited gets no chunk, whether it asks through its API or by speaking
the blob protocol by hand; an upload over the node's size limit is refused."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from PIL import Image

from apps.core import identity
from apps.core.blobs import chunk_hash
from tests.support.api import ApiError, wait_for
from tests.support.attachments import (
    MiB,
    blob_ask,
    chunk_files,
    download,
    png,
    random_bytes,
    sha256,
    upload,
)
from tests.support.messaging import (
    Nodes,
    all_running,
    by_id,
    conversation_create,
    member_id,
    messages,
    send,
    three_nodes,
)
from tests.support.p2p import Peer
from tests.support.rogue import RoguePeer

pytestmark = pytest.mark.slow

BIG = 3 * MiB + MiB // 2  # four chunks of 1 MiB: three full ones and a half


@pytest.fixture(scope="module")
def nodes(tmp_path_factory) -> Iterator[Nodes]:
    """Three nodes for the whole module (each test makes conversations of its own)."""
    with three_nodes(tmp_path_factory.mktemp("attachments")) as started:
        yield started


@pytest.fixture
def running(nodes: Nodes) -> Nodes:
    return all_running(nodes)


def conversation(alice: Peer, bob: Peer, name: str) -> str:
    thread = conversation_create(alice, name)
    assert bob.redeem(alice.invite(thread, "writer"))["id"] == thread
    return thread


def listed(peer: Peer, thread: str, message: str) -> dict | None:
    """The message as the node's API lists it (listing is what asks for missing chunks)."""
    return by_id(peer, thread).get(message)


def complete_on(peer: Peer, thread: str, message: str, *, timeout: float = 30.0) -> dict:
    """Wait, listing the messages through the API only, until every attachment of ``message``
    is complete on ``peer``; returns the message."""

    def done() -> dict | None:
        found = listed(peer, thread, message)
        if found and found["attachments"] and all(a["complete"] for a in found["attachments"]):
            return found
        return None

    return wait_for(
        done, timeout=timeout, interval=0.2, what=f"attachments to reach {peer.data_dir.name}"
    )


def chunks_received(peer: Peer) -> int:
    return peer.network()["stats"]["chunks_received"]


def test_attachments_reach_the_other_member_and_open_as_sent(running):
    alice, bob = running.alice, running.bob
    thread = conversation(alice, bob, "Holiday pictures")
    picture, blob = png(), random_bytes(BIG)
    before = chunks_received(alice)

    sent = upload(
        bob, thread, "the photo and the **data**", [("pixel.png", picture), ("data.bin", blob)]
    )
    assert (sent["text"], sent["mine"], sent["author"]) == (
        "the photo and the **data**",
        True,
        member_id(bob, thread),
    )
    shown = {a["name"]: a for a in sent["attachments"]}
    assert [a["name"] for a in sent["attachments"]] == ["pixel.png", "data.bin"]
    assert shown["pixel.png"] | {"id": None} == {
        "id": None,
        "name": "pixel.png",
        "mime": "image/png",
        "size": len(picture),
        "complete": True,
        "percent": 100,
        "damaged": None,
    }
    assert shown["data.bin"] | {"id": None} == {
        "id": None,
        "name": "data.bin",
        "mime": "application/octet-stream",
        "size": BIG,
        "complete": True,
        "percent": 100,
        "damaged": None,
    }
    # Bob's node keeps the chunks, encrypted: one for the picture, four for the data.
    on_bob = chunk_files(bob, thread)
    assert len(on_bob) == 5
    assert all(chunk_hash(data) == name for name, data in on_bob.items())
    assert not any(picture[:64] in data or blob[:64] in data for data in on_bob.values())

    # On Alice's node the message comes with the sync, then (listing it through the API is all
    # this test does) the chunks from Bob's node.
    seen = wait_for(lambda: listed(alice, thread, sent["id"]), what="the message to reach Alice")
    assert (seen["text"], seen["author"], seen["mine"]) == (sent["text"], sent["author"], False)
    assert [(a["id"], a["name"], a["mime"], a["size"]) for a in seen["attachments"]] == [
        (a["id"], a["name"], a["mime"], a["size"]) for a in sent["attachments"]
    ]
    got = complete_on(alice, thread, sent["id"])
    assert all((a["percent"], a["damaged"]) == (100, None) for a in got["attachments"])
    assert chunk_files(alice, thread) == on_bob
    assert chunks_received(alice) - before == 5

    image = download(alice, thread, shown["pixel.png"]["id"])
    assert image.status == 200
    assert sha256(image.body) == sha256(picture)
    assert image.headers["content-type"] == "image/png"
    assert image.headers["x-content-type-options"] == "nosniff"
    assert image.headers["content-disposition"] == 'inline; filename="pixel.png"'
    assert "sandbox" in image.headers["content-security-policy"]
    with Image.open(io.BytesIO(image.body)) as opened:
        assert (opened.format, opened.size) == ("PNG", (64, 48))

    data = download(alice, thread, shown["data.bin"]["id"])
    assert data.status == 200
    assert len(data.body) == BIG
    assert sha256(data.body) == sha256(blob)
    assert data.headers["content-type"] == "application/octet-stream"
    assert data.headers["x-content-type-options"] == "nosniff"
    assert data.headers["content-disposition"] == 'attachment; filename="data.bin"'
    assert data.headers["content-length"] == str(BIG)

    # Bob's node serves the same bytes; an attachment id that is not there is a 404.
    assert sha256(download(bob, thread, shown["data.bin"]["id"]).body) == sha256(blob)
    missing = download(alice, thread, "00000000-0000-0000-0000-000000000000")
    assert (missing.status, missing.json()["error"]) == (404, "not_found")


def test_a_node_never_invited_gets_no_chunk(running):
    alice, bob, carol = running.alice, running.bob, running.carol
    # Carol shares another conversation with Alice: her device is known to Alice's node.
    shared = conversation(alice, carol, "Alice and Carol")
    thread = conversation(alice, bob, "Not for Carol")
    secret = random_bytes(MiB + 1000)  # two chunks
    sent = upload(bob, thread, "just for Alice", [("secret.bin", secret)])
    attachment = sent["attachments"][0]["id"]
    complete_on(alice, thread, sent["id"])
    wanted = sorted(chunk_files(bob, thread))
    assert len(wanted) == 2
    assert sorted(chunk_files(alice, thread)) == wanted

    # (a) Through its API, Carol's node has no such conversation, so no such attachment.
    for path in (f"attachments/{attachment}/", "messages/"):
        with pytest.raises(ApiError) as failure:
            carol.api.get(f"/api/v1/threads/{thread}/{path}")
        assert failure.value.status == 404
    assert download(carol, thread, attachment).status == 404
    hello = send(alice, shared, "hello Carol")  # her own conversation does reach her
    wait_for(lambda: hello["id"] in by_id(carol, shared), what="Alice's message to reach Carol")
    assert chunk_files(carol, thread) == {}
    assert thread not in [t["id"] for t in carol.api.get("/api/v1/threads/")]

    # (b) Speaking /sereus/blob/1.0.0 by hand to Alice's node, with the chunk hashes known.
    # A stranger's device: refused, with the answer a thread that is not there gets.
    stranger = RoguePeer().start()
    try:
        stranger.call(stranger.connect, alice.peer_id, alice.network()["addresses"])
        asked = stranger.call(blob_ask, stranger, alice.peer_id, [(bytes.fromhex(thread), wanted)])
        unknown = stranger.call(blob_ask, stranger, alice.peer_id, [(bytes(32), wanted)])
    finally:
        stranger.stop()
    assert [(a.refused, a.chunks) for a in asked] == [("refused", [])]
    assert [(a.refused, a.chunks) for a in unknown] == [("refused", [])]

    # Carol's own device (her node stopped, its key used by hand), on one stream: asked under
    # the conversation she is in, the chunks are not there (a chunk is served only under the
    # thread it is filed in); asked under the thread she is not in, refused.
    carol.stop()
    rogue = RoguePeer(identity.device_key_load(carol.data_dir).signing_key).start()
    try:
        rogue.call(rogue.connect, alice.peer_id, alice.network()["addresses"])
        answers = rogue.call(
            blob_ask,
            rogue,
            alice.peer_id,
            [(bytes.fromhex(shared), wanted), (bytes.fromhex(thread), wanted)],
        )
    finally:
        rogue.stop()
    under_shared, under_thread = answers
    assert under_shared.refused is None
    assert [(c.hash, c.data) for c in under_shared.chunks] == [(c, None) for c in wanted]
    assert (under_thread.refused, under_thread.chunks) == ("refused", [])

    # The same request from Bob's device (his node stopped) is answered with the chunks: the
    # refusals above are the access check, not a request Alice's node could not read.
    bob.stop()
    member = RoguePeer(identity.device_key_load(bob.data_dir).signing_key).start()
    try:
        member.call(member.connect, alice.peer_id, alice.network()["addresses"])
        (served,) = member.call(blob_ask, member, alice.peer_id, [(bytes.fromhex(thread), wanted)])
    finally:
        member.stop()
    assert served.refused is None
    assert [c.hash for c in served.chunks] == wanted
    assert all(chunk_hash(c.data) == c.hash for c in served.chunks)


@pytest.fixture
def small(tmp_path):
    """A node of its own that takes attachments of at most 1 MiB."""
    peer = Peer(tmp_path / "small", env={"SEREUS_MAX_ATTACHMENT_MB": "1"})
    try:
        yield peer.start()
    finally:
        peer.kill()


def test_an_attachment_over_the_size_limit_is_refused(small):
    thread = conversation_create(small, "Small files only")
    with pytest.raises(ApiError) as failure:
        upload(small, thread, "too big", [("fine.txt", b"ok"), ("huge.bin", random_bytes(MiB + 1))])
    assert failure.value.status == 400
    assert failure.value.body["error"] == "invalid"
    assert failure.value.body["detail"] == "huge.bin: the file is larger than 1 MiB"
    assert messages(small, thread) == []  # nothing was posted, not even the text

    # Up to the limit is fine.
    exactly = random_bytes(MiB)
    sent = upload(small, thread, "just fits", [("fits.bin", exactly)])
    (attachment,) = sent["attachments"]
    assert (attachment["size"], attachment["complete"]) == (MiB, True)
    assert sha256(download(small, thread, attachment["id"]).body) == sha256(exactly)
    assert [m["id"] for m in messages(small, thread)] == [sent["id"]]
