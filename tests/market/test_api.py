"""The market API, with the other side on a node of its own in this process: a shop opened with
its links; hostile listings (negative or absurd prices, unknown currencies) refused in words with
nothing stored; a listing with a photo; a customer's offer shown with its delivery and accepted
(the deal opens); a buyer's offers and bids on another node's shop (below the increment, on a
withdrawn listing: refused in words); a deal's steps by role, chat, invites, and a rating
refused before the end."""

from __future__ import annotations

import io
import json

import pytest
from django.test import Client
from PIL import Image

from apps.market import listing_selectors, selectors
from tests.checklist.conftest import browser, owner_user  # noqa: F401
from tests.core.threads.conftest import node, thread_databases_allowed  # noqa: F401
from tests.market.support import auction_fields, customer_join, listing_fields, sellers_shop
from tests.market.web_support import no_duties  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def api(browser) -> Client:  # noqa: F811
    return browser


def post(api: Client, url: str, body: dict | None = None):
    return api.post(url, json.dumps(body or {}), content_type="application/json")


def refused(answer, status: int, words: str) -> None:
    assert answer.status_code == status, answer.content
    body = answer.json()
    assert body["error"]
    assert words in json.dumps(body), body


BAD_LISTINGS = [
    ({"price": -500}, 400, "The price must be more than zero."),
    ({"price": 10**16}, 400, "The price is too large."),
    ({"price": "ten"}, 400, "valid integer"),
    ({"price": True}, 400, "whole number of minor units"),
    ({"currency": "ZZZ"}, 400, "currency"),
    ({"category": "weapons"}, 400, "category"),
    ({"shipping": [{"region": "BE", "price": -1, "days": 3}]}, 400, "cannot be negative"),
]


def test_a_shop_lists_and_hostile_listings_store_nothing(api):
    made = post(api, "/api/v1/shops/", {"name": "Ada's attic", "about": "Old things"})
    assert made.status_code == 201, made.content
    thread = made.json()["thread"]
    assert [s["name"] for s in api.get("/api/v1/shops/").json()] == ["Ada's attic"]
    about = api.get(f"/api/v1/threads/{thread}/shop/").json()
    assert about["role"] == "owner"
    assert about["links"]["customer"].startswith("sereus:")
    assert about["links"]["indexer"] != about["links"]["customer"]

    listings = f"/api/v1/threads/{thread}/listings/"
    for given, status, words in BAD_LISTINGS:
        refused(post(api, listings, listing_fields(**given)), status, words)
    assert api.get(listings).json() == []

    good = post(api, listings, listing_fields())
    assert good.status_code == 201, good.content
    body = good.json()
    assert (body["price"], body["price_text"], body["quantity"]) == (4500, "45.00 EUR", 3)
    changed = api.patch(
        f"{listings}{body['id']}/", json.dumps({"title": "Oak armchair"}), "application/json"
    )
    assert changed.status_code == 200, changed.content
    assert changed.json()["title"] == "Oak armchair"
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, format="PNG")
    out.seek(0)
    out.name = "chair.png"
    photo = api.post(f"{listings}{body['id']}/photos/", {"photo": out})
    assert photo.status_code == 201, photo.content
    (shown,) = photo.json()["photos"]
    assert api.get(shown["url"]).status_code == 200


def test_an_offer_shows_its_delivery_and_accepting_it_opens_the_deal(api, tmp_path):
    thread = post(api, "/api/v1/shops/", {"name": "Ada's attic"}).json()["thread"]
    listing = post(api, f"/api/v1/threads/{thread}/listings/", listing_fields()).json()["id"]
    shop_thread = selectors.thread_find(thread)
    bea = customer_join(shop_thread, tmp_path, "Bea")
    bea.receive()
    offer = bea.offer(listing, 4000, message="Today?")
    bea.send()
    url = f"/api/v1/threads/{thread}/listings/{listing}/"
    (shown,) = api.get(url).json()["offers"]
    assert (shown["buyer"], shown["price_text"], shown["accepted"]) == ("Bea", "40.00 EUR", False)
    assert isinstance(shown["delivery"], list)
    refused(post(api, f"{url}offers/{'0' * 32}/accept/"), 404, "no such offer")
    accepted = post(api, f"{url}offers/{offer}/accept/")
    assert accepted.status_code == 201, accepted.content
    assert accepted.json()["listing"]["offers"][0]["accepted"] is True
    refused(post(api, f"{url}offers/{offer}/accept/"), 409, "accepted already")
    (deal,) = api.get("/api/v1/deals/").json()
    assert (deal["state"], deal["role"], deal["price_text"]) == ("accepted", "seller", "40.00 EUR")
    whole = api.get(f"/api/v1/deals/{deal['thread']}/").json()
    assert [s["step"] for s in whole["steps"]] == ["accepted"]
    assert whole["steps"][0]["by"] == "you"


