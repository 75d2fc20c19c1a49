"""The tally pages through the test client, with the partner (Bob) on a node of his own in this
process: Money lists tallies and proposes one (its invite shown with its QR code), a tally's
page pays, asks for payment with a link the other side opens, pays a request, changes the
credit given and closes; refusals show in words (paying past the credit says what is
available) and no page shows a hex id."""

from __future__ import annotations

import re
import uuid

import pytest
from django.test import Client

from apps.core.threads.pages import open_url, tabs
from apps.ledger import display, rules, selectors
from apps.ledger.models import Chit
from apps.ledger.policy import APP, PARTNER
from tests.ledger.test_services import Partner, no_worker  # noqa: F401
from tests.support.members import member_join

pytestmark = pytest.mark.django_db(transaction=True)

MONEY = "/ledger/"
HEX_ID = re.compile(r"(?<![0-9A-Za-z])(?=[0-9A-Fa-f]*[A-Fa-f])[0-9A-Fa-f]{12,}(?![0-9A-Za-z])")


def text_of(html: str) -> str:
    """What a person reads: the page's main text, without tags, attributes or scripts."""
    main = html.split('<main id="main"', 1)[1].split("</main>", 1)[0]
    main = re.sub(r"<(script|textarea|svg)\b.*?</\1>", " ", main, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", main))


def readable(html: str) -> str:
    text = text_of(html)
    assert not HEX_ID.search(text), HEX_ID.search(text)
    for syntax in ("{{", "{%", "{#"):
        assert syntax not in text
    return text


def tally_url(thread) -> str:
    return f"/node/threads/{thread.id}/tally/"


@pytest.fixture
def client(browser) -> Client:
    return browser


@pytest.fixture
def opened(client, tmp_path):
    """A tally of 100 CHIP each way, proposed on the page, Bob joined and both signed."""
    made = client.post(
        MONEY,
        {"name": "Bob and me", "unit": "chip", "my_limit": "100", "partner_limit": "100"},
    )
    assert made.status_code == 302, made.content
    (thread,) = selectors.tallies()
    assert made["Location"] == tally_url(thread)
    bob = member_join(thread, tmp_path, "Bob", PARTNER, Partner)
    bob.receive()
    bob.sign()
    bob.send()
    signed = client.post(tally_url(thread) + "sign/", follow=True)
    assert "You signed: the tally is open." in text_of(signed.content.decode())
    return thread, bob


def test_money_proposes_a_tally_and_shows_its_invite_with_a_qr_code(client):
    empty = client.get(MONEY)
    assert "No tallies yet" in readable(empty.content.decode())
    made = client.post(
        MONEY,
        {
            "name": "Ann",
            "unit": "hours",
            "my_limit": "10",
            "partner_limit": "5.5",
            "comment": "garden help",
        },
        follow=True,
    )
    page = made.content.decode()
    text = readable(page)
    assert "Your tally is proposed: send the invite to your partner." in text
    assert "The tally opens when both of you have signed." in text
    assert "You give your partner credit up to 10.000 hours" in text
    assert "Waiting for your signature." in text
    assert "sereus:invite/" in page
    assert "<svg" in page
    assert ">Sign</button>" in page
    listed = readable(client.get(MONEY).content.decode())
    assert "Ann" in listed
    assert "With your partner · waiting for your signature" in listed
    assert "You are even" in listed


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("unit", "XYZ", "XYZ"),
        ("my_limit", "ten", "The credit you give: the amount must be a number, like 12.50."),
        ("name", "", "This field is required."),
    ],
)
def test_a_tally_with_bad_terms_is_refused_in_words(client, field, value, words):
    body = {"name": "Ann", "unit": "EUR", "my_limit": "10", "partner_limit": "10"}
    answer = client.post(MONEY, {**body, field: value})
    assert answer.status_code == 400
    assert words in readable(answer.content.decode())
    assert selectors.tallies() == []


