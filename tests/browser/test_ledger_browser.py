"""A tally between two real nodes in a real browser (Debian's Chromium through Playwright), the
issue's acceptance: Alice opens a tally with Bob (through the API: set-up), Bob reads its terms
and signs on his page; Alice asks for payment on her tally's page and gets a link and a QR code;
Bob, on his phone, goes from Home to Money, opens the link there, sees "Alice asks you for 7.50
EUR for lunch" and pays; Alice's open page shows the new balance without a reload, then Bob's
open page shows Alice's payment the same way. Every page is checked as a person sees it (nothing
wider than the screen, no template syntax, no hex id, no empty label or nameless button,
axe-core finds nothing serious). Screenshots are saved under /tmp/sereus-ledger/ to be looked
at. Then the Lifts page: Bob, owed by Alice in a second tally, starts a lift on his phone that
clears 3.00 EUR on both tallies (the list shows it decided without a reload), and Alice saves her
lift settings on the desktop."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

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

SHOTS = Path(tempfile.gettempdir()) / "sereus-ledger"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


def looks_right(person: Person, shot: str) -> None:
    """The page as a person sees it, checked; a full-page screenshot to look at."""
    page = person.page
    found = page.evaluate(FINDINGS)
    found["axe"] = page.evaluate(AXE_RUN)
    assert not [e for e in person.errors if "Content Security" in e or "CSP" in e], person.errors
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(SHOTS / f"{shot}.png"), full_page=True)
    assert found == {"overflow": [], "template": [], "hex": [], "labels": [], "axe": []}, found


def click(page, locator) -> None:
    """Press a form's button and wait for the page it redirects to."""
    with page.expect_navigation():
        locator.click()


def tally_on(peer, thread: str) -> dict | None:
    try:
        return peer.api.get(f"/api/v1/threads/{thread}/tally/")
    except ApiError:
        return None  # not there yet


def test_a_payment_request_opened_and_paid_on_the_other_node_shows_live(peers, browser) -> None:  # noqa: F811
    SHOTS.mkdir(exist_ok=True)
    node_a, node_b = peers
    alice = claimed(browser, "alice", node_a)
    bob = claimed(browser, "bob", node_b)
    for person, size, name in ((alice, DESKTOP, "Alice"), (bob, PHONE, "Bob")):
        person.context.add_init_script(path=str(AXE))
        person.page.set_viewport_size(size)
        person.peer.api.request("PUT", "/api/v1/node/name/", {"name": name})

    # Set-up through the API: Alice proposes, Bob joins and signs, Alice's node signs after him.
    made = node_a.api.post(
        "/api/v1/tallies/",
        {"name": "Lunches", "unit": "EUR", "my_limit": "100", "partner_limit": "100"},
    )
    thread = made["thread"]
    node_b.redeem(made["invite"])
    wait_for(lambda: tally_on(node_b, thread), timeout=30, what="the tally to reach Bob")
    path = f"/node/threads/{thread}/tally/"
    # Bob reads the terms on his phone and signs them.
    bob.page.goto(bob.url + path)
    terms = bob.page.locator("section.terms")
    assert terms.get_by_text("Alice gives you credit up to 100.00 EUR").is_visible()
    looks_right(bob, "terms-phone")
    click(bob.page, terms.get_by_role("button", name="Accept and sign"))
    wait_for(
        lambda: (tally_on(node_a, thread) or {}).get("state") == "open",
        timeout=30,
        what="Alice's node to sign after Bob",
    )

    # Alice asks for payment on her tally's page: a link and a QR code to send.
    alice.page.goto(alice.url + path)
    alice.page.get_by_text("You are even").wait_for()
    ask = alice.page.locator("#ask")
    ask.get_by_label("Amount").fill("7.50")
    ask.get_by_label("What for").fill("lunch")
    click(alice.page, ask.get_by_role("button", name="Ask for payment"))
    asked = alice.page.locator("#asked")
    assert asked.get_by_text("You asked Bob for 7.50 EUR for lunch").is_visible()
    assert asked.locator("svg").is_visible()
    link = asked.locator("textarea").input_value()
    assert link.startswith("sereus:pay/")
    live_ready(alice.page)
    looks_right(alice, "asked-desktop")
    alice_loads = alice.navigations

    # Bob opens the link on his Money page (his node has the request by then) and pays.
    bob.page.goto(bob.url + "/node/")  # Home leads to Money
    looks_right(bob, "home-phone")
    click(bob.page, bob.page.get_by_role("link", name="Open Money"))
    looks_right(bob, "money-phone")

    def opened() -> bool:
        bob.page.get_by_label("Payment request link").fill(link)
        click(bob.page, bob.page.get_by_role("button", name="Open the request"))
        return bob.page.locator("#pay-request").count() == 1

    wait_for(opened, timeout=30, what="the request to reach Bob's node")
    request = bob.page.locator("#pay-request")
    assert request.get_by_text("Alice asks you for 7.50 EUR for lunch").is_visible()
    live_ready(bob.page)
    looks_right(bob, "request-phone")
    click(bob.page, request.get_by_role("button", name="Pay 7.50 EUR"))
    summary = bob.page.locator("#tally-live .tally-owed-big")
    assert summary.inner_text() == "You owe Alice 7.50 EUR"

    # Alice's open page shows it without a reload.
    alice_owed = alice.page.locator("#tally-live .tally-owed-big")
    alice_owed.get_by_text("Bob owes you 7.50 EUR").wait_for(timeout=15_000)
    assert alice.navigations == alice_loads
    assert alice.page.locator("#tally-live").get_by_text("Bob paid you 7.50 EUR").is_visible()
    looks_right(alice, "paid-desktop")

    # And the other way: Alice pays, Bob's open page shows it live.
    live_ready(bob.page)
    bob_loads = bob.navigations
    pay = alice.page.locator("#pay")
    pay.get_by_label("Amount").fill("2.50")
    click(alice.page, pay.get_by_role("button", name="Pay", exact=True))
    summary.get_by_text("You owe Alice 5.00 EUR").wait_for(timeout=15_000)
    assert bob.navigations == bob_loads
    looks_right(bob, "paid-phone")
    assert tally_on(node_b, thread)["balance"] == -5_000
    assert tally_on(node_a, thread)["balance"] == 5_000

    lift_round_two_tallies(alice, bob, thread)


