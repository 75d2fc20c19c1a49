"""The devices API (issue 17 §5), in process: the list, a device link, a join started on a fresh
node, removal, join and recovery progress, the mirror's status, the schema; garbage and forged
requests are answered with a status and words, never a crash."""

from __future__ import annotations

import dataclasses
from datetime import datetime

import pytest
from django.test import Client

from apps.cadre import control
from apps.cadre.link import link_parse
from apps.cadre.models import PartyDevice, PendingJoin, RestoreRun, SyncProgress
from apps.core.threads import services as thread_services
from tests.cadre.test_pages import foreign_link, kept, other_device
from tests.checklist.conftest import browser, owner_user  # noqa: F401 - fixtures

API = "/api/v1/devices/"


@pytest.fixture
def api(browser) -> Client:  # noqa: F811
    return browser


@pytest.fixture
def chats(node) -> list:
    return [thread_services.thread_create(name=n) for n in ("Family", "Book club")]


def post(api: Client, url: str, body: dict | None = None):
    return api.post(url, body or {}, content_type="application/json")


def test_the_list_has_this_device_the_others_and_the_recovery_key(api, chats) -> None:
    assert api.get(API).json() == []  # no device list yet: just this node
    laptop = other_device("Laptop")
    found = {d["device"]: d for d in api.get(API).json()}
    me = found[control.this_device().hex()]
    assert (me["kind"], me["this_node"], me["removable"]) == ("full", True, False)
    assert {t["name"] for t in me["threads"]} == {"Family", "Book club", "My devices"}
    assert all(t["certified"] and t["behind"] == 0 for t in me["threads"])
    other = found[laptop]
    assert (other["label"], other["kind"], other["removable"]) == ("Laptop", "full", True)
    assert other["last_seen"] is None
    standby = next(d for d in found.values() if d["kind"] == "standby")
    assert standby["removable"] is False
    assert "recovery" in standby["kind_words"]


def test_a_device_link_is_made_once_and_not_kept(api, chats) -> None:
    made = post(api, API + "link/", {"label": "Phone"})
    assert made.status_code == 201
    assert made["Cache-Control"] == "no-store"
    body = made.json()
    data = link_parse(body["link"])
    assert (data.kind, data.name) == ("full", "Phone")
    expires = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert abs(expires.timestamp() * 1000 - data.expires_ms) < 1000
    mirror = post(api, API + "link/", {"kind": "mirror"}).json()
    assert link_parse(mirror["link"]).kind == "mirror"


def test_a_forged_link_request_gets_words(api, chats) -> None:
    bad = post(api, API + "link/", {"kind": "owner"})
    assert bad.status_code == 400
    assert bad.json()["error"] == "invalid"
    assert "kind" in bad.json()["fields"]
    long = post(api, API + "link/", {"label": "x" * 500})
    assert long.status_code == 400
    control_chars = post(api, API + "link/", {"label": "a\x07b"})
    assert control_chars.status_code == 400
    assert "plain text" in control_chars.json()["detail"]


def test_a_mirror_makes_no_links(api, node, settings) -> None:
    settings.SEREUS = dataclasses.replace(settings.SEREUS, mirror=True)
    refused = post(api, API + "link/", {})
    assert refused.status_code == 403
    assert "A mirror cannot add devices" in refused.json()["detail"]


def test_a_fresh_node_joins_with_a_link(api, node) -> None:
    assert api.get(API + "join/").json() == {
        "state": "none",
        "words": "",
        "problem": "",
        "running": False,
        "threads": [],
    }
    link = foreign_link()
    started = post(api, API + "join/", {"link": link})
    assert started.status_code == 202
    assert started.json()["state"] == "pending"
    assert started.json()["running"] is True
    assert PendingJoin.objects.get().link == link
    # The same link again is the same join; another one waits for it.
    assert post(api, API + "join/", {"link": link}).status_code == 202
    busy = post(api, API + "join/", {"link": foreign_link()})
    assert busy.status_code == 409
    assert "joining your other device already" in busy.json()["detail"]
    SyncProgress.objects.create(
        run="join", thread_id="ab" * 32, name="Family", app="messaging", ops_fetched=7
    )
    rows = api.get(API + "join/").json()["threads"]
    assert rows == [
        {
            "thread": "ab" * 32,
            "name": "Family",
            "app": "messaging",
            "control": False,
            "ops_fetched": 7,
            "ops_total": None,
            "state": "waiting",
            "problem": "",
        }
    ]


