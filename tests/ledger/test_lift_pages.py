"""The Lifts page and lift chits on a tally's page, through the test client: two tallies (I owe
Bob, Carol owes me), each partner on a node of its own in this process. A lift that cannot start
says why in words; one that starts is listed as looking for a way around, and the list's poll
answers "nothing changed" until it is decided; the settings are saved; a lift's reservation,
commit and release read as sentences in the tally's history, with what is held near the
balance. No page shows a hex id."""

from __future__ import annotations

import html
import time
import uuid

import nacl.signing
import pytest

from apps.ledger import display, lifts, rules, selectors, services
from apps.ledger.amounts import CHIP
from apps.ledger.models import Lift
from apps.ledger.policy import PARTNER
from tests.ledger.test_pages import MONEY, client, readable, tally_url  # noqa: F401
from tests.ledger.test_services import Partner, no_worker  # noqa: F401
from tests.support.members import member_join

pytestmark = pytest.mark.django_db(transaction=True)

LIFTS = MONEY + "lifts/"
REFEREE = nacl.signing.SigningKey(b"\x05" * 32)


def words(page: str) -> str:
    """What a person reads (checked for hex ids and template syntax), entities decoded."""
    return html.unescape(readable(page))


def _open(client, tmp_path, name: str):  # noqa: F811
    made = client.post(
        MONEY, {"name": f"{name} and me", "unit": "chip", "my_limit": "100", "partner_limit": "100"}
    )
    assert made.status_code == 302, made.content
    thread = next(t for t in selectors.tallies() if t.name == f"{name} and me")
    partner = member_join(thread, tmp_path, name, PARTNER, Partner)
    partner.receive()
    partner.sign()
    partner.send()
    client.post(tally_url(thread) + "sign/")
    assert selectors.tally(thread).state == "open"
    return thread, partner


@pytest.fixture
def owed(client, tmp_path):  # noqa: F811
    """Carol owes me 30."""
    carol_tally, carol = _open(client, tmp_path, "Carol")
    carol.receive()
    tip = selectors.tally(carol_tally).tip
    carol.pay(30_000, prev=tip.pk, state=tip)
    carol.send()
    assert selectors.tally(carol_tally).balance == 30_000
    return carol_tally


@pytest.fixture
def two(client, tmp_path, owed, monkeypatch):  # noqa: F811
    """And I owe Bob 30. No timers: the lift's deadline is not waited for here."""
    monkeypatch.setattr(lifts, "_at", lambda *args: None)
    bob_tally, _bob = _open(client, tmp_path, "Bob")
    client.post(tally_url(bob_tally) + "pay/", {"pay-amount": "30"})
    return bob_tally, owed


def test_lifts_is_linked_from_money_and_explains_itself(client):  # noqa: F811
    assert 'href="/ledger/lifts/"' in client.get(MONEY).content.decode()
    text = words(client.get(LIFTS).content.decode())
    assert "a lift clears the same amount on all three tallies at once: nobody ends worse off" in (
        text
    )
    assert "You neither owe nor are owed in any open tally now." in text
    assert "You have not started a lift yet." in text
    assert "Carry other people's lifts through my tallies" in text


