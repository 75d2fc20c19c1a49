"""Lifts between three real nodes (``runnode`` processes in network namespaces of their own):
tallies Alice-Bob, Bob-Carol and Carol-Alice in a debt cycle (Alice owes Bob, Bob owes Carol,
Carol owes Alice). A lift Alice starts clears the same amount on all three; with Carol cut off
it waits, then completes when she is back in time, or is called off at its deadline; and with
the referee (Alice) killed mid-lift, the reservations are released after the deadline anyway.
Everything through the API. Alice's lifts have 6 seconds (``SEREUS_LIFT_SECONDS``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.api import Api, ApiError, wait_for
from tests.support.faults import Cluster
from tests.support.quiet_cluster import node_api, quiet_cluster

pytestmark = pytest.mark.slow

NAMES = ["alice", "bob", "carol"]
MILLI = 1000
LIFT_SECONDS = 6
PAIRS = [("alice", "bob"), ("bob", "carol"), ("carol", "alice")]  # the first owes the second


def tally(api: Api, thread: str) -> dict[str, Any] | None:
    try:
        return api.get(f"/api/v1/threads/{thread}/tally/")
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise


def open_tally(cluster: Cluster, owner: str, partner: str) -> str:
    mine, theirs = node_api(cluster, owner), node_api(cluster, partner)
    proposed = mine.post(
        "/api/v1/tallies/",
        {"name": f"{owner} and {partner}", "unit": "CHIP", "my_limit": "100",
         "partner_limit": "100"},
    )  # fmt: skip
    thread = proposed["thread"]
    theirs.post("/api/v1/invites/redeem/", {"link": proposed["invite"]})
    wait_for(lambda: tally(theirs, thread), timeout=90, what=f"the contract on {partner}'s node")
    theirs.post(f"/api/v1/threads/{thread}/tally/sign/")
    for api in (mine, theirs):
        wait_for(
            lambda a=api: (t := tally(a, thread)) and t["state"] == "open",
            timeout=30,
            what="the tally open on both nodes",
        )
    return thread


@pytest.fixture(scope="module")
def ring(tmp_path_factory) -> Iterator[tuple[Cluster, dict[tuple[str, str], str]]]:
    with quiet_cluster(NAMES, tmp_path_factory.mktemp("ledger-lifts")) as cluster:
        # The referee's lifts get a short deadline: its node starts again with it.
        cluster.nodes["alice"].peer.process.extra_env["SEREUS_LIFT_SECONDS"] = str(LIFT_SECONDS)
        cluster.kill("alice")
        cluster.restart("alice")
        tallies = {pair: open_tally(cluster, *pair) for pair in PAIRS}
        for (debtor, creditor), thread in tallies.items():
            api = node_api(cluster, debtor)
            api.post(f"/api/v1/threads/{thread}/chits/", {"kind": "payment", "amount": "30"})
            wait_for(
                lambda c=creditor, t=thread: tally(node_api(cluster, c), t)["balance"] == 30_000,
                what=f"the debt on {creditor}'s node",
            )
        yield cluster, tallies


def debts(cluster: Cluster, tallies: dict[tuple[str, str], str]) -> dict[str, int] | None:
    """What each debtor owes, once both sides of every tally agree and nothing is held."""
    found = {}
    for (debtor, creditor), thread in tallies.items():
        mine, theirs = (
            tally(node_api(cluster, debtor), thread),
            tally(node_api(cluster, creditor), thread),
        )
        if mine is None or theirs is None or mine["balance"] != -theirs["balance"]:
            return None
        if mine["held"] or theirs["held"]:
            return None
        found[debtor] = -mine["balance"]
    return found


def lift(cluster: Cluster, amount: str) -> dict[str, Any]:
    return node_api(cluster, "alice").post("/api/v1/lifts/", {"amount": amount})


def decided(cluster: Cluster, lift_id: str) -> dict[str, Any] | None:
    found = node_api(cluster, "alice").get(f"/api/v1/lifts/{lift_id}/")
    return found if found["state"] != "seeking" else None


def test_a_lift_clears_the_same_amount_on_every_tally_of_the_cycle(ring) -> None:
    cluster, tallies = ring
    started = lift(cluster, "20")
    assert started["state"] == "seeking"
    done = wait_for(lambda: decided(cluster, started["id"]), timeout=30, what="the lift decided")
    assert done["state"] == "committed", done["reason"]
    owed = wait_for(
        lambda: (d := debts(cluster, tallies)) and set(d.values()) == {10_000} and d,
        timeout=30,
        what="20 cleared on all three tallies",
    )
    assert owed == {"alice": 10_000, "bob": 10_000, "carol": 10_000}
    for (debtor, _), thread in tallies.items():
        kinds = [
            c["kind"] for c in node_api(cluster, debtor).get(f"/api/v1/threads/{thread}/chits/")
        ]
        assert kinds[:2] == ["lift", "reserve"], kinds  # newest first: reserved, then lifted


def test_a_lift_waits_for_a_node_cut_off_then_completes_or_is_called_off(ring) -> None:
    cluster, tallies = ring
    before = wait_for(lambda: debts(cluster, tallies), timeout=30, what="a settled ring")
    cluster.isolate("carol", True)
    try:
        waiting = lift(cluster, "2")
        time.sleep(2)
        assert decided(cluster, waiting["id"]) is None  # it waits for Carol
    finally:
        cluster.isolate("carol", False)
    done = wait_for(lambda: decided(cluster, waiting["id"]), timeout=30, what="the lift decided")
    assert done["state"] == "committed", done["reason"]
    wait_for(
        lambda: debts(cluster, tallies) == {k: v - 2_000 for k, v in before.items()},
        timeout=30,
        what="2 cleared once Carol was back",
    )

    cluster.isolate("carol", True)
    try:
        lost = lift(cluster, "2")
        done = wait_for(
            lambda: decided(cluster, lost["id"]), timeout=LIFT_SECONDS + 20, what="the deadline"
        )
        assert done["state"] == "voided"
        assert "time" in done["reason"]
    finally:
        cluster.isolate("carol", False)
    after = wait_for(lambda: debts(cluster, tallies), timeout=30, what="every reservation released")
    assert after == {k: v - 2_000 for k, v in before.items()}  # the second lift cleared nothing


def test_a_lost_referee_leaves_nothing_held_after_the_deadline(ring) -> None:
    cluster, tallies = ring
    before = wait_for(lambda: debts(cluster, tallies), timeout=30, what="a settled ring")
    cluster.isolate("carol", True)
    try:
        lift(cluster, "3")
        ab = tallies[("alice", "bob")]
        wait_for(
            lambda: tally(node_api(cluster, "bob"), ab)["held"] == 3_000,
            what="Bob holding 3 for the lift",
        )
        cluster.kill("alice")  # the referee is gone before deciding
        wait_for(
            lambda: tally(node_api(cluster, "bob"), ab)["held"] == 0,
            timeout=LIFT_SECONDS + 30,
            what="Bob's reservation released after the deadline",
        )
    finally:
        cluster.isolate("carol", False)
        cluster.restart("alice")
    assert wait_for(lambda: debts(cluster, tallies), timeout=60, what="a settled ring") == before


def test_a_payment_racing_a_lift_never_makes_it_clear_more_than_is_owed(ring) -> None:
    """Bob pays Alice most of what she owes him (in mutual credit the creditor's payment is
    what brings a debt down) while a lift of all of it is on its way: the first of the two in
    their tally wins. Either the lift clears everything everywhere (and Bob's payment is
    refused: the lift holds that debt), or the payment stands and the lift is called off having
    cleared nothing; never a lift past what she owes, nothing left held."""
    cluster, tallies = ring
    before = wait_for(lambda: debts(cluster, tallies), timeout=30, what="a settled ring")
    owed = before["alice"]
    paid_back = owed - 1_000  # leaves 1 owed: less than the lift
    ab = tallies[("alice", "bob")]
    started = lift(cluster, f"{owed / MILLI:.3f}")
    answer: Any = None
    try:
        answer = node_api(cluster, "bob").post(
            f"/api/v1/threads/{ab}/chits/",
            {"kind": "payment", "amount": f"{paid_back / MILLI:.3f}"},
        )
    except ApiError as exc:
        answer = exc  # Bob's node reserved first: the lift holds the debt
    done = wait_for(lambda: decided(cluster, started["id"]), timeout=30, what="the lift decided")
    after = wait_for(lambda: debts(cluster, tallies), timeout=30, what="a settled ring again")
    if done["state"] == "committed":
        assert after == {name: 0 for name in before}
    else:
        assert after == {**before, "alice": owed - paid_back}
    if isinstance(answer, ApiError):
        assert answer.status == 409
        assert "held" in answer.body["detail"] or "holds" in answer.body["detail"]