def test_paying_past_the_credit_says_what_is_available(client, opened):
    thread, bob = opened
    url = tally_url(thread)
    text = readable(client.get(url).content.decode())
    assert "You are even" in text
    assert "You can pay up to 100.000 CHIP" in text
    assert "Bob can pay you up to 100.000 CHIP" in text
    paid = client.post(url + "pay/", {"pay-amount": "60", "pay-memo": "bike"}, follow=True)
    text = readable(paid.content.decode())
    assert "Paid. You owe Bob 60.000 CHIP." in text
    assert "You paid Bob 60.000 CHIP" in text
    assert "bike · then: You owe Bob 60.000 CHIP" in text
    bob.receive()
    tip = selectors.tally(thread).tip
    bob.pay(10_000, prev=tip.pk, state=tip)
    bob.send()
    refused = client.post(url + "pay/", {"pay-amount": "55"}, follow=True)
    text = readable(refused.content.decode())
    assert "Nothing was paid:" in text
    assert "50.000 is available" in text
    assert "You owe Bob 50.000 CHIP" in text
    assert "Bob paid you 10.000 CHIP" in text
    assert "You can pay up to 50.000 CHIP" in text
    bad = client.post(url + "pay/", {"pay-amount": "ten"}, follow=True)
    assert "The amount must be a number" in readable(bad.content.decode())
    assert selectors.tally(thread).balance == -50_000


def test_a_request_has_a_link_the_other_side_opens_and_pays(client, opened):
    thread, bob = opened
    url = tally_url(thread)
    asked = client.post(url + "ask/", {"ask-amount": "7.5", "ask-memo": "lunch"})
    assert asked.status_code == 302
    assert asked["Location"].startswith(url + "?asked=")
    page = client.get(asked["Location"]).content.decode()
    text = readable(page)
    assert "You asked Bob for 7.500 CHIP for lunch" in text
    link = re.search(r"sereus:pay/[A-Za-z0-9_-]+", page).group(0)
    mine = asked["Location"].split("=", 1)[1].split("#")[0]
    assert display.pay_link_parse(link) == (thread.id, mine)
    assert "<svg" in page

    # Bob asks me; the link he sends opens my tally with his request ready to pay.
    bob.receive()
    request = Chit.objects.using(bob.alias).create(
        kind=rules.INVOICE, unit="CHIP", amount=12_500, memo="tickets"
    )
    bob.send()
    his = request.id.hex
    opened_link = client.post(MONEY + "request/", {"link": display.pay_link(thread, his)})
    assert opened_link["Location"] == f"{url}?pay={his}#pay-request"
    page = client.get(f"{url}?pay={his}").content.decode()
    text = readable(page)
    assert "Bob asks you for 12.500 CHIP for tickets" in text
    assert "Pay 12.500 CHIP" in text
    assert "1 payment request for you" in _waiting(thread)
    # The request's Pay button posts what the page holds.
    form = page.split('id="pay-request"', 1)[1].split("</form>", 1)[0]
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form))
    assert (hidden["invoice"], hidden["pay-amount"], hidden["pay-memo"]) == (
        his,
        "12.500",
        "tickets",
    )
    paid = client.post(url + "pay/", hidden, follow=True)
    text = readable(paid.content.decode())
    assert "Paid. You owe Bob 12.500 CHIP." in text
    assert "Paid already." in readable(client.get(f"{url}?pay={his}").content.decode())
    again = client.post(url + "pay/", {"invoice": his, "pay-amount": "12.5"}, follow=True)
    assert "This payment request is paid already." in readable(again.content.decode())
    assert selectors.tally(thread).balance == -12_500


def _waiting(thread) -> list[str]:
    from apps.ledger import home

    return home.waiting(thread)


@pytest.mark.parametrize(
    ("link", "words"),
    [
        ("https://example.org/", "This is not a payment request link."),
        ("sereus:pay/AAAA", "This payment request link is incomplete"),
        ("sereus:pay/" + "A" * 64, "a tally this node does not have"),
    ],
)
def test_a_wrong_request_link_is_refused_in_words(client, link, words):
    answer = client.post(MONEY + "request/", {"link": link})
    assert answer.status_code == 400
    assert words in readable(answer.content.decode())


