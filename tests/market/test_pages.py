"""The market pages through the test client, with the other side on a node of its own in this
process: a seller opens a shop and lists with a photo (the description's Markdown rendered and
sanitised), a customer's offer shows with its delivery and is accepted on the listing page; a
buyer offers and bids on another node's shop, with bad amounts refused in words and nothing
stored; a deal's page shows its timeline, lets each side take only its own steps, chats; Market
home lists shops and deals and says what is wrong with a search. No page shows a hex id."""

from __future__ import annotations

import html
import io
import re

import pytest
from django.test import Client
from PIL import Image

from apps.market import deal_selectors, deal_views, index_duty, listing_selectors, selectors, views
from tests.checklist.conftest import browser, owner_user  # noqa: F401
from tests.core.threads.conftest import node, thread_databases_allowed  # noqa: F401
from tests.market.support import auction_fields, customer_join, sellers_shop
from tests.market.web_support import no_duties  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)

HEX_ID = re.compile(r"(?<![0-9A-Za-z])(?=[0-9A-Fa-f]*[A-Fa-f])[0-9A-Fa-f]{12,}(?![0-9A-Za-z])")


def readable(page: bytes | str) -> str:
    """What a person reads on the page, checked: no hex id, no template syntax."""
    text = page.decode() if isinstance(page, bytes) else page
    main = text.split('<main id="main"', 1)[1].split("</main>", 1)[0]
    main = re.sub(r"<(script|textarea|svg)\b.*?</\1>", " ", main, flags=re.S)
    words = html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", main)))
    assert not HEX_ID.search(words), HEX_ID.search(words)
    for syntax in ("{{", "{%", "{#"):
        assert syntax not in words
    return words


def png() -> io.BytesIO:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 80, 40)).save(out, format="PNG")
    out.seek(0)
    out.name = "chair.png"
    return out


@pytest.fixture
def client(browser) -> Client:  # noqa: F811
    return browser


def follow(client: Client, response) -> str:
    assert response.status_code == 302, response.content[:2000]
    page = client.get(response["Location"])
    assert page.status_code == 200
    return readable(page.content)


LISTING = {
    "title": "Oak chair",
    "summary": "Solid oak",
    "description": "Seat **recovered** last year.\r\n\r\n- no wobble <script>alert(1)</script>",
    "price": "45.00",
    "currency": "eur",
    "category": "home",
    "condition": "used",
    "quantity": "2",
    "status": "active",
    "tags": "chair, oak",
    "place": "Ghent",
    "shipping": "Belgium, 12, 3",
}


def test_a_seller_lists_with_a_photo_and_accepts_an_offer_on_the_listing_page(client, tmp_path):
    opened_shop = client.post("/market/shops/", {"name": "Ada's attic", "about": "Old things"})
    text = follow(client, opened_shop)
    assert "Ada's attic" in text
    assert "Share your shop" in text
    (thread,) = selectors.my_shops()
    shop_page = client.get(f"/node/threads/{thread.id}/shop/?share=indexes")
    assert "Link for indexes" in shop_page.content.decode()

    bad = client.post(f"/node/threads/{thread.id}/shop/new/", {**LISTING, "price": "-3"})
    assert bad.status_code == 400
    assert "cannot be negative" in bad.content.decode()
    assert listing_selectors.listings(thread) == []
    made = client.post(f"/node/threads/{thread.id}/shop/new/", {**LISTING, "photo": png()})
    text = follow(client, made)
    (listing,) = listing_selectors.listings(thread)
    source = client.get(made["Location"]).content.decode()
    assert "<strong>recovered</strong>" in source
    assert "<script>alert" not in source
    assert "45.00 EUR" in text
    assert "Shipping to Belgium: 12.00 EUR, 3 days" in text
    (photo,) = listing_selectors.listing(thread, listing.id).photos
    thumb = client.get(f"/node/threads/{thread.id}/shop/{listing.id}/photos/{photo.id}/thumb/")
    assert thumb.status_code == 200
    assert thumb["Content-Type"] == "image/jpeg"

    bea = customer_join(thread, tmp_path, "Bea")
    bea.receive()
    bea.offer(listing.id, 8000, quantity=2, message="Both, please")
    bea.send()
    page = readable(client.get(made["Location"]).content)
    assert "80.00 EUR for 2 from Bea" in page
    assert "“Both, please”" in page
    accept = f"/node/threads/{thread.id}/shop/{listing.id}/offers/"
    offer = listing_selectors.listing(thread, listing.id).offers[0]
    text = follow(client, client.post(f"{accept}{offer.id}/accept/"))
    assert "Accepted: the deal is open" in text
    assert "Sold to Bea for 80.00 EUR" in text
    (deal,) = deal_selectors.my_deals()
    deal_page = readable(client.get(f"/node/threads/{deal.id}/deal/").content)
    assert "Accepted: waiting for the buyer to pay." in deal_page
    assert "Cancel the deal" in deal_page
    assert "Mark shipped" not in deal_page


