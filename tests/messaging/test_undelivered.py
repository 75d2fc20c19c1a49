"""Acknowledged writes never vanish silently (issue 9, defect 14). This node is Bob's: Carol
removes him while his node is cut off, his node answers his next writes with success, and when
Carol's log arrives every replica refuses them. His node then says so: the API lists each
write as refused with its reason and contents, and the conversation page shows each message,
edit and delete as not accepted, why in plain words, and what he wrote, to copy."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from apps.core import services as node_services
from apps.messaging import selectors, services, undelivered
from apps.messaging.consumers import ConversationConsumer
from tests.support.cut_off import Conversation, carol_removes_bob, carols_conversation

pytestmark = pytest.mark.django_db(transaction=True)

LATE = "Shall we read *Middlemarch* next?"
HEX_ID = re.compile(r"\b[0-9a-f]{32,}\b")


@pytest.fixture
def browser(node) -> Client:
    token = node_services.claim_token_issue()
    user = node_services.owner_claim(token=token, username="bob", password="pw " * 6).user
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def conversation(node, tmp_path) -> Conversation:
    return carols_conversation(tmp_path)


def _visible_text(html: str) -> str:
    """The page's text as a person reads it (no tags, no attribute values)."""
    return re.sub(r"<[^>]+>", " ", html)


def test_writes_acknowledged_before_the_removal_arrived_are_shown_refused(browser, conversation):
    chat = conversation.thread
    api = f"/api/v1/threads/{chat.id}/"
    (hello,) = [m for m in selectors.messages(chat) if m.mine]
    carol_removes_bob(conversation)

    # Cut off, Bob's node takes every write: 201 / 200, each with the write it made.
    sent = browser.post(api + "messages/", {"text": LATE}, content_type="application/json")
    assert sent.status_code == 201, sent.content
    posted = sent.json()["write"]
    assert posted["state"] == "accepted"
    edited = browser.patch(
        api + f"messages/{hello.id}/", {"text": "Hello Carol!"}, content_type="application/json"
    )
    assert edited.status_code == 200
    edit = edited.json()["write"]
    assert edit["state"] == "accepted"
    assert edit["op"] != posted["op"]

    conversation.receive_from_carol()
    assert chat.state == "removed"

    # The API: each write refused, with the reason and what it said.
    followed = browser.get(api + f"writes/{posted['op']}/")
    assert followed.status_code == 200
    write = followed.json()
    assert write["state"] == "refused"
    assert write["reason"] == "the author is not a member where this op stands"
    assert write["reason_code"] == "not_member"
    assert write["reason_text"]
    (change,) = write["changes"]
    assert change["table"] == "messaging_message"
    assert change["action"] == "insert"
    assert change["values"]["text"] == LATE
    listed = browser.get(api + "writes/", {"state": "refused"}).json()
    assert [w["op"] for w in listed["writes"]] == [edit["op"], posted["op"]]
    assert listed["next"] is None
    everything = browser.get(api + "writes/").json()["writes"]
    # Bob's two: refused; his first message: accepted (his name is a control op, not listed).
    assert [w["state"] for w in everything] == ["refused", "refused", "accepted"]
    # Nothing of them took effect: the message is not there, the edit did not change the text.
    texts = [m["text"] for m in browser.get(api + "messages/").json()]
    assert texts == ["Hello Carol, glad to be here", "Welcome to the book club!"]

    # The conversation page: each one, why, and the text.
    page = browser.get(reverse("messaging:conversation", args=[chat.id]))
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count("Not accepted by the conversation") == 3  # the heading and each item
    assert html.count(undelivered.REMOVED) == 2
    assert "the author is not a member" not in html  # the engineer's words stay in the API
    assert f">{LATE}</textarea>" in html
    assert ">Hello Carol!</textarea>" in html
    assert "The message still reads:" in html
    assert '<label for="undelivered-text-1">' in html
    assert 'data-copy="undelivered-text-1"' in html
    text = _visible_text(html)
    assert "{{" not in text
    assert "{%" not in text
    assert not HEX_ID.search(text)

    # The thread page counts them and links to the list, which says what each one was.
    thread_page = browser.get(reverse("core:thread_people", args=[chat.id])).content.decode()
    assert "2 changes you wrote were not accepted by the thread" in thread_page
    list_url = reverse("core:thread_writes", args=[chat.id])
    assert f'href="{list_url}?state=refused"' in thread_page
    listing = browser.get(list_url, {"state": "refused"}).content.decode()
    assert "Added a message" in listing
    assert "Changed a message" in listing
    assert listing.count("Not accepted by the thread.") == 2
    assert not HEX_ID.search(_visible_text(listing))

    # Carol's node refuses them as well when they reach it: refused everywhere.
    conversation.send_to_carol()
    decided = dict(
        conversation.carol.database.raw().execute(
            "SELECT hash, status FROM sereus_ops WHERE hash IN (?, ?)",
            (bytes.fromhex(posted["op"]), bytes.fromhex(edit["op"])),
        )
    )
    assert set(decided.values()) == {"refused"}