def test_changing_the_credit_and_closing(client, opened):
    thread, _bob = opened
    url = tally_url(thread)
    # A tally thread opens here (from Threads and Home), under its "Tally" tab.
    assert open_url(thread) == url
    assert [t.label for t in tabs(thread, APP)] == ["Tally", "People"]
    changed = client.post(url + "limit/", {"limit-amount": "20"}, follow=True)
    text = readable(changed.content.decode())
    assert "The credit you give is 20.000 CHIP now." in text
    assert "You set the credit you give Bob to 20.000 CHIP" in text
    assert "Bob can pay you up to 20.000 CHIP" in text
    client.post(url + "pay/", {"pay-amount": "3"})
    confirm = readable(client.get(url + "close/").content.decode())
    assert "Close Bob and me?" in confirm
    assert "You owe Bob 3.000 CHIP." in confirm
    closed = client.post(url + "close/", follow=True)
    text = readable(closed.content.decode())
    assert "The tally is closing: no new credit" in text
    assert "Closing: no new credit" in text
    assert "You can pay up to 3.000 CHIP" in text
    assert "Bob can pay you up to 0.000 CHIP" in text
    assert "Ask for payment" not in text
    refused = client.post(url + "ask/", {"ask-amount": "1"}, follow=True)
    assert "Only an open tally takes payment requests." in readable(refused.content.decode())


def test_an_overtaken_payment_shows_as_being_sent_again(client, opened):
    from apps.ledger import services

    thread, bob = opened
    bob.receive()
    start = selectors.tally(thread).tip
    bob.pay(7_000, prev=start.pk, state=start)
    client.post(tally_url(thread) + "pay/", {"pay-amount": "5", "pay-memo": "rent"})
    bob.send()
    text = readable(client.get(tally_url(thread)).content.decode())
    assert "Your payment of 5.000 CHIP · rent" in text
    assert "being sent again" in text
    services.duties(thread=thread)
    text = readable(client.get(tally_url(thread)).content.decode())
    assert "being sent again" not in text
    assert "You paid Bob 5.000 CHIP" in text
    # Again at once: Bob lowers the credit he gives me to 5 while I pay 10; mine no longer fits
    # on top of his, so it is refused, and the page says why in words.
    bob.receive()
    tip = selectors.tally(thread).tip
    after, _ = rules.next_state(tip, rules.LIMIT, 5_000, by_owner=False)
    Chit.objects.using(bob.alias).create(
        kind=rules.LIMIT, unit="CHIP", amount=5_000, prev=uuid.UUID(hex=tip.pk), seq=after.seq,
        balance=after.balance, owner_limit=after.owner_limit, partner_limit=after.partner_limit,
    )  # fmt: skip
    client.post(tally_url(thread) + "pay/", {"pay-amount": "10", "pay-memo": "gas"})
    bob.send()
    services.duties(thread=thread)
    text = readable(client.get(tally_url(thread)).content.decode())
    assert "Your payment of 10.000 CHIP · gas" in text
    assert "refused: Another chit reached the tally first: " in text
    assert "7.000 is available" in text


def test_the_pay_link_round_trips_and_refuses_what_is_not_one():
    thread_id, invoice = "ab" * 32, uuid.uuid4().hex

    class Thread:
        thread = bytes.fromhex(thread_id)

    link = display.pay_link(Thread(), invoice)
    assert not HEX_ID.search(link)
    assert display.pay_link_parse(" " + link + "\n") == (thread_id, invoice)
    with pytest.raises(ValueError, match="not a payment request link"):
        display.pay_link_parse("sereus:invite/abc")


def test_moneys_list_answers_its_poll_only_when_it_changed(client):
    page = client.get(MONEY).content.decode()
    assert 'hx-trigger="every 5s"' in page
    seen = page.split("/ledger/live/?seen=", 1)[1].split('"', 1)[0]
    assert client.get(MONEY + "live/", {"seen": seen}).status_code == 204
    client.post(MONEY, {"name": "Ann", "unit": "EUR", "my_limit": "10", "partner_limit": "10"})
    answer = client.get(MONEY + "live/", {"seen": seen})
    assert answer.status_code == 200
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", answer.content.decode()))
    assert "Ann" in text
    assert "With your partner · waiting for your signature" in text
    assert "No tallies yet" not in text
