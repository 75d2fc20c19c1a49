"""The market between four real nodes (``runnode`` processes, each in a network namespace of its
own: ``tests/support/faults.py``'s cluster), through the HTTP API only (issue 15, Acceptance).

- A seller lists three items; an index node joins the shop with the indexer link; a buyer that
  knows the index (its link) finds an item by text and by price range without following the
  shop, follows it from the hit, offers; the seller accepts, which opens the deal; the deal
  goes paid -> shipped -> received -> completed (a buyer cannot ship, a seller cannot receive,
  nobody rates before the end); both rate; a fourth node following the shop sees the seller's
  score, computed from the buyer's signed rating copied into the shop.
- An auction between two bidders on two nodes: a bid below the increment is refused in words;
  both bid at once near the end; one bidder's node is cut off and bids again, its own node
  taking the bid; the seller's node closes the auction without it. Once healed every replica
  (seller, index, both bidders) shows the same winner and price, the cut-off node's bid is
  refused there too, and a bid after the close is refused in words.

Skipped, with the reason, where namespaces cannot be made (not root, no iproute2)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.support.api import Api, ApiError, wait_for
from tests.support.faults import Cluster
from tests.support.quiet_cluster import node_api, quiet_cluster

pytestmark = pytest.mark.slow

NAMES = ["seller", "index", "buyer", "follower"]
REFUSED = (400, 403, 409)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    with quiet_cluster(NAMES, tmp_path_factory.mktemp("market-nodes")) as made:
        yield made


def refusal(call: Any) -> str:
    """The words of a refused call (it must be refused, as a person's mistake)."""
    with pytest.raises(ApiError) as refused:
        call()
    body = refused.value.body
    detail = body.get("detail", "") if isinstance(body, dict) else str(body)
    assert refused.value.status in REFUSED, body
    assert detail, body
    return str(detail)


def join(api: Api, link: str) -> str:
    """Redeem ``link`` and wait until the thread is active here; its id."""
    thread = api.post("/api/v1/invites/redeem/", {"link": link})["id"]
    wait_for(
        lambda: api.get(f"/api/v1/threads/{thread}/")["state"] == "active",
        timeout=60,
        what="the join",
    )
    return thread


def follow(api: Api, shop: dict[str, Any]) -> None:
    """Follow the shop (its customers' link), unless this node does already."""
    try:
        api.get(f"/api/v1/threads/{shop['thread']}/")
    except ApiError as exc:
        if exc.status != 404:
            raise
        join(api, shop["links"]["customer"])


@pytest.fixture(scope="module")
def shop(cluster: Cluster) -> dict[str, Any]:
    """The seller's shop, with its customers' and its index's links; the index node runs an
    index and has joined the shop with the indexer link (``index_link``: the index's own)."""
    seller, index = node_api(cluster, "seller"), node_api(cluster, "index")
    made = seller.post("/api/v1/shops/", {"name": "Ann's bikes", "about": "Used bikes and parts"})
    found = seller.get(f"/api/v1/threads/{made['thread']}/shop/")
    setting = index.request("PUT", "/api/v1/market/index/", {"enabled": True, "name": "Town"})
    join(index, found["links"]["indexer"])
    return found | {"index_link": setting["link"]}


def listing(api: Api, shop: str, item: str) -> dict[str, Any] | None:
    try:
        return api.get(f"/api/v1/threads/{shop}/listings/{item}/")
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise


def search(api: Api, **params: Any) -> list[dict[str, Any]]:
    return api.get(f"/api/v1/market/search/?{urlencode(params)}")["hits"]


def item(title: str, price: int, **more: Any) -> dict[str, Any]:
    return {
        "title": title,
        "summary": f"{title}, collect in Leipzig or posted",
        "price": price,
        "currency": "EUR",
        "category": "sports",
        "condition": "used",
        "place": "Leipzig",
        **more,
    }


def deal_on(api: Api, listing_id: str) -> dict[str, Any] | None:
    found = [d for d in api.get("/api/v1/deals/") if d["listing"] == listing_id]
    return api.get(f"/api/v1/deals/{found[0]['thread']}/") if found else None


def step(api: Api, deal: str, name: str, **fields: Any) -> dict[str, Any]:
    return api.post(f"/api/v1/deals/{deal}/steps/", {"step": name, **fields})


def state_is(api: Api, deal: str, state: str) -> bool:
    return api.get(f"/api/v1/deals/{deal}/")["state"] == state


def test_a_buyer_finds_through_an_index_buys_and_rates_and_a_follower_sees_the_score(
    cluster: Cluster, shop: dict[str, Any]
) -> None:
    seller, buyer, follower = (node_api(cluster, name) for name in ("seller", "buyer", "follower"))
    thread = shop["thread"]
    listings = f"/api/v1/threads/{thread}/listings/"
    made = {
        title: seller.post(listings, item(title, price))["id"]
        for title, price in (
            ("Vintage road bicycle", 25_000),
            ("Brass bicycle bell", 1_500),
            ("Leather saddle", 4_000),
        )
    }
    with ThreadPoolExecutor(2) as pool:  # the follower joins meanwhile
        following = pool.submit(follow, follower, shop)
        buyer.post("/api/v1/market/indexes/", {"link": shop["index_link"]})

        # Found through the index alone: the buyer is not in the shop.
        hits = wait_for(
            lambda: search(buyer, q="saddle"), timeout=30, what="the saddle through the index"
        )
        assert [(h["listing"], h["title"], h["following"]) for h in hits] == [
            (made["Leather saddle"], "Leather saddle", False)
        ]
        ranged = search(buyer, q="", min_price="10", max_price="50", currency="EUR")
        assert sorted(h["title"] for h in ranged) == ["Brass bicycle bell", "Leather saddle"]
        following.result()

    join(buyer, hits[0]["link"])
    saddle = made["Leather saddle"]
    wait_for(lambda: listing(buyer, thread, saddle), what="the listing on the buyer's node")
    offers = f"{listings}{saddle}/offers/"
    offer = buyer.post(offers, {"price": 3_500, "message": "Would you take 35?"})["id"]
    # The buyer's node says when the seller's device holds the offer.
    wait_for(
        lambda: any(
            o["id"] == offer and any(d["holds"] for d in o["delivery"])
            for o in listing(buyer, thread, saddle)["offers"]
        ),
        what="the offer delivered to the seller's device",
    )
    seller.post(f"{offers}{offer}/accept/")
    deal = wait_for(lambda: deal_on(buyer, saddle), timeout=30, what="the deal on the buyer")
    deal_id = deal["thread"]
    assert deal["role"] == "buyer"
    assert deal["price"] == 3_500

    words = refusal(lambda: step(buyer, deal_id, "shipped", carrier="DHL", tracking="1"))
    assert "seller" in words
    step(buyer, deal_id, "paid", reference="transfer 2026-12-06")
    wait_for(lambda: state_is(seller, deal_id, "paid"), what="paid on the seller's node")
    step(seller, deal_id, "shipped", carrier="DHL", tracking="00340434161094042557")
    words = refusal(lambda: step(seller, deal_id, "received"))
    assert "buyer" in words
    wait_for(lambda: state_is(buyer, deal_id, "shipped"), what="shipped on the buyer's node")
    step(buyer, deal_id, "received")
    refusal(lambda: buyer.post(f"/api/v1/deals/{deal_id}/rating/", {"overall": 5}))
    step(buyer, deal_id, "completed")
    wait_for(lambda: state_is(seller, deal_id, "completed"), what="completed on the seller")

    buyer.post(
        f"/api/v1/deals/{deal_id}/rating/",
        {"overall": 5, "as_described": 5, "communication": 4, "shipping": 5, "comment": "Fine"},
    )
    seller.post(f"/api/v1/deals/{deal_id}/rating/", {"overall": 4})
    ratings = wait_for(
        lambda: len(r := seller.get(f"/api/v1/deals/{deal_id}/")["ratings"]) == 2 and r,
        what="both ratings on the seller's node",
    )
    assert sorted(r["overall"] for r in ratings) == [4, 5]

    # The follower never dealt with anyone: it recomputes the seller's score from the rating
    # the buyer's node copied into the shop (citing the deal's completion).
    score = wait_for(
        lambda: (s := follower.get(f"/api/v1/threads/{thread}/shop/")["score"])["count"] and s,
        timeout=45,
        what="the seller's score on the follower's node",
    )
    assert score == {"count": 1, "overall": "5.00"}
    assert seller.get(f"/api/v1/threads/{thread}/shop/")["score"] == score


# -- the auction ----------------------------------------------------------------------------------

BIDDERS = ("buyer", "follower")
REPLICAS = ("seller", "index", "buyer", "follower")


def winner(found: dict[str, Any] | None) -> tuple[int, str] | None:
    """A closed auction's price and the id of the bid that won it, as one replica holds it."""
    if not found or not found["auction"]["closed"]:
        return None
    price = found["auction"]["price"]
    best = [b["id"] for b in found["bids"] if b["amount"] == price]
    return (price, best[0]) if len(best) == 1 else None


def standing(
    apis: dict[str, Api], names: tuple[str, ...], thread: str, made: str
) -> tuple[int, int, bool] | None:
    """The best bid and the bid count, when these nodes agree on them, and whether the buyer
    (``mine`` on its node) leads."""
    found = {name: listing(apis[name], thread, made) for name in names}
    seen = {(f["auction"]["best"], f["auction"]["bids"]) for f in found.values()}
    if len(seen) != 1:
        return None
    ((best, count),) = seen
    leads = any(b["mine"] and b["amount"] == best for b in found["buyer"]["bids"])
    return best, count, leads


def bid(api: Api, path: str, amount: int) -> str | None:
    """A bid's id, or None when this node refused it (outbid meanwhile, or closed)."""
    try:
        return api.post(path, {"amount": amount})["id"]
    except ApiError as exc:
        if exc.status in REFUSED:
            return None
        raise


def test_an_auction_ends_alike_everywhere_and_late_bids_are_refused(
    cluster: Cluster, shop: dict[str, Any]
) -> None:
    apis = {name: node_api(cluster, name) for name in NAMES}
    thread = shop["thread"]
    for name in BIDDERS:
        follow(apis[name], shop)
    ends = time.time() + 10
    terms = {"increment": 100, "ends_at": datetime.fromtimestamp(ends, tz=UTC).isoformat()}
    made = apis["seller"].post(
        f"/api/v1/threads/{thread}/listings/", item("Track bicycle", 1_000, auction=terms)
    )["id"]
    for name in REPLICAS:
        wait_for(lambda n=name: listing(apis[n], thread, made), what=f"the auction on {name}")
    bids = f"/api/v1/threads/{thread}/listings/{made}/bids/"

    assert bid(apis["buyer"], bids, 1_000) is not None
    wait_for(
        lambda: listing(apis["follower"], thread, made)["auction"]["bids"] == 1,
        what="the first bid on the follower's node",
    )
    words = refusal(lambda: apis["follower"].post(bids, {"amount": 1_050}))
    assert "11.00" in words or "increment" in words
    assert listing(apis["follower"], thread, made)["auction"]["bids"] == 1  # nothing stored

    # Near the end both bid at once, each the least its own node would take, a few times.
    while time.time() < ends - 5:
        time.sleep(0.2)

    def bid_least(name: str) -> str | None:
        found = listing(apis[name], thread, made)
        return bid(apis[name], bids, found["auction"]["minimum_bid"])

    with ThreadPoolExecutor(2) as pool:
        for _ in range(3):
            list(pool.map(bid_least, BIDDERS))
    # Both bidders' nodes settle on one standing, and the buyer leads (one more bid if not).
    settled = wait_for(lambda: standing(apis, BIDDERS, thread, made), what="the bidders to agree")
    if not settled[2]:
        bid_least("buyer")
        wait_for(lambda: (s := standing(apis, BIDDERS, thread, made)) and s[2], what="the lead")

    # The follower's node is cut off, and outbids the buyer before the end: its node takes it.
    cluster.partition([["seller", "index", "buyer"], ["follower"]])
    late = bid_least("follower")
    assert late is not None
    while time.time() < ends + 0.5:
        time.sleep(0.2)

    # The seller's node closes the auction (unless its duty did already) without that bid.
    try:
        apis["seller"].post(f"/api/v1/threads/{thread}/listings/{made}/close/")
    except ApiError as exc:
        if exc.status != 409:  # closed already
            raise
    closed = wait_for(
        lambda: winner(listing(apis["seller"], thread, made)), what="the close on the seller"
    )
    assert closed[1] != late
    wait_for(
        lambda: winner(listing(apis["buyer"], thread, made)) == closed, what="the close on buyer"
    )
    words = refusal(lambda: apis["buyer"].post(bids, {"amount": closed[0] + 500}))
    assert any(word in words for word in ("closed", "ended", "not for sale")), words

    cluster.heal_partition()
    for name in REPLICAS:
        wait_for(
            lambda n=name: winner(listing(apis[n], thread, made)) == closed,
            timeout=30,
            what=f"{name} to agree on the winner",
        )
    for name in REPLICAS:
        found = listing(apis[name], thread, made)
        assert late not in [b["id"] for b in found["bids"]], name
        assert max(b["amount"] for b in found["bids"]) == closed[0]
