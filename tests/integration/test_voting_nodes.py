"""A ranked poll between five real nodes (``runnode`` processes, each in a network namespace of its
own on one LAN: ``tests/support/faults.py``'s cluster). Alice opens the poll in a conversation
with voting enabled; everyone votes through their own node's API and two change their minds.
Erin's node is cut off, Erin votes there, and Alice closes the poll without having seen it. Once
Erin's node is back, every node shows the same rounds, winner and hash of the counted ballots,
none of them counts Erin's ballot, and Erin's own node shows her ballot refused because the poll
had closed.

Skipped, with the reason, where namespaces cannot be made (not root, no iproute2)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from apps.voting.tally import tally
from tests.support.api import wait_for
from tests.support.faults import Cluster
from tests.support.quiet_cluster import node_api, quiet_cluster

pytestmark = pytest.mark.slow

NAMES = ["alice", "bob", "carol", "dave", "erin"]
OPTIONS = ["Saturday", "Sunday", "Monday", "Never"]
# Each member's first ballot, then the two changes of mind (Bob's and Dave's).
FIRST = {
    "alice": [0, 2, 1],
    "bob": [3, 2],
    "carol": [2, 0],
    "dave": [0],
}
CHANGED = {"bob": [1, 0], "dave": [1, 2]}
COUNTED = {**FIRST, **CHANGED}
LATE = [2, 3]  # Erin's, cast while cut off: it would make option 2 win if it counted


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    with quiet_cluster(NAMES, tmp_path_factory.mktemp("voting-nodes")) as made:
        yield made


api = node_api


def poll_on(cluster: Cluster, name: str, thread: str, poll: str) -> dict[str, Any] | None:
    listed = api(cluster, name).get(f"/api/v1/threads/{thread}/polls/")
    return next((p for p in listed if p["id"] == poll), None)


def vote(cluster: Cluster, name: str, thread: str, poll: str, ranking: list[int]) -> dict:
    return api(cluster, name).request(
        "PUT", f"/api/v1/threads/{thread}/polls/{poll}/ballot/", {"ranking": ranking}
    )


def outcome(view: dict[str, Any]) -> tuple:
    """What every node must agree on once the poll is closed."""
    result = view["result"]
    return (
        view["state"],
        view["turnout"],
        view["counted_hash"],
        result["winner"],
        tuple(result["tied"]),
        tuple(result["totals"]),
        tuple((tuple(r["counts"]), tuple(r["eliminated"]), r["exhausted"]) for r in view["rounds"]),
    )


def expected_rounds(ballots: list[list[int]]) -> tuple:
    counted = tally("ranked", len(OPTIONS), [{"ranking": r} for r in ballots])
    rounds = tuple((r.counts, r.eliminated, r.exhausted) for r in counted.rounds)
    return counted.winner, counted.tied, counted.totals, rounds


def test_a_ballot_cast_cut_off_after_the_close_counts_nowhere_and_all_nodes_agree(
    cluster: Cluster,
) -> None:
    alice = api(cluster, "alice")
    thread = alice.post("/api/v1/threads/", {"name": "Picnic", "app": "messaging"})["id"]
    links = {name: cluster.nodes["alice"].peer.invite(thread, "writer") for name in NAMES[1:]}
    with ThreadPoolExecutor(len(links)) as pool:  # the four joins at once: quicker
        list(pool.map(lambda n: cluster.nodes[n].peer.redeem(links[n]), links))
    for name in NAMES[1:]:
        wait_for(
            lambda n=name: api(cluster, n).get(f"/api/v1/threads/{thread}/")["state"] == "active",
            timeout=90,
            what=f"{name} to join",
        )
    assert alice.post(f"/api/v1/threads/{thread}/apps/", {"app": "voting"})["enabled"]
    opened = alice.post(
        f"/api/v1/threads/{thread}/polls/",
        {"question": "When is the picnic?", "options": OPTIONS, "method": "ranked"},
    )
    poll = opened["id"]
    assert opened["electorate"] == len(NAMES)  # everyone had joined on Alice's node
    assert opened["state"] == "open"
    for name in NAMES[1:]:
        wait_for(
            lambda n=name: (p := poll_on(cluster, n, thread, poll)) and p["can_vote"],
            timeout=30,
            what=f"the poll to open on {name}'s node",
        )

    with ThreadPoolExecutor(len(FIRST)) as pool:
        list(pool.map(lambda n: vote(cluster, n, thread, poll, FIRST[n]), FIRST))
    for name, ranking in CHANGED.items():
        # The change waits for the first ballot to reach Alice, so both are really seen there.
        wait_for(
            lambda: poll_on(cluster, "alice", thread, poll)["turnout"] == len(FIRST),
            what="the first ballots on Alice's node",
        )
        assert vote(cluster, name, thread, poll, ranking)["my_ballot"] == {"ranking": ranking}

    winner, tied, totals, rounds = expected_rounds(list(COUNTED.values()))
    late_winner, *_ = expected_rounds([*COUNTED.values(), LATE])
    assert (winner, late_winner) == (1, 2)  # the ballots are chosen so that Erin's would matter

    def alice_counts_the_changes() -> dict | None:
        view = poll_on(cluster, "alice", thread, poll)
        live = view["result"]
        return view if live and live["winner"] == winner and view["turnout"] == 4 else None

    wait_for(alice_counts_the_changes, timeout=30, what="the changed ballots on Alice's node")

    # Erin's node is cut off; she votes there, and Alice closes the poll without having seen it.
    cluster.partition([NAMES[:4], ["erin"]])
    late = vote(cluster, "erin", thread, poll, LATE)
    assert late["my_ballot"] == {"ranking": LATE}
    assert late["state"] == "open"
    closed = alice.post(f"/api/v1/threads/{thread}/polls/{poll}/close/")
    assert closed["state"] == "closed"
    assert closed["turnout"] == len(COUNTED)
    assert closed["result"]["final"]
    assert closed["result"]["winner"] == winner
    erin_meanwhile = poll_on(cluster, "erin", thread, poll)
    assert erin_meanwhile["state"] == "open"  # the split holds
    assert erin_meanwhile["turnout"] == len(COUNTED) + 1

    cluster.heal_partition()

    def agreed() -> dict[str, tuple] | None:
        seen = {name: poll_on(cluster, name, thread, poll) for name in NAMES}
        if not all(v and v["state"] == "closed" and v["rounds"] for v in seen.values()):
            return None
        outcomes = {name: outcome(view) for name, view in seen.items()}
        return outcomes if len(set(outcomes.values())) == 1 else None

    outcomes = wait_for(agreed, timeout=60, interval=0.5, what="the five nodes to agree")
    state, turnout, counted_hash, *result = outcomes["erin"]
    assert (state, turnout) == ("closed", len(COUNTED))
    assert tuple(result) == (winner, tied, totals, rounds)
    assert counted_hash == closed["counted_hash"]

    erin_view = poll_on(cluster, "erin", thread, poll)
    assert erin_view["voted"] is False
    assert erin_view["my_ballot"] is None
    refused = api(cluster, "erin").get(f"/api/v1/threads/{thread}/writes/?state=refused")
    ballots = [
        w for w in refused["writes"] if any(c["table"] == "voting_ballot" for c in w["changes"])
    ]
    assert len(ballots) == 1, refused
    assert "closed before this row was seen" in ballots[0]["reason"]