def lift_round_two_tallies(alice: Person, bob: Person, lunches: str) -> None:
    """Bob owes Alice 5.00 EUR in Lunches; in a second tally, Coffees, Alice owes Bob 5.00: a
    lift Bob starts goes round both and clears 3.00 on each (a cycle of two is still a cycle)."""
    node_a, node_b = alice.peer, bob.peer
    made = node_b.api.post(
        "/api/v1/tallies/",
        {"name": "Coffees", "unit": "EUR", "my_limit": "100", "partner_limit": "100"},
    )
    coffees = made["thread"]
    node_a.redeem(made["invite"])
    wait_for(lambda: tally_on(node_a, coffees), timeout=30, what="Coffees to reach Alice")
    node_a.api.post(f"/api/v1/threads/{coffees}/tally/sign/", {})
    # Open on both nodes: Bob's node signs after Alice, and Alice's node refuses a chit (409,
    # "not signed by both sides yet") until Bob's signature has reached it.
    for node, what in (
        (node_b, "Bob's node to sign Coffees after Alice"),
        (node_a, "Bob's signature to reach Alice"),
    ):
        wait_for(
            lambda node=node: (tally_on(node, coffees) or {}).get("state") == "open",
            timeout=30,
            what=what,
        )
    node_a.api.post(f"/api/v1/threads/{coffees}/chits/", {"kind": "payment", "amount": "5"})
    wait_for(
        lambda: (tally_on(node_b, coffees) or {}).get("balance") == 5_000,
        timeout=30,
        what="Alice's payment in Coffees to reach Bob",
    )

    bob.page.goto(bob.url + "/ledger/")
    click(bob.page, bob.page.get_by_role("link", name="Lifts"))
    form = bob.page.locator("#lift-form")
    form.get_by_label("Amount").fill("3")
    assert "Coffees: Alice owes you 5.00 EUR" in form.get_by_label("It comes back by").inner_text()
    click(bob.page, form.get_by_role("button", name="Start the lift"))
    mine = bob.page.locator("#lifts-live")
    assert mine.get_by_text("From Lunches, back by Coffees").is_visible()
    loads = bob.navigations
    looks_right(bob, "lift-started-phone")
    mine.get_by_text("3.00 EUR: cleared").wait_for(timeout=45_000)
    assert bob.navigations == loads
    looks_right(bob, "lift-cleared-phone")
    assert tally_on(node_b, lunches)["balance"] == -2_000
    assert tally_on(node_b, coffees)["balance"] == 2_000
    bob.page.goto(f"{bob.url}/node/threads/{coffees}/tally/")
    assert bob.page.get_by_text("Lift: 3.00 EUR cleared").is_visible()

    # Alice, on the desktop, caps the lifts her tallies carry (the saved toast is checked too).
    alice.page.goto(alice.url + "/ledger/lifts/")
    settings = alice.page.locator("#lift-settings")
    settings.get_by_label("The most one lift may clear").fill("50")
    click(alice.page, settings.get_by_role("button", name="Save"))
    saved = "Saved: your tallies carry other people's lifts of up to 50.000."
    assert alice.page.get_by_text(saved).is_visible()
    looks_right(alice, "lifts-desktop")
    assert node_a.api.get("/api/v1/lifts/settings/") == {"enabled": True, "most": "50.000"}
