"""Tallies between two real nodes (``runnode`` processes, each in a network namespace of its own:
``tests/support/faults.py``'s cluster), through the ledger API only (issue 14, Acceptance).

Alice opens a tally with Bob, who joins by its invite and signs; her node countersigns on its
own. Payments go both ways, and one past the credit Bob gives is refused with what is available.
Then the two nodes are cut off from each other and both sides pay at once, each accepted
locally: once healed, both replicas hold one chain (the chit another overtook is sent again on
top by its author's node) and no accepted chit ever took a side past the credit the other gave
at its place; the one that no longer fits stays refused, with its reason, for its author.

Skipped, with the reason, where namespaces cannot be made (not root, no iproute2)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.api import Api, ApiError, wait_for
from tests.support.faults import Cluster
from tests.support.quiet_cluster import node_api, quiet_cluster

pytestmark = pytest.mark.slow

NAMES = ["alice", "bob"]
MILLI = 1000


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    with quiet_cluster(NAMES, tmp_path_factory.mktemp("ledger-nodes")) as made:
        yield made


def tally(api: Api, thread: str) -> dict[str, Any] | None:
    """The tally as this node holds it; None until its contract has arrived."""
    try:
        return api.get(f"/api/v1/threads/{thread}/tally/")
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise


def chain(api: Api, thread: str) -> list[dict[str, Any]]:
    """The chain chits, oldest first (the API lists them newest first, then the requests)."""
    listed = api.get(f"/api/v1/threads/{thread}/chits/")
    counted = (c for c in listed if c["kind"] != "invoice" and c["state"] == "counted")
    return sorted(counted, key=lambda c: c["seq"])


def chit(api: Api, thread: str, kind: str, amount: str, memo: str = "") -> dict[str, Any]:
    body = {"kind": kind, "amount": amount, "memo": memo}
    return api.post(f"/api/v1/threads/{thread}/chits/", body)


def open_tally(cluster: Cluster, name: str, limit: str) -> str:
    """A tally Alice proposes (``limit`` each way), Bob joins and signs, open on both nodes."""
    alice, bob = (node_api(cluster, n) for n in NAMES)
    proposed = alice.post(
        "/api/v1/tallies/",
        {"name": name, "unit": "CHIP", "my_limit": limit, "partner_limit": limit},
    )
    thread = proposed["thread"]
    bob.post("/api/v1/invites/redeem/", {"link": proposed["invite"]})
    wait_for(lambda: tally(bob, thread), timeout=90, what="the contract on Bob's node")
    assert tally(alice, thread)["state"] == "proposed"  # nothing counts before both sign
    signed = bob.post(f"/api/v1/threads/{thread}/tally/sign/")
    assert signed["i_signed"]
    assert signed["role"] == "partner"
    for who in NAMES:
        wait_for(
            lambda w=who: (t := tally(node_api(cluster, w), thread)) and t["state"] == "open",
            timeout=30,
            what=f"the tally open on {who}'s node",
        )
    return thread


def agreed(cluster: Cluster, thread: str, chits: int) -> list[dict[str, Any]] | None:
    """Alice's chain once both nodes hold the same one, of ``chits`` chits, with mirrored
    balances; else None."""
    alice, bob = (node_api(cluster, n) for n in NAMES)
    mine, theirs = chain(alice, thread), chain(bob, thread)
    if len(mine) != chits:
        return None
    as_seen = [(c["id"], c["kind"], c["amount"], c["seq"]) for c in mine]
    if as_seen != [(c["id"], c["kind"], c["amount"], c["seq"]) for c in theirs]:
        return None
    if [c["balance"] for c in mine] != [-c["balance"] for c in theirs]:
        return None
    if tally(alice, thread)["balance"] != -tally(bob, thread)["balance"]:
        return None
    return mine


def walk(links: list[dict[str, Any]], limit: int) -> list[str]:
    """Every break of the rules in a chain seen from Alice's side (it started at ``limit``
    milli-units each way): a gap in its places, a balance that does not follow, or a payment
    that took its payer past the credit the other side gave at that place."""
    problems = []
    balance, alice_gives, bob_gives = 0, limit, limit
    for place, c in enumerate(links, start=1):
        if c["seq"] != place:
            problems.append(f"chit {c['id']} stands at {c['seq']}, not {place}")
        if c["kind"] == "limit":
            if c["mine"]:
                alice_gives = c["amount"]
            else:
                bob_gives = c["amount"]
        elif c["kind"] == "payment":
            balance += -c["amount"] if c["mine"] else c["amount"]
            if c["mine"] and -balance > bob_gives:
                problems.append(f"Alice owes {-balance} past Bob's credit of {bob_gives}")
            if not c["mine"] and balance > alice_gives:
                problems.append(f"Bob owes {balance} past Alice's credit of {alice_gives}")
        if c["balance"] != balance:
            problems.append(f"chit {c['id']} carries {c['balance']}, the chain gives {balance}")
    return problems


def test_payments_both_ways_and_one_past_the_credit_is_refused_with_what_is_available(
    cluster: Cluster,
) -> None:
    alice, bob = (node_api(cluster, n) for n in NAMES)
    thread = open_tally(cluster, "Garden tools", "100")
    opened = tally(alice, thread)
    assert (opened["balance"], opened["my_limit"], opened["partner_limit"]) == (0, 100_000, 100_000)
    assert opened["available"] == 100_000

    assert chit(alice, thread, "payment", "60", "spade")["balance"] == -60_000
    wait_for(lambda: tally(bob, thread)["balance"] == 60_000, what="Alice's 60 on Bob's node")
    assert chit(bob, thread, "payment", "10", "seeds")["balance"] == 50_000
    wait_for(lambda: tally(alice, thread)["balance"] == -50_000, what="Bob's 10 on Alice's node")

    with pytest.raises(ApiError) as refused:
        chit(alice, thread, "payment", "55", "wheelbarrow")
    assert refused.value.status == 409
    detail = refused.value.body["detail"]
    assert "50.000 is available" in detail, detail
    assert tally(alice, thread)["available"] == 50_000

    links = wait_for(lambda: agreed(cluster, thread, 2), what="both nodes to hold one chain")
    assert [(c["amount"], c["mine"], c["balance"]) for c in links] == [
        (60_000, True, -60_000),
        (10_000, False, -50_000),
    ]
    assert (tally(alice, thread)["balance"], tally(bob, thread)["balance"]) == (-50_000, 50_000)
    assert [c["memo"] for c in chain(bob, thread)] == ["spade", "seeds"]  # nothing of the 55


@dataclass
class Partitioned:
    """What the partitioned run left: the tally, the chits each node accepted while cut off,
    and the chain both agreed on once healed."""

    thread: str
    accepted_cut_off: dict[str, list[dict[str, Any]]]  # by node, as the API answered
    links: list[dict[str, Any]]  # the agreed chain, Alice's side, oldest first


LIMIT = "40"
CAME_FIRST = "another chit came first"  # the refusal its author's node answers by sending again
# So does it when the chit it followed was itself sent again (``selectors.overtaken``).
NOT_IN_CHAIN = "the chit it follows is not in the chain"


@pytest.fixture(scope="module")
def partitioned(cluster: Cluster) -> Partitioned:
    """Two rounds cut off from each other, each healed and agreed on.

    1. Alice pays 30 and Bob pays 20 at once: both fit wherever they go (-10 for Alice).
    2. Alice lowers the credit she gives Bob to 5, and Bob, not knowing, pays 20: on his node
       he owed nothing (Alice owed him 10), so it fits there; on top of her limit it would take
       him to 10 owed, past her 5 (15 available), so once it is sent again it no longer fits.

    Alice writes first each round, so her chit orders first (the thread orders concurrent ops
    by their hybrid-clock stamps) and Bob's is the one overtaken."""
    alice, bob = (node_api(cluster, n) for n in NAMES)
    thread = open_tally(cluster, "Shared car", LIMIT)
    accepted: dict[str, list[dict[str, Any]]] = {"alice": [], "bob": []}

    cluster.partition([["alice"], ["bob"]])
    accepted["alice"].append(chit(alice, thread, "payment", "30", "fuel"))
    accepted["bob"].append(chit(bob, thread, "payment", "20", "tyres"))
    assert tally(alice, thread)["balance"] == -30_000  # the split holds: each sees its own
    assert tally(bob, thread)["balance"] == -20_000
    cluster.heal_partition()
    first = wait_for(lambda: agreed(cluster, thread, 2), timeout=30, what="round 1 agreed")
    assert first[-1]["balance"] == -10_000

    cluster.partition([["alice"], ["bob"]])
    accepted["alice"].append(chit(alice, thread, "limit", "5", "less credit"))
    accepted["bob"].append(chit(bob, thread, "payment", "20", "insurance"))
    assert tally(bob, thread)["balance"] == 10_000 - 20_000  # fits on his node alone
    cluster.heal_partition()
    links = wait_for(lambda: agreed(cluster, thread, 3), timeout=30, what="round 2 agreed")
    return Partitioned(thread, accepted, links)


