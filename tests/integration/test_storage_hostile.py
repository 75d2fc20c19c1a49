"""Hostile holders and strangers (issue 18, Acceptance), between real ``runnode`` processes on
127.0.0.1. Alice's node A1 backs up to herself and two friends (Carol, Eve: k=2 of n=3); Dave
joins as a holder later. In order:

- A peer that is none of Alice's nodes nor her friends', with a valid party proof of its own
  party, puts a share to Carol and to A1: refused, in the words a stranger gets for anything,
  and nothing is kept; asking for a share Carol holds for Alice gets it the same refusal.
- Carol's share files are damaged on her disk: her node no longer vouches for them, "check
  now" finds them and puts them back, byte for byte; a restore yields every file.
- Eve's node is swapped for one that keeps nothing and lies (same peer id and address): every
  audit answered with a wrong proof, every share sent back damaged. "Check now" finds her
  failing, says so in words, and makes her shares again on Dave; a restore with Eve lying and
  Carol away yields every byte from A1's and Dave's shares.
- Carol lowers what she grants Alice to 1 MB: a put over it (Alice's own party proof) is refused
  in words that say how much; A1's holder list shows the lower grant; a backup still completes."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from apps.core import identity
from apps.storage import keys
from tests.integration.test_storage_nodes import nodes
from tests.support import cadre
from tests.support import storage as st
from tests.support.api import wait_for
from tests.support.p2p import Peer
from tests.support.rogue import RoguePeer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

QUOTA_MB = 512
NOTHING = "holds nothing for you"  # the words a stranger gets (H2's serve)
HEX_ID = re.compile(r"[0-9a-f]{16,}")


@dataclass
class Cluster:
    a1: Peer
    carol: Peer
    eve: Peer
    dave: Peer
    work: Path
    tree: st.Tree
    snapshot: str
    party: str
    master: bytes


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    work = tmp_path_factory.mktemp("storage-hostile")
    with nodes(work, "a1", "carol", "eve", "dave") as started:
        a1, carol, eve, dave = started
        st.api_or_skip(a1)
        st.holders_join(a1, [carol, eve], quota_mb=QUOTA_MB)
        st.holders_wait(a1, [a1, carol, eve])
        tree = st.tree_make(work / "source", size=6 * st.MB, seed=25)
        done = st.backup(a1, tree.root, label="hostile")
        (party,) = st.held_parties(a1)
        master = identity.recovery_phrase_to_secret(cadre.recovery_phrase(a1))
        yield Cluster(a1, carol, eve, dave, work, tree, str(done["snapshot"]), party, master)


@pytest.fixture(scope="module")
def rogue():
    peer = RoguePeer().start()
    yield peer
    peer.stop()


def intact(peer: Peer) -> tuple[int, int]:
    """(share files whose bytes match their digest, files that do not) on ``peer``'s disk."""
    files = st.held_files(peer)
    good = sum(hashlib.blake2b(p.read_bytes(), digest_size=32).hexdigest() == p.name for p in files)
    return good, len(files) - good


def test_a_share_from_a_node_of_no_member_is_refused(cluster, rogue):
    carol, a1, party = cluster.carol, cluster.a1, cluster.party
    stranger = os.urandom(32)  # another party's master secret: its proof is valid, for it
    kept = {p.peer_id: st.held_count(p) for p in (carol, a1)}
    share = os.urandom(64 << 10)
    for target in (carol, a1):
        answer = st.storage_request(
            rogue, target, master=stranger, op="put", purpose=keys.PURPOSE_PUT, shares=[share]
        )
        assert (answer.ok, answer.code) == (False, "refused"), answer
        assert NOTHING in answer.words, answer.words
    # Asking for a share Carol does hold for Alice tells the stranger nothing more.
    digest = bytes.fromhex(st.held_files(carol, party)[0].name)
    answer = st.storage_request(
        rogue, carol, master=stranger, op="get", purpose=keys.PURPOSE_GET, digests=[digest]
    )
    assert not answer.ok, answer
    assert NOTHING in answer.words, answer.words
    assert {p.peer_id: st.held_count(p) for p in (carol, a1)} == kept
    assert st.held_parties(carol) == [party]


def test_shares_damaged_on_a_holders_disk_are_found_and_put_back(cluster):
    a1, carol, party = cluster.a1, cluster.carol, cluster.party
    count = st.held_count(carol, party)
    assert len(st.held_corrupt(carol, count=count)) == count
    assert intact(carol) == (0, count)
    seen: list[dict] = []

    def mended() -> bool:
        seen.append(st.check_now(a1))
        print("check now:", seen[-1]["words"], "carol intact:", intact(carol), flush=True)
        return intact(carol) == (count, 0)

    wait_for(mended, timeout=300, interval=1, what="Carol's damaged shares to be put back")
    assert sum(s["audit"].get("missing", 0) + s["audit"].get("corrupt", 0) for s in seen) > 0
    # Most are put back by "check now"; the node's own worker may put back some between two
    # checks, so only that repairs happened is asserted here, and the files say the rest.
    assert sum(s["repair"].get("repaired", 0) for s in seen) > 0
    restored = cluster.work / "restored-after-damage"
    st.restore(a1, cluster.snapshot, restored)
    assert st.tree_diff(cluster.tree.root, restored) == []


def test_a_holder_that_lies_is_marked_failing_and_its_shares_made_again_elsewhere(cluster):
    a1, carol, eve, dave, party = (
        cluster.a1,
        cluster.carol,
        cluster.eve,
        cluster.dave,
        cluster.party,
    )
    st.holders_join(a1, [dave], quota_mb=QUOTA_MB)
    st.holders_wait(a1, [dave])
    eves = st.held_count(eve, party)
    assert eves > 0
    assert st.held_count(dave, party) == 0
    eve.stop()
    liar = st.LyingHolder(eve).start()
    try:

        def repaired() -> dict | None:
            summary = st.check_now(a1)
            found = st.holder_of(a1, eve)
            print("check now:", summary["words"], "| Eve:", found and found["state"], flush=True)
            done = found and found["state"] == "failing" and st.held_count(dave, party) >= eves
            return found if done else None

        failing = wait_for(repaired, timeout=300, interval=1, what="Eve failing, Dave repaired")
        print("Eve on A1:", failing, "liar asked:", liar.asked, flush=True)
        assert "Eve" in failing["problem"], failing
        assert not HEX_ID.search(failing["problem"]), failing["problem"]
        assert st.held_count(dave, party) == eves

        # Eve lying and Carol away: A1's own shares and Dave's restore everything.
        carol.stop()
        try:
            again = cluster.work / "restored-around-eve"
            st.restore(a1, cluster.snapshot, again)
            assert st.tree_diff(cluster.tree.root, again) == []
        finally:
            carol.start()
    finally:
        liar.stop()


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

        # Alice's node learns the lower grant (Carol's signed row in their holding thread),
        # after the stops and starts of the tests before: once seen written to Carol's
        # database without its op, so that it never reached Alice.
        def lowered() -> dict | None:
            found = st.holder_of(a1, carol)
            return found if found and found["quota"] == 1 << 20 else None

        print("Carol on A1:", wait_for(lowered, timeout=120, interval=1, what="the grant"))
        # A backup still completes around her (her node refuses what does not fit).
        more = st.tree_make(cluster.work / "more", size=2 * st.MB, seed=26)
        st.backup(a1, more.root, label="while Carol is full")
        assert st.held_bytes(carol) == used
    finally:
        st.held_grant(carol, party, QUOTA_MB)
