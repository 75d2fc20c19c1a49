"""A thread's apps over the API: list, enable, disable; clear errors for the rest."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.core import services as node_services
from apps.core.thread import appspec
from apps.core.thread.appspec import AppSpec
from apps.core.threads.registry import thread_database

pytestmark = pytest.mark.django_db(transaction=True)

NOTES = AppSpec(
    app="notes",
    tables=frozenset({"notes_page"}),
    rules={"owner": {"notes_page": {"insert": "any", "update": "any", "delete": "any"}}},
)


@pytest.fixture
def api(node, monkeypatch) -> Client:
    factories = dict(appspec._SPECS._factories)
    monkeypatch.setattr(appspec._SPECS, "_factories", factories)
    appspec.thread_app_register("notes", lambda: NOTES)
    token = node_services.claim_token_issue()
    result = node_services.owner_claim(token=token, username="alice", password="pw " * 6)
    client = Client()
    client.force_login(result.user)
    return client


def post(api: Client, url: str, body: dict):
    return api.post(url, body, content_type="application/json")


def test_enable_list_and_disable_an_app(api: Client):
    thread_id = post(api, "/api/v1/threads/", {"name": "t"}).json()["id"]
    url = f"/api/v1/threads/{thread_id}/apps/"
    listed = {a["app"]: a for a in api.get(url).json()}
    assert listed["default"] == {
        "app": "default",
        "enabled": True,
        "primary": True,
        "installed": True,
    }
    assert listed["notes"]["enabled"] is False
    created = post(api, url, {"app": "notes"})
    assert created.status_code == 201
    assert created.json() == {"app": "notes", "enabled": True, "primary": False, "installed": True}
    assert [a["app"] for a in api.get(url).json() if a["enabled"]] == ["default", "notes"]
    # The thread's own replica holds it: a control op, not a local setting.
    state = thread_database(bytes.fromhex(thread_id)).replica().control.state
    assert list(state.apps) == ["default", "notes"]
    assert "notes_page" in state.policy.roles["owner"].tables
    again = post(api, url, {"app": "notes"})
    assert again.status_code == 409
    assert again.json()["detail"] == "the notes app is already enabled in this thread"
    assert api.delete(url + "notes/").status_code == 204
    assert [a["app"] for a in api.get(url).json() if a["enabled"]] == ["default"]
    assert (
        "notes_page"
        in thread_database(bytes.fromhex(thread_id)).replica().control.state.policy.foreign
    )


def test_what_cannot_be_enabled_or_disabled_says_why(api: Client):
    thread_id = post(api, "/api/v1/threads/", {"name": "t"}).json()["id"]
    url = f"/api/v1/threads/{thread_id}/apps/"
    unknown = post(api, url, {"app": "nosuch"})
    assert unknown.status_code == 404
    assert unknown.json() == {
        "error": "not_found",
        "detail": "this node has no app 'nosuch' to enable in a thread",
    }
    assert post(api, url, {"app": "Bad Name"}).status_code == 400
    own = api.delete(url + "default/")
    assert own.status_code == 403
    assert "cannot be disabled" in own.json()["detail"]
    missing = api.delete(url + "notes/")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "the notes app is not enabled in this thread"


def test_the_schema_documents_the_apps_api(api: Client):
    schema = api.get("/api/schema/?format=json").json()
    operations = {
        op["operationId"]
        for path in schema["paths"].values()
        for op in path.values()
        if isinstance(op, dict) and "operationId" in op
    }
    assert {"thread_apps_list", "thread_apps_enable", "thread_apps_disable"} <= operations


def test_the_thread_page_adds_and_turns_off_apps_in_plain_words(api: Client):
    thread_id = post(api, "/api/v1/threads/", {"name": "Book club"}).json()["id"]
    page = api.get(f"/node/threads/{thread_id}/people/").content.decode()
    assert '<h2 id="apps-h">Apps</h2>' in page
    assert "Add Notes" in page
    added = api.post(f"/node/threads/{thread_id}/apps/", {"app": "notes", "action": "enable"})
    assert added.status_code == 302
    page = api.get(added["Location"]).content.decode()
    assert "Notes added to this thread." in page
    assert "Turn off Notes" in page
    assert "Notes · you are" in page
    listed = api.get("/node/threads/").content.decode()
    assert "Notes · owner" in listed
    assert '<span class="row-sub">Notes</span>' in api.get("/node/").content.decode()
    api.post(f"/node/threads/{thread_id}/apps/", {"app": "notes", "action": "disable"})
    page = api.get(f"/node/threads/{thread_id}/people/").content.decode()
    assert "Notes turned off in this thread." in page
    assert "Add Notes" in page
    failed = api.post(f"/node/threads/{thread_id}/apps/", {"app": "nosuch", "action": "enable"})
    page = api.get(failed["Location"]).content.decode()
    assert "this node has no app" in page