def test_after_healing_both_replicas_hold_one_chain_within_the_limits(
    cluster: Cluster, partitioned: Partitioned
) -> None:
    alice, bob = (node_api(cluster, n) for n in NAMES)
    links = partitioned.links
    assert walk(links, int(LIMIT) * MILLI) == []
    # Bob's 20 of round 1 was overtaken by Alice's 30 and sent again on top, under its own id.
    assert [(c["kind"], c["amount"], c["mine"], c["memo"]) for c in links] == [
        ("payment", 30_000, True, "fuel"),
        ("payment", 20_000, False, "tyres"),
        ("limit", 5_000, True, "less credit"),
    ]
    resent = links[1]["id"]
    assert resent not in {c["id"] for c in partitioned.accepted_cut_off["bob"]}
    # The 20 of round 2 would have taken Bob past Alice's 5: on neither node.
    assert "insurance" not in {c["memo"] for c in chain(bob, partitioned.thread)}
    on_alice, on_bob = tally(alice, partitioned.thread), tally(bob, partitioned.thread)
    assert (on_alice["balance"], on_bob["balance"]) == (-10_000, 10_000)
    assert (on_alice["my_limit"], on_bob["partner_limit"]) == (5_000, 5_000)
    assert on_bob["available"] == 15_000


def refused_on(api: Api, thread: str) -> list[dict[str, Any]]:
    return api.get(f"/api/v1/threads/{thread}/writes/?state=refused")["writes"]