def test_a_refused_deletion_says_the_message_is_still_there(browser, conversation):
    chat = conversation.thread
    (hello,) = [m for m in selectors.messages(chat) if m.mine]
    carol_removes_bob(conversation)
    deleted = browser.delete(f"/api/v1/threads/{chat.id}/messages/{hello.id}/")
    assert deleted.status_code == 200
    assert deleted.json()["write"]["state"] == "accepted"
    assert [m.text for m in selectors.messages(chat) if m.mine] == []
    conversation.receive_from_carol()
    # The delete took effect nowhere: the message is back here too.
    assert [m.text for m in selectors.messages(chat) if m.mine] == [hello.text]
    (item,) = undelivered.refused(chat)
    assert (item.what, item.current, item.reason) == ("delete", hello.text, undelivered.REMOVED)
    html = browser.get(reverse("messaging:conversation", args=[chat.id])).content.decode()
    assert "Your deletion of a message" in html
    assert "The message is still there for everyone" in html


def test_an_open_conversation_page_shows_the_refusal_when_the_removal_arrives(conversation):
    chat = conversation.thread
    consumer = ConversationConsumer()
    consumer.thread_id, consumer._csrf_token = chat.id, "token"
    first = consumer.live_html()
    assert '<section id="undelivered" hx-swap-oob="true" hidden>' in first
    carol_removes_bob(conversation)
    services.message_send(thread=chat, text=LATE)
    shown = consumer.live_html()
    assert "Shall we read <em>Middlemarch</em> next?" in shown
    assert 'id="undelivered"' not in shown  # unchanged: not sent again
    conversation.receive_from_carol()
    arrived = consumer.live_html()
    assert '<section id="undelivered" hx-swap-oob="true" class="card undelivered"' in arrived
    assert f">{LATE}</textarea>" in arrived


def test_write_states_through_the_api_and_clear_errors(browser, conversation):
    chat = conversation.thread
    api = f"/api/v1/threads/{chat.id}/"
    newest = browser.get(api + "messages/").json()[0]["cursor"]
    read = browser.put(api + "receipt/", {"up_to": newest}, content_type="application/json")
    receipt = read.json()
    assert receipt["written"] is True
    assert receipt["write"]["state"] == "accepted"
    found = browser.get(api + f"writes/{receipt['write']['op']}/").json()
    assert found["changes"][0]["table"] == "messaging_receipt"
    again = browser.post(
        api + "messages/", {"text": "once", "id": "0" * 31 + "1"}, content_type="application/json"
    ).json()
    repeated = browser.post(
        api + "messages/", {"text": "once", "id": "0" * 31 + "1"}, content_type="application/json"
    ).json()
    assert repeated["write"] == again["write"]  # nothing new written: the write that posted it
    page = browser.get(api + "writes/", {"limit": 2}).json()
    assert len(page["writes"]) == 2
    older = browser.get(api + "writes/", {"limit": 2, "before": page["next"]}).json()
    assert older["writes"][0]["seq"] < page["writes"][-1]["seq"]
    for query, status in (({"state": "lost"}, 400), ({"before": "x"}, 400)):
        bad = browser.get(api + "writes/", query)
        assert bad.status_code == status
        assert bad.json()["error"] == "invalid"
        assert bad.json()["detail"]
    missing = browser.get(api + "writes/" + "ab" * 32 + "/")
    assert missing.status_code == 404
    assert missing.json() == {"error": "not_found", "detail": "no write of this node with this op"}
    assert browser.get(api + "writes/nothex/").status_code == 404
    assert Client().get(api + "writes/").status_code in (401, 403)


def test_the_schema_says_what_a_success_means_and_documents_the_writes(browser):
    schema = browser.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    paths = schema["paths"]
    assert "get" in paths["/api/v1/threads/{thread_id}/writes/"]
    assert "get" in paths["/api/v1/threads/{thread_id}/writes/{op}/"]
    messages = paths["/api/v1/threads/{thread_id}/messages/"]["post"]
    assert "not yet accepted by the thread" in messages["description"]
    for path, method in (
        ("/api/v1/threads/{thread_id}/messages/{message_id}/", "patch"),
        ("/api/v1/threads/{thread_id}/messages/{message_id}/", "delete"),
        ("/api/v1/threads/{thread_id}/receipt/", "put"),
    ):
        assert "can still make every replica refuse it" in paths[path][method]["description"]
    written = schema["components"]["schemas"]["MessageWrittenOutput"]["properties"]
    assert "write" in written