def test_a_buyers_offers_and_bids_are_refused_in_words(api, tmp_path):
    ada = sellers_shop(tmp_path)
    chair = ada.listing()
    lamp = ada.listing(**auction_fields(ends_in_ms=600_000))
    gone = ada.listing(status="withdrawn", title="Old radio")
    ada.send()
    base = f"/api/v1/threads/{ada.thread.id}/listings/"
    assert {item["title"] for item in api.get(base).json()} >= {"Oak chair", "Brass lamp"}
    refused(post(api, f"{base}{chair}/offers/", {"price": "ten"}), 400, "valid integer")
    refused(post(api, f"{base}{chair}/offers/", {"price": -1}), 400, "more than zero")
    refused(post(api, f"{base}{gone}/offers/", {"price": 100}), 409, "not for sale")
    refused(post(api, f"{base}{chair}/bids/", {"amount": 5000}), 409, "make an offer instead")
    refused(api.patch(f"{base}{chair}/", "{}", "application/json"), 403, "")
    assert listing_selectors.offers(ada.thread, chair) == []
    made = post(api, f"{base}{chair}/offers/", {"price": 4000, "quantity": 1})
    assert made.status_code == 201, made.content
    assert made.json()["listing"]["offers"][0]["mine"] is True

    refused(post(api, f"{base}{lamp}/bids/", {"amount": 500}), 409, "10.00 EUR")
    refused(post(api, f"{base}{lamp}/bids/", {}), 400, "Give an amount, a maximum, or both.")
    bid = post(api, f"{base}{lamp}/bids/", {"maximum": 2500})
    assert bid.status_code == 201, bid.content
    auction = bid.json()["listing"]["auction"]
    assert (auction["best"], auction["best_bidder"], auction["bids"]) == (1000, "you", 1)
    assert [b["amount"] for b in bid.json()["listing"]["bids"]] == [1000]


def test_deal_steps_by_role_chat_invites_and_no_rating_before_the_end(api, opened):
    deal, bob = opened
    url = f"/api/v1/deals/{deal.id}/"
    refused(post(api, url + "steps/", {"step": "received"}), 409, "Only the buyer marks")
    refused(post(api, url + "steps/", {"step": "teleported"}), 400, "not a valid choice")
    bob.step("paid", reference="bank 42")
    refused(post(api, url + "steps/", {"step": "shipped"}), 409, "carrier")
    shipped = post(api, url + "steps/", {"step": "shipped", "carrier": "Bpost", "tracking": "9"})
    assert shipped.status_code == 201, shipped.content
    body = shipped.json()
    assert [(s["step"], s["role"], s["by"]) for s in body["steps"]] == [
        ("accepted", "seller", "you"), ("paid", "buyer", "Bob"), ("shipped", "seller", "you"),
    ]  # fmt: skip
    assert all(isinstance(s["delivery"], list) for s in body["steps"])
    said = post(api, url + "messages/", {"text": "On its way"})
    assert said.json()["messages"][-1]["text"] == "On its way"
    invite = post(api, url + "invites/", {"role": "escrow"})
    assert invite.status_code == 201, invite.content
    assert invite.json()["link"].startswith("sereus:")
    refused(post(api, url + "rating/", {"overall": 5}), 409, "completed or resolved")
    refused(api.get(f"/api/v1/deals/{'ab' * 32}/"), 404, "no such thread")


def test_the_schema_documents_the_market_api(api):
    schema = api.get("/api/schema/?format=json").json()
    found = {
        op["operationId"]
        for path, ops in schema["paths"].items()
        if "/listings/" in path or "/shop" in path or "/deals/" in path
        for op in ops.values()
    }
    assert found >= {
        "shops_list", "shops_create", "shop_get", "listings_list", "listings_create",
        "listing_get", "listing_update", "listing_photos_add", "listing_offers_create",
        "listing_offer_accept", "listing_bids_create", "listing_close", "deals_list", "deal_get",
        "deal_steps_create", "deal_release", "deal_messages_create", "deal_rating_create",
        "deal_invites_create",
    }  # fmt: skip
    offer = schema["components"]["schemas"]["OfferOutput"]["properties"]
    assert "delivery" in offer


def test_the_shop_ends_an_auction_after_its_end_and_the_winners_deal_opens(api, tmp_path):
    import time

    from apps.market import services

    thread = services.shop_create(name="Ada's attic")
    lamp = services.listing_save(thread, **auction_fields(ends_in_ms=5_000))
    bea = customer_join(thread, tmp_path, "Bea")
    bea.receive()
    bea.bid(lamp, 1200)
    bea.send()
    url = f"/api/v1/threads/{thread.id}/listings/{lamp}/"
    refused(post(api, url + "close/"), 409, "")
    auction = api.get(url).json()["auction"]
    assert (auction["best"], auction["best_bidder"], auction["closed"]) == (1200, "Bea", False)
    time.sleep(max(0, auction_end(api, url) - time.time()) + 0.05)
    closed = post(api, url + "close/")
    assert closed.status_code == 200, closed.content
    body = closed.json()
    assert (body["auction"]["closed"], body["auction"]["winner"]) == (True, "Bea")
    assert (body["auction"]["price"], body["status"]) == (1200, "sold")
    (deal,) = api.get("/api/v1/deals/").json()
    assert (deal["title"], deal["price"], deal["role"]) == ("Brass lamp", 1200, "seller")


def auction_end(api: Client, url: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(api.get(url).json()["auction"]["ends_at"]).timestamp()
