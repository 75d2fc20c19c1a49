"""The checklist between three real nodes (``runnode`` processes, each in a network namespace of
its own on one LAN, so that the network between them can be cut: ``tests/support/faults.py``'s
cluster). Alice's conversation enables the checklist and Alice adds an item; the network splits
Bob and Alice from Carol, and Bob and Carol claim the item at the same moment, each node
accepting its own member's claim. Once the network heals, every node shows the same claimer,
and the other claimer's node shows that claim as refused, with the reason, through the API.

Skipped, with the reason, where namespaces cannot be made (not root, no iproute2)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.api import wait_for
from tests.support.faults import Cluster
from tests.support.quiet_cluster import node_api, quiet_cluster

pytestmark = pytest.mark.slow

NAMES = ["alice", "bob", "carol"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    with quiet_cluster(NAMES, tmp_path_factory.mktemp("checklist-nodes")) as made:
        yield made


api = node_api


def item_on(cluster: Cluster, name: str, thread: str, item: str) -> dict | None:
    listed = api(cluster, name).get(f"/api/v1/threads/{thread}/checklist/")
    return next((i for i in listed if i["id"] == item), None)


def test_two_claims_made_apart_have_one_winner_and_the_other_is_refused_with_why(
    cluster: Cluster,
) -> None:
    alice = api(cluster, "alice")
    thread = alice.post("/api/v1/threads/", {"name": "Moving day", "app": "messaging"})["id"]
    for name in ("bob", "carol"):
        link = cluster.nodes["alice"].peer.invite(thread, "writer")
        cluster.nodes[name].peer.redeem(link)
        wait_for(
            lambda n=name: api(cluster, n).get(f"/api/v1/threads/{thread}/")["state"] == "active",
            timeout=60,
            what=f"{name} to join",
        )
    assert alice.post(f"/api/v1/threads/{thread}/apps/", {"app": "checklist"})["enabled"]
    item = alice.post(f"/api/v1/threads/{thread}/checklist/", {"text": "Book the van"})["id"]
    for name in ("bob", "carol"):
        wait_for(lambda n=name: item_on(cluster, n, thread, item), what=f"the item on {name}")

    # Carol's node is cut off from the others; Bob and Carol claim the item at the same moment.
    cluster.partition([["alice", "bob"], ["carol"]])
    claim = f"/api/v1/threads/{thread}/checklist/{item}/claim/"
    with ThreadPoolExecutor(2) as pool:
        answers = dict(
            zip(
                ("bob", "carol"),
                pool.map(lambda name: api(cluster, name).post(claim), ("bob", "carol")),
                strict=True,
            )
        )
    members = {
        name: api(cluster, name).get(f"/api/v1/threads/{thread}/")["member_id"] for name in NAMES
    }
    for name, answer in answers.items():  # each node took its own member's claim
        assert answer["claimed_by"] == members[name]
        assert answer["write"]["state"] == "accepted"
    # The split holds: Bob's claim reaches Alice, and Carol keeps seeing her own.
    wait_for(
        lambda: item_on(cluster, "alice", thread, item)["claimed_by"] == members["bob"],
        what="Bob's claim to reach Alice",
    )
    time.sleep(1)
    assert item_on(cluster, "carol", thread, item)["claimed_by"] == members["carol"]

    cluster.heal_partition()

    def settled() -> dict[str, dict] | None:
        seen = {name: item_on(cluster, name, thread, item) for name in NAMES}
        holders = {view["claimed_by"] for view in seen.values() if view}
        if len(holders) != 1 or not all(seen.values()):
            return None
        winner = next(name for name in ("bob", "carol") if members[name] in holders)
        loser = "carol" if winner == "bob" else "bob"
        return seen if seen[loser]["refused"] else None

    seen = wait_for(settled, timeout=60, interval=0.5, what="the nodes to agree on the claimer")
    holder = seen["alice"]["claimed_by"]
    winner = "bob" if holder == members["bob"] else "carol"
    loser = "carol" if winner == "bob" else "bob"
    for name in NAMES:
        assert seen[name]["claimed_by"] == holder
        assert seen[name]["state"] == "claimed"
    assert seen[winner]["refused"] == []
    refused = seen[loser]["refused"]
    assert [(r["what"], r["reason"]) for r in refused] == [
        ("claim", "someone else claimed it first")
    ]
    assert refused[0]["op"] == answers[loser]["write"]["op"]
    write = api(cluster, loser).get(f"/api/v1/threads/{thread}/writes/{refused[0]['op']}/")
    assert write["state"] == "refused"
    assert write["reason"] == "checklist_item: the item is already claimed by someone else"
    # The winner's node refuses the loser's claim too (every replica decides alike).
    on_winner = api(cluster, winner).get(f"/api/v1/threads/{thread}/checklist/refused/")
    assert on_winner == []