def test_a_customer_cannot_edit_and_bad_offers_and_bids_store_nothing(client, tmp_path):
    ada = sellers_shop(tmp_path)
    chair = ada.listing()
    lamp = ada.listing(**auction_fields(ends_in_ms=600_000))
    ada.send()
    base = f"/node/threads/{ada.thread.id}/shop/"
    assert client.get(f"{base}{chair}/edit/").status_code == 404
    assert client.get(f"{base}new/").status_code == 404
    page = readable(client.get(f"{base}{chair}/").content)
    assert "Make an offer" in page
    assert "Edit" not in page

    offer = f"{base}{chair}/offer/"
    for price, said in (
        ("-3", "cannot be negative"),
        ("ten", "must be a number"),
        ("1.234", "can have at most 2 decimals"),
    ):
        text = follow(client, client.post(offer, {"offer-price": price, "offer-quantity": "1"}))
        assert f"No offer was made: The price {said}" in text
    assert listing_selectors.offers(ada.thread, chair) == []
    text = follow(client, client.post(offer, {"offer-price": "40,50", "offer-quantity": "1"}))
    assert "Your offer is made" in text
    assert "40.50 EUR" in text
    (offer,) = listing_selectors.offers(ada.thread, chair)
    assert (offer.price, offer.mine) == (4050, True)

    text = follow(client, client.post(f"{base}{lamp}/bid/", {"bid-amount": "5"}))
    assert "No bid was made:" in text
    assert "10.00 EUR" in text
    text = follow(client, client.post(f"{base}{lamp}/bid/", {"bid-amount": "12"}))
    assert "Your bid is in." in text
    assert "12.00 EUR by you" in text
    assert [b.amount for b in listing_selectors.listing(ada.thread, lamp).bids] == [1200]
    text = follow(client, client.post(f"{base}{lamp}/bid/", {"bid-maximum": "20"}))
    assert "Your node bids for you up to 20.00 EUR; nobody else sees that maximum." in text
    # What the listing's socket sends: the auction and its bids, as an out-of-band swap.
    live = views.listing_live_html(ada.thread, lamp, "token")
    assert 'id="listing-live" hx-swap-oob="true"' in live
    assert "12.00 EUR by you" in readable(f'<main id="main">{live}</main>')
    assert "Brass lamp" in views.shop_live_html(ada.thread, "token")
    assert "Bid" in readable(client.get(f"{base}{lamp}/").content)


def test_the_deal_page_takes_each_sides_steps_and_chats(client, opened):
    deal, bob = opened
    url = f"/node/threads/{deal.id}/deal/"
    assert "Mark shipped" not in readable(client.get(url).content)
    bob.step("paid", reference="bank 42")
    page = readable(client.get(url).content)
    assert "Paid: waiting for the seller to ship." in page
    assert "Payment reference: bank 42" in page
    assert "by Bob (the buyer)" in page
    assert "Mark shipped" in page
    assert "I received it" not in page

    refused = client.post(url + "step/", {"step": "received", "received-step": "received"})
    assert "Nothing changed" in follow(client, refused)
    empty = {"step": "shipped", "shipped-step": "shipped", "shipped-carrier": ""}
    assert "carrier" in follow(client, client.post(url + "step/", empty)).lower()
    shipped = {**empty, "shipped-carrier": "Bpost", "shipped-tracking": "CD123"}
    text = follow(client, client.post(url + "step/", shipped))
    assert "Marked shipped." in text
    assert "Sent with Bpost, tracking CD123." in text
    assert "by you (the seller)" in text
    text = follow(client, client.post(url + "message/", {"text": "On its way!"}))
    assert "On its way!" in text
    bob.receive()
    bob.step("received")
    assert "Complete the deal" not in readable(client.get(url).content)  # not silent yet
    bob.step("completed")
    text = readable(client.get(url).content)
    assert "Completed." in text
    assert "Rate the deal" in text
    rated = {"rating-overall": "5", "rating-communication": "4", "rating-comment": "Quick"}
    text = follow(client, client.post(url + "rating/", rated))
    assert "Thank you: your rating is in the deal." in text
    assert "You: 5 of 5 stars" in text
    assert "Rate the deal" not in text
    assert "Invite an escrow agent" not in text  # the deal has ended
    parts = deal_views.deal_live_parts(deal, "token")
    assert all('hx-swap-oob="true"' in html for html in parts.values())
    invited = client.post(url + "invite/", {"role": "escrow"})
    assert invited.status_code == 200
    assert "sereus:" in invited.content.decode()


