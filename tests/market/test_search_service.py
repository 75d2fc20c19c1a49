"""This node's market index following its shops (whole, then by the rows new ops wrote), index
links (this node's, and the indexes it asks), the buyer's search with an index that cannot be
reached, and the search API."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import nacl.signing
import pytest
from django.urls import include, path

from apps.core.identity import peer_id_from_public_key
from apps.core.models import Thread
from apps.core.thread import codec
from apps.core.threads.services import ThreadServiceError
from apps.market import index_duty, search_api_urls, search_service, services
from apps.market.index_links import link_parse
from apps.market.models import KnownIndex
from apps.market.search_query import Query
from apps.p2p.state import P2PState, state_save
from sereus_web.app_routes import API_URLS
from tests.core.threads.conftest import node, thread_databases_allowed  # noqa: F401
from tests.market.support import listing_fields, sellers_shop
from tests.support.api import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

ADDRS = ("/ip4/127.0.0.1/tcp/4001",)


@pytest.fixture
def fresh_index(node: Any, data_dir: Path):  # noqa: F811
    from apps.core.threads.signals import ops_written, thread_added

    # These tests run the index's duty themselves: the worker must not run it meanwhile (a
    # whole read of its own, woken by the test's writes, would race the test's).
    ops_written.disconnect(dispatch_uid="market-index-ops")
    thread_added.disconnect(dispatch_uid="market-index-added")
    index_duty.forget()
    state_save(data_dir, P2PState(port=4001, addrs=ADDRS))
    yield index_duty.index()
    index_duty.forget()
    index_duty.connect()


def found(text: str = "", **fields: Any) -> list[tuple[str, int, str]]:
    hits = index_duty.index().search(Query(text=text, sort="price_asc", **fields))
    return [(h.title, h.price, h.shop_name) for h in hits]


def other_link(name: str = "Ghent index", **doc: Any) -> str:
    key = nacl.signing.SigningKey.generate()
    values = {
        "v": 1,
        "peer": peer_id_from_public_key(bytes(key.verify_key)),
        "addrs": ["/ip4/192.0.2.7/tcp/4001"],
        "name": name,
        **doc,
    }
    return "sereus:index/" + base64.urlsafe_b64encode(codec.encode(values)).rstrip(b"=").decode()


def test_the_index_follows_a_shop_by_the_rows_new_ops_wrote(fresh_index) -> None:
    shop = services.shop_create(name="Ada's attic")
    chair = services.listing_save(shop, **listing_fields(title="Oak chair", price=4500))
    services.listing_save(shop, **listing_fields(title="Oak table", status="draft"))
    assert index_duty.index_shop(shop) == 1
    assert found("oak") == [("Oak chair", 4500, "Ada's attic")]
    whole_read_at = index_duty._marks[shop.thread][1]

    services.listing_save(shop, listing=chair, price=3900)
    services.shop_update(shop, name="Ada's old things")
    assert index_duty.index_shop(shop) == 1
    assert found("oak") == [("Oak chair", 3900, "Ada's old things")]
    assert index_duty._marks[shop.thread][1] == whole_read_at, "followed, not read again whole"

    services.listing_save(shop, listing=chair, status="withdrawn")
    index_duty.index_shop(shop)
    assert found("oak") == []
    # Served to other nodes: the owner's own shop.
    hits, total = index_duty.index().search_page(Query(), served_only=True)
    assert (hits, total) == ([], 0)


def test_ops_keep_the_index_fresh_on_their_own_and_a_shop_left_leaves_it(fresh_index) -> None:
    index_duty.connect()
    shop = services.shop_create(name="Ada's attic")
    services.listing_save(shop, **listing_fields(title="Brass lamp", price=1200))
    wait_for(lambda: found("brass"), timeout=10, what="the listing in the index")
    Thread.objects.filter(pk=shop.id).update(state=Thread.State.LEFT)
    index_duty.refresh_stale(force=True)
    assert found("brass") == []


def test_a_followed_shop_is_searched_here_but_not_served(fresh_index, tmp_path: Path) -> None:
    seller = sellers_shop(tmp_path, "Bea's")
    seller.listing(title="Green sofa", price=20_000, lat=51.05, lon=3.72)
    seller.send()
    index_duty.refresh_now()
    assert found("sofa") == [("Green sofa", 20_000, "Bea's")]
    hit = index_duty.index().search(Query(text="sofa"))[0]
    assert hit.link.startswith("sereus:invite/")
    assert index_duty.index().search(Query(text="sofa"), served_only=True) == []
    near = index_duty.index().search(Query(near=(51.0, 3.7), radius_km=10))
    assert [h.title for h in near] == ["Green sofa"]


def test_index_links(fresh_index) -> None:
    with pytest.raises(ThreadServiceError) as off:
        search_service.index_link()
    assert off.value.code == "not_enabled"
    search_service.index_enable(True, "  Ghent\n index ")
    link = search_service.index_link()
    peer, addrs, name = link_parse(link)
    assert (addrs, name) == (list(ADDRS), "Ghent index")
    with pytest.raises(ThreadServiceError, match="this node's own index"):
        search_service.index_add(link)

    added = search_service.index_add(other_link())
    assert added.name == "Ghent index"
    again = search_service.index_add(other_link(name="Renamed", peer=added.peer))
    assert (again.pk, again.name) == (added.pk, "Renamed")
    assert [k.peer for k in search_service.known_indexes()] == [added.peer]
    search_service.index_remove(added.peer)
    with pytest.raises(ThreadServiceError) as gone:
        search_service.index_remove(added.peer)
    assert gone.value.code == "not_found"
    assert peer != added.peer


@pytest.mark.parametrize(
    ("link", "words"),
    [
        ("https://example.org/index", "not a market index link"),
        ("sereus:index/!!!", "damaged"),
        ("sereus:index/" + "A" * 4000, "too long"),
        (other_link(v=2), "version"),
        (other_link(peer="QmNotAnEd25519Key"), "peer id is not valid"),
        (other_link(addrs=[]), "no address"),
        (other_link(addrs=["/ip4/1.2.3.4/udp/1"]), "no address"),
        (other_link(addrs=["x" * 300]), "no address"),
        (other_link(name="bell\x07"), "plain text"),
        (other_link(name="n" * 101), "at most 100"),
        (other_link(extra=1), "damaged"),
    ],
)
def test_a_bad_index_link_is_refused_in_words(fresh_index, link: str, words: str) -> None:
    with pytest.raises(ThreadServiceError, match=words) as caught:
        search_service.index_add(link)
    assert caught.value.code == "invalid"
    assert not KnownIndex.objects.exists()


def test_a_search_lists_an_index_that_does_not_answer(fresh_index) -> None:
    shop = services.shop_create(name="Ada's attic")
    services.listing_save(shop, **listing_fields(title="Oak chair"))
    index_duty.refresh_now()
    search_service.index_add(other_link())
    result = search_service.search(Query(text="chair"))
    assert [h.title for h in result.hits] == ["Oak chair"]
    assert result.hits[0].link.startswith("sereus:invite/")
    assert [(s.name, s.ok) for s in result.sources] == [
        ("this node", True),
        ("Ghent index", False),
    ]
    assert result.sources[1].words  # in words: this test process runs no p2p host
    assert KnownIndex.objects.get().last_error == result.sources[1].words


def test_a_damaged_own_index_is_said_so(node: Any, data_dir: Path) -> None:  # noqa: F811
    index_duty.forget()
    (data_dir / index_duty.INDEX_FILE).write_bytes(b"not a database, " * 512)
    try:
        result = search_service.search(Query(text="chair"))
    finally:
        index_duty.forget()
    assert result.hits == []
    assert [(s.name, s.ok) for s in result.sources] == [("this node", False)]
    assert "could not be read" in result.sources[0].words


# -- the API ---------------------------------------------------------------------------------------

# The project's URLs once ``sereus_web.app_routes`` lists the search API; until then these.
urlpatterns = [
    path("api/v1/", include((search_api_urls.api_urlpatterns, "api"))),
]
_URLS = [] if "apps.market.search_api_urls" in API_URLS else [pytest.mark.urls(__name__)]


@pytest.mark.parametrize("_urls", [pytest.param(None, marks=_URLS)])
def test_the_search_api(fresh_index, owner_client, _urls) -> None:
    shop = services.shop_create(name="Ada's attic")
    for title, price in (("Oak chair", 4500), ("Oak table", 12_000), ("Pine chair", 3000)):
        services.listing_save(shop, **listing_fields(title=title, price=price, lat=51.05, lon=3.72))
    index_duty.refresh_now()
    body = owner_client.get(
        "/api/v1/market/search/",
        {"q": "chair", "currency": "EUR", "max_price": "40", "near": "51.0,3.7"},
    ).json()
    assert [h["title"] for h in body["hits"]] == ["Pine chair"]
    hit = body["hits"][0]
    assert (hit["price"], hit["shop_name"], hit["following"]) == (3000, "Ada's attic", True)
    assert 5 < hit["distance_km"] < 7
    assert body["total"] == 1
    assert body["sources"] == [{"name": "this node", "peer": "", "ok": True, "detail": ""}]

    bad = owner_client.get("/api/v1/market/search/", {"min_price": "-3", "currency": "EUR"})
    assert bad.status_code == 400
    assert bad.json() == {"error": "invalid", "detail": "The lowest price cannot be negative."}
    assert owner_client.get("/api/v1/market/search/", {"page": "21"}).status_code == 400


@pytest.mark.parametrize("_urls", [pytest.param(None, marks=_URLS)])
def test_the_index_apis(fresh_index, owner_client, _urls) -> None:
    setting = owner_client.get("/api/v1/market/index/").json()
    assert setting == {"enabled": False, "name": "", "link": None}
    turned = owner_client.put(
        "/api/v1/market/index/",
        {"enabled": True, "name": "Ghent index"},
        content_type="application/json",
    ).json()
    assert turned["enabled"]
    assert link_parse(turned["link"])[2] == "Ghent index"

    made = owner_client.post(
        "/api/v1/market/indexes/", {"link": other_link("Bruges")}, content_type="application/json"
    )
    assert made.status_code == 201
    peer = made.json()["peer"]
    listed = owner_client.get("/api/v1/market/indexes/").json()
    assert [(k["peer"], k["name"], k["addrs"]) for k in listed] == [
        (peer, "Bruges", ["/ip4/192.0.2.7/tcp/4001"])
    ]
    refused = owner_client.post(
        "/api/v1/market/indexes/", {"link": "sereus:index/xx"}, content_type="application/json"
    )
    assert refused.status_code == 400
    assert "damaged" in refused.json()["detail"]
    assert owner_client.delete(f"/api/v1/market/indexes/?peer={peer}").status_code == 204
    missing = owner_client.delete(
        "/api/v1/market/indexes/", {"peer": peer}, content_type="application/json"
    )
    assert missing.status_code == 404
    assert json.loads(missing.content)["error"] == "not_found"