def test_a_lift_that_cannot_start_says_why_and_one_that_starts_shows_its_decision(client, two):  # noqa: F811
    bob_tally, carol_tally = two
    page = client.get(LIFTS).content.decode()
    text = words(page)
    # Each select lists only the tallies that can take that end, with the balance in words.
    first = page.split('name="lift-first"', 1)[1].split("</select>", 1)[0]
    last = page.split('name="lift-last"', 1)[1].split("</select>", 1)[0]
    assert "Let my node choose" in first
    assert "Bob and me: You owe Bob 30.000 CHIP" in first
    assert "Carol" not in first
    assert "Bob and me: Carol owes you 30.000 CHIP" not in last
    assert "Carol and me: Carol owes you 30.000 CHIP" in last
    assert "Bob" not in last
    assert "Start the lift" in text

    too_much = client.post(LIFTS, {"lift-amount": "40", "lift-first": "", "lift-last": ""})
    assert too_much.status_code == 400
    text = words(too_much.content.decode())
    assert "No lift of 40.000 is possible: you need a tally where you owe that much" in text
    only_first = client.post(LIFTS, {"lift-amount": "35", "lift-first": bob_tally.id})
    assert "None of your tallies where you are owed 35.000 CHIP goes with the one you chose" in (
        words(only_first.content.decode())
    )
    bad = client.post(LIFTS, {"lift-amount": "twenty"})
    assert "The amount must be a number, like 12.50." in words(bad.content.decode())
    wrong = client.post(LIFTS, {"lift-amount": "5", "lift-first": carol_tally.id})
    assert wrong.status_code == 400
    assert "Choose one of the tallies listed" in words(wrong.content.decode())
    assert not Lift.objects.exists()

    # One that can: it is listed at once, then its decision shows on the page's next poll.
    started = client.post(
        LIFTS, {"lift-amount": "20", "lift-first": "", "lift-last": carol_tally.id}, follow=True
    )
    text = words(started.content.decode())
    assert "Your lift of 20.000 CHIP is looking for a way around." in text
    assert "20.000 CHIP: looking for a way around" in text
    assert "From Bob and me, back by Carol and me" in text
    (lift,) = Lift.objects.all()
    assert (lift.first, lift.last, lift.amount) == (bob_tally.id, carol_tally.id, 20_000)
    page = started.content.decode()
    assert 'hx-trigger="every 2s"' in page

    # The poll: nothing changed, nothing sent; once decided, the list and a sentence to announce.
    live = LIFTS + "live/"
    seen = page.split("?seen=", 1)[1].split("&amp;", 1)[0]
    query = {"seen": seen, "waiting": lift.id}
    assert client.get(live, query).status_code == 204
    Lift.objects.filter(pk=lift.pk).update(
        state=Lift.State.VOIDED, reason="this party does not carry lifts"
    )
    answer = client.get(live, query)
    assert answer.status_code == 200
    body = answer.content.decode()
    assert "every 2s" not in body  # nothing is seeking: the poll stops
    assert "20.000 CHIP: called off" in body
    assert (
        "Your lift of 20.000 CHIP: called off. This party does not carry lifts." in body
    )  # the announcement
    text = words(client.get(LIFTS).content.decode())
    assert "called off" in text
    assert "This party does not carry lifts." in text


def test_lift_settings_are_saved_and_refused_in_words(client):  # noqa: F811
    url = LIFTS + "settings/"
    saved = client.post(url, {"settings-most": "25"}, follow=True)
    assert "Saved: your tallies carry no one else's lifts." in words(saved.content.decode())
    row = lifts.settings()
    assert (row.enabled, row.most) == (False, 25_000)
    page = client.get(LIFTS).content.decode()
    assert 'value="25.000"' in page
    assert 'name="settings-enabled"' in page
    assert "checked" not in page.split("settings-enabled")[1][:80]
    saved = client.post(url, {"settings-enabled": "on", "settings-most": ""}, follow=True)
    assert "Saved: your tallies carry other people's lifts." in words(saved.content.decode())
    assert (lifts.settings().enabled, lifts.settings().most) == (True, None)
    refused = client.post(url, {"settings-enabled": "on", "settings-most": "0"}, follow=True)
    text = words(refused.content.decode())
    assert "Your lift settings did not change: The amount must be more than zero." in text
    assert lifts.settings().most is None


def _decision(thread, kind: str, lift: str) -> None:
    """The referee's signed decision of a lift reserved here, written as lifts.py relays it."""
    decision = "commit" if kind == rules.LIFT else "void"
    sig = REFEREE.sign(rules.lift_message(lift, decision)).signature
    columns = {"lift": uuid.UUID(hex=lift), "sig": sig, "creditor_owner": True}
    services._chain_write(thread, kind, 20_000, lift=columns)


def test_lift_chits_read_as_sentences_in_a_tallys_history(client, owed):  # noqa: F811
    carol_tally = owed
    url = tally_url(carol_tally)
    deadline = time.time_ns() // 1_000_000 + 60_000
    for kind in (rules.RELEASE, rules.LIFT):
        lift = uuid.uuid4().hex
        columns = {
            "lift": uuid.UUID(hex=lift),
            "referee": bytes(REFEREE.verify_key),
            "deadline": deadline,
        }
        services._chain_write(carol_tally, rules.RESERVE, 20_000, lift=columns)
        text = words(client.get(url).content.decode())
        assert "20.000 CHIP held for a lift" in text
        assert "20.000 CHIP of this is held for a lift in progress." in text
        _decision(carol_tally, kind, lift)
    text = words(client.get(url).content.decode())
    assert "held for a lift in progress" not in text
    assert "Lift: 20.000 CHIP cleared then: Carol owes you 10.000 CHIP" in text
    assert "Lift called off: 20.000 CHIP no longer held then: Carol owes you 30.000 CHIP" in text
    assert "asked to close" not in text
    assert selectors.tally(carol_tally).balance == 10_000


def test_lift_words_without_a_tally():
    assert display.lift_text(rules.RESERVE, "5.00 EUR") == "5.00 EUR held for a lift"
    assert display.lift_text(rules.LIFT, "5.00 EUR") == "Lift: 5.00 EUR cleared"
    assert display.lift_text(rules.RELEASE, "5 CHIP") == "Lift called off: 5 CHIP no longer held"
    assert CHIP.code == "CHIP"