@pytest.mark.parametrize(
    ("link", "status", "words"),
    [
        ("hello", 400, "This is not a device link"),
        ("sereus:device/@@", 400, "damaged"),
        ("x" * 5000, 400, "4000"),
        (None, 400, "null"),
        (["sereus:device/"], 400, "string"),
    ],
)
def test_garbage_links_get_words(api, node, link, status, words) -> None:
    answer = post(api, API + "join/", {"link": link})
    assert answer.status_code == status
    assert words in str(answer.json())
    assert not PendingJoin.objects.exists()


def test_a_node_with_threads_of_its_own_cannot_join(api, chats) -> None:
    refused = post(api, API + "join/", {"link": foreign_link()})
    assert refused.status_code == 409
    assert "already belongs to someone" in refused.json()["detail"]
    expired = post(api, API + "join/", {"link": foreign_link(expires_in_ms=-1)})
    assert expired.status_code == 400
    assert "expired" in expired.json()["detail"]


def test_removing_a_device(api, chats) -> None:
    laptop = other_device("Laptop")
    assert api.delete(API + laptop + "/").status_code == 204
    row = next(d for d in control.party_devices(include_gone=True) if d.device == laptop)
    assert row.state == PartyDevice.State.REMOVED
    assert not control.certified(chats[0], bytes.fromhex(laptop))
    gone = next(d for d in api.get(API).json() if d["device"] == laptop)
    assert (gone["state"], gone["removable"]) == ("removed", False)


def test_forged_removals_are_refused_in_words(api, chats) -> None:
    other_device("Laptop")
    me = control.this_device().hex()
    standby = control.standby_current().device
    for device, status, words in (
        (me, 403, "Remove this device from another of your devices."),
        (standby, 403, "The recovery key cannot be removed"),
        ("ab" * 32, 404, "No device of yours"),
        ("not-hex", 400, "64 hexadecimal characters"),
        ("AB" * 40, 400, "64 hexadecimal characters"),
    ):
        answer = api.delete(API + device + "/")
        assert answer.status_code == status, device
        assert words in answer.json()["detail"]
    assert control.certified(chats[0], bytes.fromhex(me))


def test_recovery_progress(api, node) -> None:
    assert api.get(API + "restore/").json()["state"] == "none"
    RestoreRun.objects.create(sources=[], state="listing")
    SyncProgress.objects.create(run="restore", thread_id="ab" * 32, control=True, state="done")
    found = api.get(API + "restore/").json()
    assert (found["state"], found["words"], found["running"]) == (
        "listing",
        "finding your threads",
        True,
    )
    assert [(t["control"], t["state"]) for t in found["threads"]] == [(True, "done")]


def test_a_mirror_says_what_it_keeps(api, node, settings) -> None:
    assert api.get(API + "mirror/").status_code == 404
    settings.SEREUS = dataclasses.replace(settings.SEREUS, mirror=True)
    assert api.get(API + "mirror/").json() == []
    kept("ab" * 32)
    found = api.get(API + "mirror/").json()
    assert [(t["thread"], t["party"], t["control"], t["ops"], t["roster"]) for t in found] == [
        ("01" * 32, "ab" * 32, True, 2, 1),
        ("02" * 32, "ab" * 32, False, 0, 0),
    ]
    assert found[0]["last_received"] is not None


def test_the_api_needs_the_owner(node) -> None:
    for url in (API, API + "join/", API + "restore/"):
        assert Client().get(url).status_code in (401, 403)
    assert Client().post(API + "link/", {}).status_code in (401, 403)


def test_the_schema_has_the_devices_api(api, node) -> None:
    paths = api.get("/api/schema/?format=json").json()["paths"]
    for path, methods in {
        "/api/v1/devices/": {"get"},
        "/api/v1/devices/link/": {"post"},
        "/api/v1/devices/join/": {"get", "post"},
        "/api/v1/devices/restore/": {"get"},
        "/api/v1/devices/mirror/": {"get"},
        "/api/v1/devices/{device}/": {"delete"},
    }.items():
        assert methods <= set(paths[path]), path
    link = paths["/api/v1/devices/link/"]["post"]
    assert "201" in link["responses"]
    assert "once" in link["description"]
