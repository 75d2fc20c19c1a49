"""Hostile holders and strangers (issue 18, Acceptance), between real ``runnode`` processes on
127.0.0.1. Alice's node A1 backs up to herself and two friends (Bob, Carol: k=2 of n=3);
Dave joins as a holder later. In order:

- A peer that is none of Alice's nodes nor her friends', with a valid party proof of its own
  party, puts a share to Bob and to A1: refused, in the words a stranger gets for anything, and
  nothing is kept; asking for a share Bob holds for Alice gets it the same refusal.
- Bob's share files are altered on his disk: a restore on A1 still yields every byte (the bad
  shares are caught by their digests); "check now" finds Bob answering wrongly, marks him
  failing and re-creates his shares on Dave; with Bob and Carol both out of the way, A1 and
  Dave restore everything.
- Carol lowers what she grants Alice to 1 MB: a put over it (Alice's own party proof) is refused
  in words that say how much; A1's holder list shows Carol full; a backup still completes."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from apps.core import identity
from apps.storage import keys
from tests.support import cadre
from tests.support import storage as st
from tests.support.api import wait_for
from tests.support.p2p import Peer
from tests.support.rogue import RoguePeer

pytestmark = pytest.mark.slow

QUOTA_MB = 512
NOTHING = "holds nothing for you"  # the words a stranger gets (H2's serve)
HEX_ID = re.compile(r"[0-9a-f]{16,}")


@dataclass
class Cluster:
    a1: Peer
    bob: Peer
    carol: Peer
    dave: Peer
    started: list[Peer]
    work: Path
    tree: st.Tree
    snapshot: str
    party: str
    master: bytes


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    work = tmp_path_factory.mktemp("storage-hostile")
    with st.nodes(work, "a1", "bob", "carol", "dave") as started:
        a1, bob, carol, dave = started
        st.api_or_skip(a1)
        st.holders_join(a1, [bob, carol], quota_mb=QUOTA_MB)
        st.holders_wait(a1, [a1, bob, carol])
        tree = st.tree_make(work / "source", size=12 * st.MB, seed=25)
        done = st.backup(a1, tree.root, label="hostile")
        (party,) = st.held_parties(a1)
        master = identity.recovery_phrase_to_secret(cadre.recovery_phrase(a1))
        yield Cluster(
            a1, bob, carol, dave, started, work, tree, str(done["snapshot"]), party, master
        )


@pytest.fixture(scope="module")
def rogue():
    peer = RoguePeer().start()
    yield peer
    peer.stop()


def test_a_share_from_a_node_of_no_member_is_refused(cluster, rogue):
    bob, a1, party = cluster.bob, cluster.a1, cluster.party
    stranger = os.urandom(32)  # another party's master secret: its proof is valid, for it
    kept = {p.peer_id: st.held_count(p) for p in (bob, a1)}
    share = os.urandom(64 << 10)
    for target in (bob, a1):
        answer = st.storage_request(
            rogue, target, master=stranger, op="put", purpose=keys.PURPOSE_PUT, shares=[share]
        )
        assert (answer.ok, answer.code) == (False, "refused"), answer
        assert NOTHING in answer.words, answer.words
    # Asking for a share Bob does hold for Alice tells the stranger nothing more.
    digest = bytes.fromhex(st.held_files(bob, party)[0].name)
    answer = st.storage_request(
        rogue, bob, master=stranger, op="get", purpose=keys.PURPOSE_GET, digests=[digest]
    )
    assert not answer.ok, answer
    assert NOTHING in answer.words, answer.words
    assert {p.peer_id: st.held_count(p) for p in (bob, a1)} == kept
    assert st.held_parties(bob) == [party]


def test_altered_shares_are_caught_the_holder_marked_failing_and_repaired_elsewhere(cluster):
    a1, bob, carol, dave, party = (
        cluster.a1,
        cluster.bob,
        cluster.carol,
        cluster.dave,
        cluster.party,
    )
    st.holders_join(a1, [dave], quota_mb=QUOTA_MB)
    st.holders_wait(a1, [dave])
    bad = st.held_corrupt(bob, count=st.held_count(bob, party))
    assert bad

    # A restore now: Bob's shares come back wrong, are caught, and the others fill in.
    restored = cluster.work / "restored-around-bob"
    st.restore(a1, cluster.snapshot, restored)
    assert st.tree_diff(cluster.tree.root, restored) == []

    # "Check now": Bob's audits answer wrongly: he is marked failing (in words), and the shares
    # he held are made again on Dave, who held none of that backup.
    def repaired() -> dict | None:
        summary = st.check_now(a1)
        found = st.holder_of(a1, bob)
        print("check now:", summary, "bob:", found, "dave holds", st.held_count(dave, party))
        done = found and found["state"] == "failing" and st.held_count(dave, party) >= len(bad)
        return found if done else None

    failing = wait_for(repaired, timeout=240, interval=1, what="Bob failing, Dave repaired")
    words = failing.get("problem") or failing.get("words") or ""
    assert words, failing
    assert not HEX_ID.search(words), words

    # Bob and Carol out of the way: A1's own shares and Dave's restore everything.
    carol.stop()
    try:
        again = cluster.work / "restored-from-a1-and-dave"
        st.restore(a1, cluster.snapshot, again)
        assert st.tree_diff(cluster.tree.root, again) == []
    finally:
        carol.start()


def test_a_holder_over_its_quota_refuses_more_in_words(cluster, rogue):
    a1, carol, party = cluster.a1, cluster.carol, cluster.party
    st.held_grant(carol, party, 1)
    print("Carol holds for:", st.held(carol), flush=True)
    try:
        used = st.held_bytes(carol)
        assert used > 1 * st.MB, used  # already over what she now grants
        answer = st.storage_request(
            rogue,
            carol,
            master=cluster.master,
            op="put",
            purpose=keys.PURPOSE_PUT,
            shares=[os.urandom(2 * st.MB)],
        )
        assert (answer.ok, answer.code) == (False, "refused"), answer
        assert "MB" in answer.words, answer.words
        assert not HEX_ID.search(answer.words), answer.words
        assert st.held_bytes(carol) == used

        # Alice's node learns it: Carol is full, in words; a backup still completes around her.
        def full() -> dict | None:
            st.check_now(a1)
            found = st.holder_of(a1, carol)
            shown = " ".join(str(v) for v in (found or {}).values()).lower()
            return found if found and "full" in shown else None

        shown = wait_for(full, timeout=90, interval=1, what="A1 to show Carol full")
        print("Carol on A1:", shown, flush=True)
        assert shown["quota"] in (1, st.MB), shown  # in MB or in bytes
        more = st.tree_make(cluster.work / "more", size=2 * st.MB, seed=26)
        st.backup(a1, more.root, label="while Carol is full")
        assert st.held_bytes(carol) == used
    finally:
        st.held_grant(carol, party, QUOTA_MB)
