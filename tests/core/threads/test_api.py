"""The threads API: create and list threads, members and roles, invites with link and QR, the
op log; clear JSON errors with the right status."""

from __future__ import annotations

import time

import pytest
from django.test import Client

from apps.core import services as node_services
from apps.core.models import Thread
from apps.core.thread.invite import Invite, invite_parse
from apps.core.thread.keys import member_key
from apps.core.threads import services
from apps.core.threads.names import fallback_name
from apps.core.threads.registry import thread_database
from tests.core.threads.conftest import admit, new_thread, other_node

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def api(node) -> Client:
    token = node_services.claim_token_issue()
    result = node_services.owner_claim(token=token, username="alice", password="pw " * 6)
    client = Client()
    client.force_login(result.user)
    return client


def test_create_list_and_read_a_thread(api: Client):
    created = api.post("/api/v1/threads/", {"name": "Book club"}, content_type="application/json")
    assert created.status_code == 201
    body = created.json()
    assert set(body) == {"id", "name", "app", "role"}
    assert body["role"] == "owner"
    assert body["app"] == "default"
    assert len(body["id"]) == 64
    assert [t["id"] for t in api.get("/api/v1/threads/").json()] == [body["id"]]
    detail = api.get(f"/api/v1/threads/{body['id']}/").json()
    thread = Thread.objects.get()
    assert detail["member_id"] == thread.member_id
    assert detail["state"] == "active"
    members = api.get(f"/api/v1/threads/{body['id']}/members/").json()
    assert members == [
        {
            "id": thread.member_id,
            "name": fallback_name(bytes.fromhex(thread.member_id)),  # unnamed: never hex
            "role": "owner",
            "me": True,
            "devices": [members[0]["devices"][0]],
        }
    ]


def test_bad_requests_get_clear_json_errors(api: Client):
    assert api.post("/api/v1/threads/", {}, content_type="application/json").status_code == 400
    bad_app = api.post(
        "/api/v1/threads/", {"name": "x", "app": "no-such"}, content_type="application/json"
    )
    assert bad_app.status_code == 400
    assert bad_app.json()["error"] == "invalid"
    missing = api.get("/api/v1/threads/" + "0" * 64 + "/")
    assert missing.status_code == 404
    assert missing.json() == {"error": "not_found", "detail": "no such thread here"}


def test_invite_link_and_qr_code(api: Client):
    thread_id = api.post("/api/v1/threads/", {"name": "t"}, content_type="application/json").json()[
        "id"
    ]
    response = api.post(
        f"/api/v1/threads/{thread_id}/invites/",
        {"role": "writer", "expires_in": 3600},
        content_type="application/json",
    )
    assert response.status_code == 201
    body = response.json()
    invite = invite_parse(body["link"])
    assert invite.thread.hex() == thread_id
    assert invite.role == "writer"
    assert 3_500_000 < invite.expiry - time.time() * 1000 <= 3_600_000
    qr = api.get(body["qr_svg_url"])
    assert qr.status_code == 200
    assert qr["Content-Type"] == "image/svg+xml"
    assert b"<svg" in qr.content
    assert qr["Cache-Control"] == "no-store"
    # The invite is recorded in the thread as a control op.
    ops = api.get(f"/api/v1/threads/{thread_id}/ops/").json()["ops"]
    assert [op["kind"] for op in ops] == ["control", "keys", "control"]
    assert all(op["status"] == "accepted" for op in ops)
    too_long = api.post(
        f"/api/v1/threads/{thread_id}/invites/",
        {"role": "writer", "expires_in": 365 * 86400},
        content_type="application/json",
    )
    assert too_long.status_code == 400
    above = api.post(
        f"/api/v1/threads/{thread_id}/invites/",
        {"role": "owner", "expires_in": 600},
        content_type="application/json",
    )
    assert above.status_code == 403
    assert "may not invite" in above.json()["detail"]


def test_redeem_reports_each_way_a_link_can_fail(api: Client, tmp_path):
    def redeem(link: str):
        return api.post("/api/v1/invites/redeem/", {"link": link}, content_type="application/json")

    malformed = redeem("sereus:invite/%%%")
    assert malformed.status_code == 400
    assert malformed.json()["error"] == "malformed"
    other = new_thread(tmp_path, "elsewhere")
    base = Invite(other.database.thread, "writer", 10**12, b"s" * 32, "peer", (), "x")
    assert redeem(base.link()).json()["error"] == "expired"
    fresh = Invite(
        other.database.thread, "writer", int(time.time() * 1000) + 60_000, b"s" * 32, "p", (), "x"
    )
    unreachable = redeem(fresh.link())
    assert unreachable.status_code == 503
    assert "cannot reach" in unreachable.json()["detail"]
    mine = api.post("/api/v1/threads/", {"name": "mine"}, content_type="application/json").json()
    own = api.post(
        f"/api/v1/threads/{mine['id']}/invites/",
        {"role": "writer", "expires_in": 600},
        content_type="application/json",
    ).json()["link"]
    conflict = redeem(own)
    assert conflict.status_code == 409


def test_change_a_members_role_and_remove_them(api: Client, tmp_path):
    thread_id = api.post("/api/v1/threads/", {"name": "t"}, content_type="application/json").json()[
        "id"
    ]
    thread = Thread.objects.get(pk=thread_id)
    database = thread_database(thread.thread)
    bob = other_node(tmp_path, thread.thread, "bob")
    admit(database, bob, "writer")
    services.index_refresh(thread=thread)
    bob_id = bytes(member_key(bob.keys.master_secret, thread.thread).verify_key).hex()
    url = f"/api/v1/threads/{thread_id}/members/{bob_id}/"
    changed = api.patch(url, {"role": "reader"}, content_type="application/json")
    assert changed.status_code == 200
    assert changed.json()["role"] == "reader"
    refused = api.patch(url, {"role": "owner"}, content_type="application/json")
    assert refused.status_code == 403
    assert "ownership" in refused.json()["detail"]
    epoch_before = database.replica().snapshot().current_epoch
    assert api.delete(url).status_code == 204
    members = api.get(f"/api/v1/threads/{thread_id}/members/").json()
    assert bob_id not in {m["id"] for m in members}
    assert database.replica().snapshot().current_epoch == epoch_before + 1
    bad = api.patch(
        f"/api/v1/threads/{thread_id}/members/nothex/",
        {"role": "reader"},
        content_type="application/json",
    )
    assert bad.status_code == 400


def test_the_op_log_pages(api: Client):
    thread_id = api.post("/api/v1/threads/", {"name": "t"}, content_type="application/json").json()[
        "id"
    ]
    first = api.get(f"/api/v1/threads/{thread_id}/ops/?limit=1").json()
    assert len(first["ops"]) == 1
    rest = api.get(f"/api/v1/threads/{thread_id}/ops/?after={first['next']}").json()
    assert [op["kind"] for op in rest["ops"]] == ["keys"]
    assert api.get(f"/api/v1/threads/{thread_id}/ops/?after=x").status_code == 400


def test_the_api_is_the_owners_only(node, db):
    assert Client().get("/api/v1/threads/").status_code == 401