def test_market_home_lists_shops_and_deals_and_says_what_is_wrong_with_a_search(
    client,
    opened,
):
    client.post("/market/shops/", {"name": "Ada's attic"})
    page = readable(client.get("/market/").content)
    assert "Ada's attic" in page
    assert "A red bicycle" in page
    assert "120.00 EUR" in page
    wrong = readable(client.get("/market/", {"q": "chair", "min_price": "cheap"}).content)
    assert "The lowest price must be a number" in wrong


def test_a_search_finds_a_listing_of_a_shop_this_node_follows(client, tmp_path):
    ada = sellers_shop(tmp_path)
    chair = ada.listing()
    ada.listing(title="Brass lamp", price=900)
    ada.send()
    index_duty.refresh_now()  # what the index's duty does a moment after the ops arrive
    page = readable(
        client.get(
            "/market/", {"q": "oak chair", "min_price": "20", "max_price": "50", "currency": "eur"}
        ).content
    )
    assert "Oak chair" in page
    assert "45.00 EUR · Ghent · Ada's attic" in page
    assert "Brass lamp" not in page
    assert (
        f"/node/threads/{ada.thread.id}/shop/{chair}/"
        in client.get("/market/", {"q": "chair"}).content.decode()
    )
    assert "Nothing found." in readable(client.get("/market/", {"q": "piano"}).content)


def test_editing_an_auction_with_bids_keeps_its_terms_and_changes_its_title(client, tmp_path):
    from apps.market import services
    from tests.market.support import auction_fields as terms

    thread = services.shop_create(name="Ada's attic")
    lamp = services.listing_save(thread, **terms(ends_in_ms=3_600_000))
    bea = customer_join(thread, tmp_path, "Bea")
    bea.receive()
    bea.bid(lamp, 1000)
    bea.send()
    edit = f"/node/threads/{thread.id}/shop/{lamp}/edit/"
    shown = client.get(edit)
    form = shown.context["form"]
    data = {name: value for name, value in form.initial.items() if value is not None}
    assert data["auction"] is True
    assert data["increment"] == "1.00"
    data["title"] = "Brass lamp, working"
    text = follow(client, client.post(edit, data))
    assert "Saved." in text
    assert "Brass lamp, working" in text
    moved = {**data, "increment": "2.00"}
    refused = client.post(edit, moved)
    assert refused.status_code == 400
    assert "has bids" in refused.content.decode()
    assert listing_selectors.listing(thread, lamp).auction.terms.increment == 100


def test_home_says_what_waits_in_a_shop_and_a_deal(client, tmp_path, opened):
    from apps.market import home, services
    from tests.market.support import listing_fields

    thread = services.shop_create(name="Ada's attic")
    chair = services.listing_save(thread, **listing_fields())
    bea = customer_join(thread, tmp_path, "Bea")
    bea.receive()
    bea.offer(chair, 4000)
    bea.send()
    assert home.shop_waiting(thread) == ["1 offer to answer"]
    deal, bob = opened
    assert home.deal_waiting(deal) == []
    bob.step("paid")
    assert home.deal_waiting(deal) == ["waiting for you to ship"]
    assert home.deal_latest(deal).text == "Bob: paid"
