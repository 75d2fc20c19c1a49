"""The timeline's rules through real replicas, against a modified node (``forge``): a follower's
post, an edit of someone else's reply, a removed row, a muted follower's reply, and a banned
follower's post written after the ban are refused by every replica, in any order."""

from __future__ import annotations

import random

import pytest

from apps.core.thread import payloads as p
from apps.core.thread.op import Op
from apps.core.thread.policy import policy_template
from apps.core.thread.replica import Replica
from apps.core.thread.writer import ThreadWriter, WriteError
from apps.timeline.policy import POST, REACTION, REPLY
from tests.core.thread.conftest import Party, auditor, forge, join, rid, sync


@pytest.fixture
def people():
    alice, bob, carol, dave = (Party(n) for n in ("alice", "bob", "carol", "dave"))
    owner = ThreadWriter.create(
        master_secret=alice.master,
        device_key=alice.device,
        name="Alice's notes",
        app="timeline",
        policy=policy_template("timeline"),
    )
    bob_w = join(owner, bob, "follower")
    carol_w = join(owner, carol, "writer")  # a co-author
    dave_w = join(owner, dave, "reader")  # a muted follower
    writers = [owner, bob_w, carol_w, dave_w]
    share(writers)
    return writers, [alice, bob, carol, dave]


def share(writers) -> None:
    for a in writers:
        for b in writers:
            if a is not b:
                sync(a.replica, b.replica)


def replicas(writers, parties, runs: int = 3) -> list[Replica]:
    ops = list({op.hash: op for w in writers for op in w.replica.admitted}.values())
    made = []
    for seed in range(runs):
        random.Random(seed).shuffle(ops)
        replica = auditor(writers[0].thread, *parties)
        for op in ops:
            replica.ingest(op.raw)
        made.append(replica)
    return made


def post_cols(text: str = "hello") -> dict:
    return {"kind": "short", "text": text, "title": "", "slug": "", "cover": "",
            "repost_of": "", "quote_of": "", "quoted_text": "", "quoted_title": "",
            "quoted_author": "", "public": 0, "deleted": 0}  # fmt: skip


def forged(writer: ThreadWriter, *changes: p.RowChange) -> Op:
    op = forge(writer, kind="data", payload=p.data_doc(list(changes)))
    writer.replica.ingest(op.raw)
    return op


def refused_by_all(writers, parties, op: Op) -> None:
    for replica in replicas(writers, parties):
        assert replica.decision(op.hash).status == "refused"


def test_only_the_owner_and_co_authors_post(people):
    (alice, bob, carol, dave), parties = people
    alice.write_data([p.RowChange(POST, rid(alice, "a"), p.UPSERT, post_cols())])
    carol.write_data([p.RowChange(POST, rid(carol, "c"), p.UPSERT, post_cols("co-authored"))])
    with pytest.raises(WriteError):
        bob.write_data([p.RowChange(POST, rid(bob, "b"), p.UPSERT, post_cols())])
    fake = forged(bob, p.RowChange(POST, rid(bob, "b"), p.UPSERT, post_cols("not mine to post")))
    share([alice, bob, carol, dave])
    refused_by_all([alice, bob, carol, dave], parties, fake)


def test_followers_reply_and_react_but_edit_only_their_own_and_nothing_is_removed(people):
    (alice, bob, carol, dave), parties = people
    post = rid(alice, "a")
    alice.write_data([p.RowChange(POST, post, p.UPSERT, post_cols())])
    share([alice, bob, carol, dave])
    reply = rid(carol, "r")
    carol.write_data(
        [p.RowChange(REPLY, reply, p.UPSERT, {"post": post, "text": "nice", "deleted": 0})]
    )
    bob.write_data(
        [p.RowChange(REPLY, rid(bob, "r"), p.UPSERT, {"post": post, "text": "yes", "deleted": 0})]
    )
    bob.write_data(
        [p.RowChange(REACTION, rid(bob, "x"), p.UPSERT, {"target": post, "emoji": "👍"})]
    )
    share([alice, bob, carol, dave])
    edit = forged(bob, p.RowChange(REPLY, reply, p.UPSERT, {"text": "carol is wrong"}))
    removal = forged(alice, p.RowChange(POST, post, p.DELETE, {}))
    muted = forged(
        dave,
        p.RowChange(REPLY, rid(dave, "r"), p.UPSERT, {"post": post, "text": "hi", "deleted": 0}),
    )
    other_post = forged(
        carol, p.RowChange(POST, post, p.UPSERT, {"text": "rewritten by a co-author"})
    )
    share([alice, bob, carol, dave])
    for op in (edit, removal, muted, other_post):
        refused_by_all([alice, bob, carol, dave], parties, op)


def test_a_banned_follower_posts_nothing_after_the_ban(people):
    (alice, bob, carol, dave), parties = people
    alice.write_data([p.RowChange(POST, rid(alice, "a"), p.UPSERT, post_cols())])
    share([alice, bob, carol, dave])
    epoch, keys = bob._usable_epoch()  # the last key Bob will ever get
    alice.remove_member(bob.member)  # a ban: removed, and the keys rotate
    share([alice, carol, dave])
    sync(alice.replica, bob.replica)
    change = p.RowChange(
        REPLY, rid(bob, "late"), p.UPSERT, {"post": rid(alice, "a"), "text": "still here"}
    )
    late = forge(bob, kind="data", payload=p.data_doc([change]), epoch=epoch, key=keys.data)
    bob.replica.ingest(late.raw)
    refused_by_all([alice, bob, carol, dave], parties, late)
