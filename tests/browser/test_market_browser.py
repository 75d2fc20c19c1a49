"""The market between two real nodes in a real browser (Debian's Chromium through Playwright),
the issue's acceptance: Alice, on her desktop, opens a shop and lists an oak chair with a photo,
then runs a market index on her node; Bob, on his phone, adds her index by its link, searches
"oak chair", follows the shop from the hit, opens the listing and makes an offer; Alice's open
listing page shows the offer without a reload, with whether Bob's node has it, and she accepts
it there; Bob's node joins the deal by itself; on the deal's page Bob marks it paid and Alice's
open page shows it without a reload, Alice marks it shipped and Bob's open page shows that the
same way. Every page is checked as a person sees it (nothing wider than the screen, no template
syntax, no hex id, no empty label or nameless button, axe-core finds nothing serious);
screenshots are saved under /tmp/sereus-market/ to be looked at."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import pytest
from PIL import Image

from tests.browser.test_ledger_browser import DESKTOP, PHONE, click
from tests.browser.test_look import AXE, AXE_RUN, FINDINGS
from tests.browser.test_messaging_browser import (  # noqa: F401 - fixtures
    Person,
    browser,
    claimed,
    live_ready,
    peers,
)
from tests.browser.test_pwa_browser import NEEDS_CHROMIUM
from tests.support.api import ApiError, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow, NEEDS_CHROMIUM]

SHOTS = Path(tempfile.gettempdir()) / "sereus-market"


def looks_right(person: Person, shot: str) -> None:
    """The page as a person sees it, checked; a full-page screenshot to look at."""
    page = person.page
    found = page.evaluate(FINDINGS)
    found["axe"] = page.evaluate(AXE_RUN)
    assert not [e for e in person.errors if "Content Security" in e or "CSP" in e], person.errors
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(SHOTS / f"{shot}.png"), full_page=True)
    assert found == {"overflow": [], "template": [], "hex": [], "labels": [], "axe": []}, found


def photo(folder: Path) -> Path:
    path = folder / "oak-chair.png"
    out = io.BytesIO()
    image = Image.new("RGB", (640, 480), (150, 105, 60))
    for x in range(200, 440):
        for y in range(120, 360, 40):
            image.putpixel((x, y), (90, 60, 30))
    image.save(out, format="PNG")
    path.write_bytes(out.getvalue())
    return path


def deals_on(peer) -> list[dict]:
    try:
        return peer.api.get("/api/v1/deals/")
    except ApiError:
        return []


def test_a_listing_found_through_an_index_is_offered_on_accepted_and_its_deal_moves_live(
    peers,  # noqa: F811
    browser,  # noqa: F811
    tmp_path,
) -> None:
    SHOTS.mkdir(exist_ok=True)
    node_a, node_b = peers
    alice = claimed(browser, "alice", node_a)
    bob = claimed(browser, "bob", node_b)
    for person, size, name in ((alice, DESKTOP, "Alice"), (bob, PHONE, "Bob")):
        person.context.add_init_script(path=str(AXE))
        person.page.set_viewport_size(size)
        person.peer.api.request("PUT", "/api/v1/node/name/", {"name": name})

    # Alice opens a shop and lists a chair with a photo.
    alice.page.goto(alice.url + "/market/")
    shops = alice.page.locator("#shops")
    shops.get_by_label("Shop name").fill("Alice's attic")
    click(alice.page, shops.get_by_role("button", name="Open a shop"))
    looks_right(alice, "shop-new-desktop")
    click(alice.page, alice.page.get_by_role("link", name="New listing"))
    editor = alice.page.locator("#listing-form")
    editor.get_by_label("Title").fill("Oak chair")
    editor.get_by_label("Summary").fill("Solid oak, seat recovered last year")
    editor.get_by_label("Description").fill(
        "A sturdy **oak** chair.\n\n- seat recovered\n- no wobble"
    )
    editor.get_by_label("Price").fill("45")
    editor.get_by_label("Category").select_option("home")
    editor.get_by_label("Condition").select_option("used")
    editor.get_by_label("Place").fill("Ghent")
    editor.get_by_label("Shipping").fill("Belgium, 12, 3")
    editor.get_by_label("Add a photo").set_input_files(str(photo(tmp_path)))
    looks_right(alice, "listing-editor-desktop")
    click(alice.page, editor.get_by_role("button", name="List it"))
    assert alice.page.get_by_text("Listed.").is_visible()
    assert alice.page.locator(".listing-photos img").first.is_visible()
    listing_url = alice.page.url
    looks_right(alice, "listing-desktop")
    click(alice.page, alice.page.get_by_role("link", name="Alice's attic"))
    card = alice.page.locator("#shop-live .listing-card")
    assert card.get_by_role("link", name="Oak chair").is_visible()
    assert card.locator("img").is_visible()
    looks_right(alice, "shop-desktop")

    # Alice's node runs an index; its link goes to Bob.
    alice.page.goto(alice.url + "/market/")
    run = alice.page.locator("#run-index")
    run.get_by_label("Run a market index on this node").check()
    run.get_by_label("The index's name").fill("Alice's index")
    click(alice.page, run.get_by_role("button", name="Save"))
    index_link = alice.page.locator("#run-index textarea").input_value()
    looks_right(alice, "market-home-desktop")

    # Bob, on his phone, adds the index and searches through it.
    bob.page.goto(bob.url + "/market/")
    indexes = bob.page.locator("#indexes")
    indexes.get_by_label("The index's link").fill(index_link)
    click(bob.page, indexes.get_by_role("button", name="Add the index"))
    assert bob.page.get_by_text("your searches ask it too").is_visible()

    def found() -> bool:
        bob.page.get_by_label("What are you looking for?").fill("oak chair")
        click(bob.page, bob.page.get_by_role("button", name="Search", exact=True))
        return bob.page.locator("#results").get_by_text("Oak chair").count() > 0

    wait_for(found, timeout=30, what="Alice's index to answer Bob's search")
    results = bob.page.locator("#results")
    assert results.get_by_text("45.00 EUR · Ghent · Alice's attic").is_visible()
    looks_right(bob, "search-phone")
    click(bob.page, results.get_by_role("button", name="Follow this shop: Alice's attic"))
    bob.page.get_by_role("heading", name="Oak chair").wait_for()
    bob_listing = bob.page.url
    looks_right(bob, "listing-phone")

    # Alice watches her listing; Bob offers.
    alice.page.goto(listing_url)
    live_ready(alice.page)
    alice_loads = alice.navigations
    offer = bob.page.locator("#offer")
    offer.get_by_label("Your price").fill("40")
    offer.get_by_label("Message").fill("Can I pick it up on Saturday?")
    click(bob.page, offer.get_by_role("button", name="Make the offer"))
    assert bob.page.get_by_text("Your offer is made").is_visible()
    assert bob.page.locator("#listing-live").get_by_text("Alice's device").is_visible()
    offers = alice.page.locator("#listing-live")
    offers.get_by_text("40.00 EUR from Bob").wait_for(timeout=15_000)
    assert alice.navigations == alice_loads
    assert offers.get_by_text("Can I pick it up on Saturday?").is_visible()
    looks_right(alice, "offer-desktop")
    click(alice.page, offers.get_by_role("button", name="Accept 40.00 EUR from Bob"))
    assert alice.page.get_by_text("Accepted: the deal is open").is_visible()
    click(alice.page, alice.page.get_by_role("link", name="Open the deal"))
    deal_url = alice.page.url

    # Bob's node joins the deal by itself (the invite sealed to him in the accept).
    (deal,) = wait_for(lambda: deals_on(node_b), timeout=30, what="Bob's node to join the deal")
    bob.page.goto(bob.url + "/market/")
    click(bob.page, bob.page.locator("#deals").get_by_role("link", name="Oak chair"))
    assert bob.page.get_by_text("Accepted: waiting for the buyer to pay.").is_visible()
    live_ready(bob.page)
    looks_right(bob, "deal-accepted-phone")

    # Bob pays; Alice's open deal page shows it live.
    alice.page.goto(deal_url)
    live_ready(alice.page)
    alice_loads = alice.navigations
    paid = bob.page.locator("#actions")
    paid.get_by_label("Payment reference").fill("bank transfer 0042")
    click(bob.page, paid.get_by_role("button", name="I have paid"))
    state = alice.page.locator("#deal-state")
    state.get_by_text("Paid: waiting for the seller to ship.").wait_for(timeout=15_000)
    assert alice.navigations == alice_loads
    assert state.get_by_text("Payment reference: bank transfer 0042").is_visible()
    looks_right(alice, "deal-paid-desktop")

    # Alice ships; Bob's open page shows it live, with the step's delivery to Alice's node.
    live_ready(bob.page)
    bob_loads = bob.navigations
    ship = alice.page.locator("#actions")
    ship.get_by_label("Carrier").fill("Bpost")
    ship.get_by_label("Tracking number").fill("RR123456789BE")
    click(alice.page, ship.get_by_role("button", name="Mark shipped"))
    mine = bob.page.locator("#deal-state")
    mine.get_by_text("Shipped: waiting for the buyer to receive it.").wait_for(timeout=15_000)
    assert bob.navigations == bob_loads
    assert bob.page.locator("#actions").get_by_role("button", name="I received it").is_visible()
    # His own step says whether Alice's node has it (hers say nothing of the sort to him): once
    # her node tells his that it holds it, his open page says so without a reload.
    mine.get_by_text("Delivered to Alice's device").wait_for(timeout=15_000)
    assert mine.get_by_text("Delivered to Alice's device").count() == 1
    assert bob.navigations == bob_loads
    looks_right(bob, "deal-shipped-phone")
    assert deal["thread"] in deal_url

    # The photo reached Bob's node too (asked for when his listing page showed it on its way).
    bob.page.goto(bob_listing)

    def photo_here() -> bool:
        bob.page.reload()
        return bob.page.locator(".listing-photos img").count() == 1

    wait_for(photo_here, timeout=20, interval=1, what="the photo's chunks to reach Bob's node")
    assert bob.page.locator(".listing-photos img").evaluate("img => img.naturalWidth") > 0
    looks_right(bob, "listing-photo-phone")
