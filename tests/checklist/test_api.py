"""The checklist API end to end on this node: enabling it through the core's apps API, adding,
claiming, marking done, approving, closing; the rules' refusals as JSON errors in plain words;
and a claim this node accepted that a concurrent earlier claim from another node (in this
process) turns over, shown in the item's ``refused``."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from apps.checklist import rules, services
from apps.checklist.refusals import WHAT
from apps.core.background import EmbeddedTaskWorker
from apps.core.threads.registry import thread_database
from apps.messaging import services as messaging
from tests.checklist.support import Member, carols_checklist, member_join

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def api(browser) -> Client:
    return browser


def post(api: Client, url: str, body: dict | None = None):
    return api.post(url, body or {}, content_type="application/json")


@pytest.fixture
def chat(api):
    """A conversation this node owns, with the checklist enabled through the apps API."""
    thread = messaging.conversation_create(name="Flat share", my_name="Alice")
    enabled = post(api, f"/api/v1/threads/{thread.id}/apps/", {"app": "checklist"})
    assert enabled.status_code == 201, enabled.json()
    return thread


def url(thread, rest: str = "") -> str:
    return f"/api/v1/threads/{thread.id}/checklist/{rest}"


def test_writing_where_the_checklist_is_not_enabled_says_so(api):
    thread = messaging.conversation_create(name="Just talk")
    refused = post(api, url(thread), {"text": "Buy milk"})
    assert refused.status_code == 409
    assert refused.json() == {
        "error": "not_enabled",
        "detail": "the checklist is not enabled in this thread: an owner or admin enables it first",
    }
    assert api.get(url(thread)).json() == []
    missing = api.get(f"/api/v1/threads/{'0' * 64}/checklist/")
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")


def test_add_claim_done_and_the_answers_say_what_was_written(api, chat):
    added = post(api, url(chat), {"text": "  Buy milk ", "list": "Shopping"})
    assert added.status_code == 201
    item = added.json()
    assert {
        k: item[k] for k in ("text", "list", "claimed_by", "claimed_by_name", "done", "state")
    } == {
        "text": "Buy milk",
        "list": "Shopping",
        "claimed_by": "",
        "claimed_by_name": "",  # nobody, not "a former member"
        "done": False,
        "state": "open",
    }
    assert (item["approvals"], item["approved"], item["closed"], item["refused"]) == (
        0,
        False,
        False,
        [],
    )
    assert item["added_by"] == chat.member_id
    assert item["write"]["state"] == "accepted"
    default = post(api, url(chat), {"text": "Sweep"}).json()
    assert default["list"] == "To do"

    claimed = post(api, url(chat, f"{item['id']}/claim/")).json()
    assert (claimed["claimed_by"], claimed["claimed_by_name"], claimed["state"]) == (
        chat.member_id,
        "you",
        "claimed",
    )
    assert claimed["write"]["state"] == "accepted"
    again = post(api, url(chat, f"{item['id']}/claim/")).json()
    assert again["write"] is None  # already hers: nothing written
    done = post(api, url(chat, f"{item['id']}/done/")).json()
    assert (done["done"], done["state"]) == (True, "done")
    undone = post(api, url(chat, f"{item['id']}/undone/")).json()
    assert (undone["done"], undone["state"]) == (False, "claimed")
    given_back = post(api, url(chat, f"{item['id']}/unclaim/")).json()
    assert (given_back["claimed_by"], given_back["state"]) == ("", "open")
    # Done on an unclaimed item claims it in the same write.
    done = post(api, url(chat, f"{default['id']}/done/")).json()
    assert (done["claimed_by"], done["done"]) == (chat.member_id, True)
    edited = api.patch(url(chat, f"{item['id']}/"), {"text": "Buy oat milk"}, "application/json")
    assert edited.json()["text"] == "Buy oat milk"
    listed = api.get(url(chat)).json()
    assert [i["text"] for i in listed] == ["Buy oat milk", "Sweep"]  # by list name
    assert [i["text"] for i in api.get(url(chat) + "?list=To do").json()] == ["Sweep"]
    deleted = api.delete(url(chat, f"{item['id']}/"))
    assert deleted.status_code == 200
    assert deleted.json()["write"]["state"] == "accepted"
    assert api.get(url(chat, f"{item['id']}/")).status_code == 404


def test_bad_input_and_unknown_items_are_plain_errors(api, chat):
    empty = post(api, url(chat), {"text": "   "})
    assert (empty.status_code, empty.json()["error"]) == (400, "invalid")
    assert empty.json()["fields"] == {"text": ["This field may not be blank."]}
    assert post(api, url(chat), {"text": "x" * 501}).status_code == 400
    assert post(api, url(chat), {}).status_code == 400
    unknown = post(api, url(chat, "0190a0a0a0a0800080000000000000/claim/"))
    assert (unknown.status_code, unknown.json()["error"]) == (400, "invalid")
    missing = post(api, url(chat, f"{'1' * 12}8{'1' * 3}8{'1' * 15}/claim/"))
    assert missing.status_code == 404
    assert missing.json() == {"error": "not_found", "detail": "no such item in this checklist"}


def test_two_admins_approve_an_item_as_it_stands(api, chat, tmp_path):
    bob = member_join(chat, tmp_path, "Bob", "admin")
    item = post(api, url(chat), {"text": "Pay the electricity bill"}).json()
    approved = post(api, url(chat, f"{item['id']}/approve/")).json()
    assert (approved["approvals"], approved["approved"], approved["state"]) == (1, False, "open")
    assert approved["write"]["state"] == "accepted"
    assert post(api, url(chat, f"{item['id']}/approve/")).json()["write"] is None  # once
    # Bob, an admin on his own node, approves the same content; his op reaches this node.
    bob.receive()
    bob.approve(item["id"])
    bob.send()
    both = api.get(url(chat, f"{item['id']}/")).json()
    assert (both["approvals"], both["approved"], both["state"]) == (2, True, "approved")
    # Change it: the approvals were for the old content and stop counting.
    post(api, url(chat, f"{item['id']}/claim/"))
    after = api.get(url(chat, f"{item['id']}/")).json()
    assert (after["approvals"], after["approved"], after["state"]) == (0, False, "claimed")


def test_closing_a_list_now_and_refusals_after_it(api, chat):
    item = post(api, url(chat), {"text": "Bread", "list": "Shopping"}).json()
    other = post(api, url(chat), {"text": "Sweep", "list": "Chores"}).json()
    closed = post(api, url(chat, "close/"), {"list": "Shopping"})
    assert closed.status_code == 201
    assert closed.json() == {"list": "Shopping", "closed": True, "planned_at": None}
    assert api.get(url(chat, f"{item['id']}/")).json()["closed"] is True
    assert api.get(url(chat, f"{other['id']}/")).json()["closed"] is False
    refused = post(api, url(chat, f"{item['id']}/claim/"))
    assert refused.status_code == 409
    assert refused.json() == {"error": "refused", "detail": "the list had been closed"}
    late = post(api, url(chat), {"text": "Cheese", "list": "Shopping"})
    assert late.json() == {"error": "refused", "detail": "the list had been closed"}
    twice = post(api, url(chat, "close/"), {"list": "Shopping"})
    assert (twice.status_code, twice.json()["error"]) == (409, "conflict")


def test_a_planned_close_is_written_by_this_nodes_task_at_its_time(api, chat, settings):
    item = post(api, url(chat), {"text": "Bread", "list": "Shopping"}).json()
    at = timezone.now() + timedelta(seconds=2)
    planned = post(api, url(chat, "close/"), {"list": "Shopping", "at": at.isoformat()})
    assert planned.status_code == 201
    assert planned.json()["closed"] is False
    assert api.get(url(chat, f"{item['id']}/")).json()["closed"] is False
    # The background worker (the node's own, on its file queue) runs the task at that time.
    worker = EmbeddedTaskWorker(concurrency=1)
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while not api.get(url(chat, f"{item['id']}/")).json()["closed"]:
            assert time.monotonic() < deadline, "the planned close was not written"
            time.sleep(0.2)
    finally:
        worker.stop()
    assert services.closes_due(thread=chat) == []  # done: nothing more to write


def test_a_plan_whose_task_was_lost_is_made_good_when_the_checklist_is_read(api, chat):
    item = post(api, url(chat), {"text": "Bread", "list": "Shopping"}).json()
    services.list_close_plan(
        thread=chat, list_name="Shopping", at=timezone.now() + timedelta(hours=1)
    )
    assert services.closes_due(thread=chat) == []  # not yet
    due = timezone.now() + timedelta(hours=2)
    assert services.closes_due(thread=chat, now=due) == ["Shopping"]
    assert api.get(url(chat, f"{item['id']}/")).json()["closed"] is True


# -- with another node: Carol's conversation, this node is Bob, a writer ---------------------


@pytest.fixture
def shared(api, tmp_path) -> Member:
    return carols_checklist(tmp_path)


def test_a_members_refusals_are_403_or_409_with_the_reason(api, shared):
    thread = shared.thread
    pk = shared.add("Water the plants")
    shared.claim(pk)
    shared.send()
    held = post(api, url(thread, f"{pk}/claim/"))
    assert held.status_code == 409
    assert held.json() == {"error": "refused", "detail": "someone else claimed it first"}
    done = post(api, url(thread, f"{pk}/done/"))
    assert done.json() == {
        "error": "refused",
        "detail": "only who claimed an item or an admin may mark it done or not done",
    }
    edit = api.patch(url(thread, f"{pk}/"), {"text": "mine now"}, "application/json")
    assert edit.json()["detail"] == "only who added an item or an admin may change its text or list"
    approve = post(api, url(thread, f"{pk}/approve/"))
    assert approve.json() == {"error": "refused", "detail": "only an admin may approve an item"}
    close = post(api, url(thread, "close/"), {"list": "To do"})
    assert close.status_code == 403
    assert close.json()["error"] == "forbidden"
    assert close.json()["detail"] == "your role in this thread does not allow this change"
    enable = post(api, f"/api/v1/threads/{thread.id}/apps/", {"app": "checklist"})
    assert enable.status_code == 409  # already on (and a writer could not turn it on)
    # Nothing of the refused writes was kept: no op, nothing listed as refused.
    assert api.get(url(thread, "refused/")).json() == []
    assert api.get(url(thread, f"{pk}/")).json()["claimed_by"] == shared.member


def test_a_claim_turned_over_by_an_earlier_one_from_another_node_shows_why(api, shared):
    thread = shared.thread
    pk = shared.add("Take out the bins")
    shared.send()
    shared.claim(pk)  # Carol claims first, on her node; Bob's node has not heard of it
    time.sleep(0.005)
    mine = post(api, url(thread, f"{pk}/claim/"))
    assert mine.status_code == 200
    assert (mine.json()["claimed_by"], mine.json()["write"]["state"]) == (
        thread.member_id,
        "accepted",
    )
    op = mine.json()["write"]["op"]
    shared.send()  # Carol's claim arrives: it orders first, and wins on every replica
    item = api.get(url(thread, f"{pk}/")).json()
    assert (item["claimed_by"], item["claimed_by_name"], item["state"]) == (
        shared.member,
        "Carol",
        "claimed",
    )
    assert len(item["refused"]) == 1
    refused = item["refused"][0]
    assert (refused["op"], refused["what"], refused["reason"]) == (
        op,
        "claim",
        "someone else claimed it first",
    )
    assert f"Your {WHAT['claim']} was refused" == "Your claim was refused"
    write = api.get(f"/api/v1/threads/{thread.id}/writes/{op}/").json()
    assert write["state"] == "refused"
    assert write["reason"] == f"checklist_item: {rules.ALREADY_CLAIMED}"
    # Carol's node decides the same once Bob's claim reaches it.
    shared.receive()
    carols = thread_database(thread.thread).replica().decision(bytes.fromhex(op))
    assert carols.status == "refused"
    listed = api.get(url(thread, "refused/")).json()
    assert [(r["item"], r["what"]) for r in listed] == [(pk, "claim")]


def test_the_schema_documents_the_checklist_api(api):
    schema = api.get("/api/schema/?format=json").json()
    paths = schema["paths"]
    base = "/api/v1/threads/{thread_id}/checklist/"
    assert {"get", "post"} <= set(paths[base])
    for action in ("claim", "unclaim", "done", "undone", "approve"):
        assert paths[base + "{item_id}/" + action + "/"]["post"]["operationId"] == (
            f"checklist_{action}"
        )
    assert {"get", "patch", "delete"} <= set(paths[base + "{item_id}/"])
    assert "post" in paths[base + "close/"]


def test_a_write_after_the_replica_reloads_keeps_every_row(api, chat):
    """After a reload (a restart, a rolled-back write), a thread with ordered tables decides
    everything again at its next data op, this node's own write included: no row vanishes from
    this node's tables (they are rebuilt by applying every accepted op, not only stamped)."""
    first = post(api, url(chat), {"text": "Book the van"}).json()
    thread_database(chat.thread).invalidate()
    second = post(api, url(chat), {"text": "Buy boxes"}).json()
    assert [i["id"] for i in api.get(url(chat)).json()] == [first["id"], second["id"]]
    assert thread_database(chat.thread).rebuild_check().matches


def test_core_a_message_after_a_reload_in_a_thread_with_a_checklist_keeps_every_row(api, chat):
    messaging.message_send(thread=chat, text="first")
    thread_database(chat.thread).invalidate()
    messaging.message_send(thread=chat, text="second")
    assert thread_database(chat.thread).rebuild_check().matches


def test_a_refused_write_leaves_the_next_message_in_the_thread_safe(api, chat):
    """A refused write rolls back and makes the replica reload; the next write of another app
    keeps every row."""
    messaging.message_send(thread=chat, text="first")
    item = post(api, url(chat), {"text": "Bread", "list": "Shopping"}).json()
    post(api, url(chat, "close/"), {"list": "Shopping"})
    assert post(api, url(chat, f"{item['id']}/claim/")).status_code == 409
    messaging.message_send(thread=chat, text="second")
    assert thread_database(chat.thread).rebuild_check().matches
