"""Market search through an index between three real nodes (``runnode`` processes, each in a
network namespace of its own: ``tests/support/faults.py``'s cluster), through the HTTP API only
(issue 15 §2).

A seller lists three items; the index node turns its index on and joins the shop with the
indexer link; the buyer adds the index's link and finds an item by text and by a price range
without being in the shop, then follows the shop from the hit's link. An index that stopped is
listed with the reason while the buyer's own index still answers.

Skipped, with the reason, where namespaces cannot be made (not root, no iproute2)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.support.api import Api, wait_for
from tests.support.faults import Cluster
from tests.support.quiet_cluster import node_api, quiet_cluster

pytestmark = pytest.mark.slow

NAMES = ["seller", "index", "buyer"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    with quiet_cluster(NAMES, tmp_path_factory.mktemp("market-search")) as made:
        yield made


def search(api: Api, **params: Any) -> dict[str, Any]:
    return api.get(f"/api/v1/market/search/?{urlencode(params)}")


def titles(found: dict[str, Any]) -> list[str]:
    return sorted(hit["title"] for hit in found["hits"])


def join(api: Api, link: str) -> str:
    thread = api.post("/api/v1/invites/redeem/", {"link": link})["id"]
    wait_for(
        lambda: api.get(f"/api/v1/threads/{thread}/")["state"] == "active",
        timeout=60,
        what="the join",
    )
    return thread


def test_a_buyer_finds_listings_through_an_index_and_follows_the_shop(cluster: Cluster) -> None:
    seller, index, buyer = (node_api(cluster, name) for name in NAMES)
    shop = seller.post("/api/v1/shops/", {"name": "Ann's bikes"})["thread"]
    for title, price in (
        ("Road bicycle", 25_000),
        ("Brass bicycle bell", 1_500),
        ("Saddle", 4_000),
    ):
        seller.post(
            f"/api/v1/threads/{shop}/listings/",
            {
                "title": title,
                "summary": "Collect in Leipzig or posted",
                "price": price,
                "currency": "EUR",
                "category": "sports",
                "condition": "used",
                "place": "Leipzig",
            },
        )
    links = seller.get(f"/api/v1/threads/{shop}/shop/")["links"]

    setting = index.request("PUT", "/api/v1/market/index/", {"enabled": True, "name": "Leipzig"})
    assert setting["link"].startswith("sereus:index/")
    join(index, links["indexer"])
    known = buyer.post("/api/v1/market/indexes/", {"link": setting["link"]})
    assert known["name"] == "Leipzig"

    # By text, through the index alone: the buyer is in no shop.
    found = wait_for(
        lambda: (f := search(buyer, q="bicycle"))["hits"] and len(f["hits"]) == 2 and f,
        timeout=60,
        interval=1.0,
        what="the bicycles through the index",
    )
    assert titles(found) == ["Brass bicycle bell", "Road bicycle"]
    assert {s["name"]: s["ok"] for s in found["sources"]} == {"this node": True, "Leipzig": True}
    hit = found["hits"][0]
    assert (hit["shop"], hit["shop_name"], hit["following"]) == (shop, "Ann's bikes", False)
    # By a price range (in the currency's units), no words.
    ranged = search(buyer, min_price="10", max_price="50", currency="EUR", sort="price_asc")
    assert [h["title"] for h in ranged["hits"]] == ["Brass bicycle bell", "Saddle"]
    assert ranged["total"] == 2

    # The hit's link follows the shop; the buyer's own index then has it too.
    assert join(buyer, hit["link"]) == shop
    wait_for(
        lambda: (h := search(buyer, q="saddle")["hits"]) and all(x["following"] for x in h),
        interval=1.0,
        what="the shop followed",
    )

    # The index stops running: listed with the reason; the buyer's own index still answers.
    index.request("PUT", "/api/v1/market/index/", {"enabled": False})
    own = wait_for(
        lambda: (f := search(buyer, q="saddle"))["hits"] and f,
        interval=1.0,
        what="the saddle from the buyer's own index",
    )
    sources = {s["name"]: s for s in own["sources"]}
    assert not sources["Leipzig"]["ok"]
    assert sources["Leipzig"]["detail"] == "This node runs no market index."
    assert titles(own) == ["Saddle"]
