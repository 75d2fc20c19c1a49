"""The tally API: propose, sign, pay within the limits, ask and pay a request, close; the
errors say what is wrong in words, and bad input stores nothing."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from apps.ledger import selectors
from apps.ledger.models import Chit
from apps.ledger.policy import PARTNER
from tests.ledger.test_services import Partner, no_worker  # noqa: F401
from tests.support.members import member_join

pytestmark = pytest.mark.django_db(transaction=True)


def post(api: Client, url: str, body: dict | None = None):
    return api.post(url, json.dumps(body or {}), content_type="application/json")


@pytest.fixture
def api(browser) -> Client:
    return browser


@pytest.fixture
def opened(api, tmp_path):
    made = post(api, "/api/v1/tallies/", {
        "name": "Bob", "unit": "chip", "my_limit": 100, "partner_limit": "100.000",
    })  # fmt: skip
    assert made.status_code == 201, made.content
    body = made.json()
    assert body["invite"]
    thread = selectors.thread_find(body["thread"])
    bob = member_join(thread, tmp_path, "Bob", PARTNER, Partner)
    tally = api.get(f"/api/v1/threads/{thread.id}/tally/").json()
    assert (tally["state"], tally["role"], tally["i_signed"]) == ("proposed", "owner", False)
    bob.receive()
    bob.sign()
    bob.send()
    signed = post(api, f"/api/v1/threads/{thread.id}/tally/sign/")
    assert signed.status_code == 200, signed.content
    assert signed.json()["state"] == "open"
    return thread, bob


def test_paying_past_the_credit_is_refused_with_what_is_available(api, opened):
    thread, _bob = opened
    chits = f"/api/v1/threads/{thread.id}/chits/"
    paid = post(api, chits, {"kind": "payment", "amount": "60", "memo": "bike"})
    assert paid.status_code == 201, paid.content
    assert (paid.json()["amount"], paid.json()["amount_text"]) == (60_000, "60.000 CHIP")
    refused = post(api, chits, {"kind": "payment", "amount": 45})
    assert refused.status_code == 409
    assert "40.000 is available" in refused.json()["detail"]
    tally = api.get(f"/api/v1/threads/{thread.id}/tally/").json()
    assert (tally["balance"], tally["balance_text"], tally["available"]) == (
        -60_000, "-60.000 CHIP", 40_000,
    )  # fmt: skip
    listed = api.get(chits).json()
    assert [(c["kind"], c["amount"], c["memo"]) for c in listed] == [("payment", 60_000, "bike")]


BAD_CHITS = [
    ({"kind": "payment", "amount": "ten"}, "amount"),
    ({"kind": "payment", "amount": "1.2345"}, "three"),
    ({"kind": "payment", "amount": "-3"}, "amount"),
    ({"kind": "payment", "amount": True}, "amount"),
    ({"kind": "gift", "amount": "1"}, "kind"),
    ({"kind": "payment", "amount": "1", "memo": "x" * 501}, "memo"),
    ({"kind": "payment", "amount": "5", "invoice": "not-an-id"}, "request"),
]


def test_bad_chits_are_refused_in_words_and_store_nothing(api, opened):
    # One tally for every case: setting one up is most of the cost.
    thread, _ = opened
    for body, words in BAD_CHITS:
        answer = post(api, f"/api/v1/threads/{thread.id}/chits/", body)
        assert answer.status_code in (400, 404), (body, answer.content)
        assert words in json.dumps(answer.json()).lower(), (body, answer.json())
    from apps.core.threads.context import thread_context

    with thread_context(thread.thread):
        assert Chit.objects.count() == 0


def test_a_request_is_paid_once_and_closing_stops_new_credit(api, opened):
    thread, _bob = opened
    chits = f"/api/v1/threads/{thread.id}/chits/"
    asked = post(api, chits, {"kind": "invoice", "amount": "7.5", "memo": "lunch"}).json()
    assert asked["kind"] == "invoice"
    assert asked["seq"] == 0
    mine = post(api, chits, {"kind": "payment", "amount": "7.5", "invoice": asked["id"]})
    assert mine.status_code == 400
    assert "own" in mine.json()["detail"]
    post(api, chits, {"kind": "payment", "amount": "2"})
    closing = post(api, f"/api/v1/threads/{thread.id}/tally/close/")
    assert closing.json()["state"] == "closing"
    refused = post(api, chits, {"kind": "payment", "amount": "1"})
    assert refused.status_code == 409
    assert "closing" in refused.json()["detail"]
    assert api.get("/api/v1/threads/" + "0" * 64 + "/tally/").status_code == 404
    listed = api.get("/api/v1/tallies/").json()
    assert [(t["name"], t["state"], t["balance"]) for t in listed] == [("Bob", "closing", -2_000)]