def test_the_payment_that_no_longer_fits_is_shown_refused_to_bob_with_the_credit_reason(
    cluster: Cluster, partitioned: Partitioned
) -> None:
    bob = node_api(cluster, "bob")
    late = partitioned.accepted_cut_off["bob"][-1]["id"]

    def shown() -> list[dict[str, Any]]:
        listed = bob.get(f"/api/v1/threads/{partitioned.thread}/chits/")
        return [c for c in listed if c["state"] == "not_sent" and c["id"] == late]

    (kept,) = wait_for(shown, timeout=10, what="Bob's 20 shown to him as not sent")
    assert (kept["amount"], kept["memo"]) == (20_000, "insurance")
    assert "15.000 is available" in kept["reason"], kept["reason"]


def test_every_payment_bob_made_while_cut_off_ends_in_the_chain(cluster: Cluster) -> None:
    alice, bob = (node_api(cluster, n) for n in NAMES)
    thread = open_tally(cluster, "Weekly market", LIMIT)
    cluster.partition([["alice"], ["bob"]])
    chit(alice, thread, "payment", "10", "apples")
    chit(bob, thread, "payment", "5", "bread")
    second = chit(bob, thread, "payment", "5", "cheese")["id"]
    cluster.heal_partition()

    def settled() -> tuple[list[dict[str, Any]], list[str]] | None:
        """The agreed chain and the reasons Bob's cheese was refused for good (not 'came
        first' or 'not in the chain', which its node answers by sending it again), once it is
        in the chain or so refused."""
        links = agreed(cluster, thread, len(chain(alice, thread)))
        if not links:
            return None
        final = [
            w["reason"]
            for w in refused_on(bob, thread)
            if any(str(c["row"]).replace("-", "") == second for c in w["changes"] or ())
            and CAME_FIRST not in w["reason"]
            and NOT_IN_CHAIN not in w["reason"]
        ]
        return (links, final) if final or "cheese" in {c["memo"] for c in links} else None

    links, final = wait_for(settled, timeout=30, what="Bob's two payments settled")
    assert walk(links, int(LIMIT) * MILLI) == []
    assert [c["memo"] for c in links] == ["apples", "bread", "cheese"], final
    assert tally(alice, thread)["balance"] == 0
