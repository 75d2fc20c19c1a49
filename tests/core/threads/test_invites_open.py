"""Open invites at the node (ADR 14): the admitting node checks and writes admissions to a
thread one at a time, so newcomers racing for an invite's last uses are told "used up" with
nothing written; the API and the thread page make invites for several people, show how many
joined, and say in plain words which roles such a link may grant."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import nacl.signing
import nacl.utils
import pytest
from django.db import connections
from django.urls import reverse

from apps.core.models import Thread, ThreadInvite
from apps.core.thread.invite import Invite, invite_parse
from apps.core.thread.writer import RedemptionRequest, ThreadWriter, redemption_request
from apps.core.threads import services
from apps.core.threads.redemption import USED_UP
from tests.core.threads.conftest import log_size, reloads_counted
from tests.core.threads.test_admin_and_pages import owner_browser  # noqa: F401 - a fixture
from tests.core.threads.test_api import api  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db(transaction=True)


def open_invite(thread: Thread, uses: int | None, role: str = "reader") -> Invite:
    created = services.invite_create(
        thread=thread, role=role, expires_in=timedelta(hours=1), uses=uses, label="followers"
    )
    return created.invite


def newcomer(invite: Invite) -> RedemptionRequest:
    """A request of a party of its own (a master secret and a device nobody else has)."""
    return redemption_request(
        invite,
        master_secret=nacl.utils.random(32),
        device_key=nacl.signing.SigningKey.generate(),
    )


def test_five_redemptions_at_once_of_a_cap_3_invite_admit_three_and_write_nothing_else(
    thread, tdb, monkeypatch
):
    invite = open_invite(thread, 3)
    requests = [newcomer(invite) for _ in range(5)]
    tdb.replica()
    size = log_size(tdb)
    reloads = reloads_counted(monkeypatch)
    # Each admission takes a while, so that all five would pass the check before the first one
    # is written, were they not checked and written one at a time.
    admit = ThreadWriter.admit

    def slow(self, request):
        time.sleep(0.1)
        return admit(self, request)

    monkeypatch.setattr(ThreadWriter, "admit", slow)
    start = threading.Barrier(5)

    def redeem(request: RedemptionRequest):
        start.wait()
        try:
            return len(services.invite_admit(thread=thread, request=request))
        except services.ThreadServiceError as exc:
            return (exc.code, str(exc))
        finally:
            connections.close_all()

    with ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(redeem, requests))
    assert sorted(answers, key=str) == [("used", USED_UP), ("used", USED_UP), 2, 2, 2]
    # Nothing but the three admissions was written (a redeem and a key epoch each), no write
    # was refused, and the replica was never reloaded.
    assert log_size(tdb) == size + 6
    assert reloads == []
    replica = tdb.replica()
    assert all(d.status == "accepted" for d in replica.decisions.values())
    members = {r.member for r in requests} & replica.snapshot().roles.keys()
    assert len(members) == 3
    record = ThreadInvite.objects.get(invite_id=invite.public_key.hex())
    assert (record.status, record.uses, record.used, record.label) == (
        "used up",
        3,
        3,
        "followers",
    )


def test_the_same_newcomer_again_and_anyone_with_an_uncapped_link(thread, tdb):
    invite = open_invite(thread, None)
    first = newcomer(invite)
    assert len(services.invite_admit(thread=thread, request=first)) == 2
    size = log_size(tdb)
    assert services.invite_admit(thread=thread, request=first) == []  # a lost answer, again
    assert log_size(tdb) == size
    for _ in range(3):
        services.invite_admit(thread=thread, request=newcomer(invite))
    record = ThreadInvite.objects.get(invite_id=invite.public_key.hex())
    assert (record.status, record.uses, record.used) == ("open", None, 4)


def test_a_link_for_several_people_only_at_an_open_role_and_nothing_written_otherwise(thread, tdb):
    size = log_size(tdb)
    for uses in (2, None):
        with pytest.raises(services.ThreadServiceError) as refused:
            open_invite(thread, uses, role="writer")
        assert refused.value.code == "invalid"
        assert str(refused.value) == (
            "a link for more than one person cannot make anyone writer in this thread (it can "
            "make: reader); make it for one person instead"
        )
    for uses, label in ((0, ""), (1_000_001, ""), (2, "x" * 81), (2, "bell\x07")):
        with pytest.raises(services.ThreadServiceError) as refused:
            services.invite_create(
                thread=thread, role="reader", expires_in=timedelta(hours=1), uses=uses, label=label
            )
        assert refused.value.code == "invalid"
    assert log_size(tdb) == size
    assert not ThreadInvite.objects.exists()
    spaced = services.invite_create(
        thread=thread, role="writer", expires_in=timedelta(hours=1), label="  for\tBob "
    )
    assert (spaced.record.uses, spaced.record.label) == (1, "for Bob")


def test_the_invites_api_makes_open_invites_and_counts_their_uses(api, thread):  # noqa: F811
    url = f"/api/v1/threads/{thread.id}/invites/"

    def post(body: dict):
        return api.post(url, {"expires_in": 3600, **body}, content_type="application/json")

    capped = post({"role": "reader", "uses": 10, "label": "shop followers"})
    assert capped.status_code == 201
    body = capped.json()
    assert (body["uses"], body["used"], body["label"], body["status"]) == (
        10,
        0,
        "shop followers",
        "open",
    )
    assert invite_parse(body["link"]).role == "reader"
    anyone = post({"role": "reader", "uses": None}).json()
    assert (anyone["uses"], anyone["label"]) == (None, "")
    single = post({"role": "writer"}).json()
    assert (single["uses"], single["used"]) == (1, 0)
    closed = post({"role": "writer", "uses": 5})
    assert closed.status_code == 400
    assert closed.json()["detail"].startswith("a link for more than one person cannot make")
    assert post({"role": "reader", "uses": 0}).status_code == 400
    assert post({"role": "reader", "label": "x" * 81}).status_code == 400

    services.invite_admit(thread=thread, request=newcomer(invite_parse(body["link"])))
    listed = {i["id"]: i for i in api.get(url).json()}
    assert set(listed) == {body["id"], anyone["id"], single["id"]}
    assert (listed[body["id"]]["used"], listed[body["id"]]["status"]) == (1, "open")
    assert listed[anyone["id"]]["used"] == 0


def test_the_thread_page_makes_a_link_for_several_people(owner_browser, thread):  # noqa: F811
    page_url = reverse("core:thread_people", args=[thread.id])
    invite_url = reverse("core:thread_invite", args=[thread.id])
    form = owner_browser.get(page_url).content.decode()
    for words in (
        "How many people may use this link",
        "One person",
        "Up to a number of people",
        "Anyone with the link",
        "A link for more than one person can make someone reader.",
        "Who is it for?",
    ):
        assert words in form

    def create(fields: dict) -> str:
        response = owner_browser.post(invite_url, {"expires_in": "3600", **fields})
        assert response["Location"] == page_url
        return owner_browser.get(page_url).content.decode()

    page = create({"role": "reader", "who": "some", "up_to": "10", "label": "shop followers"})
    assert "up to 10 people can join with this link" in page
    assert "shop followers</strong>" in page
    assert "joins as reader (reads only) · 10 of 10 places left · expires in 1 hour" in page
    record = ThreadInvite.objects.get(label="shop followers")
    assert (record.uses, record.used) == (10, 0)
    page = create({"role": "reader", "who": "anyone", "up_to": "1"})  # the number is ignored
    assert "anyone who has this link can join" in page
    assert "joins as reader (reads only) · for anyone with the link, 0 joined so far" in page
    assert ThreadInvite.objects.get(uses=None).used == 0

    page = create({"role": "writer", "who": "anyone"})
    assert "a link for more than one person cannot make anyone writer in this thread" in page
    page = create({"role": "reader", "who": "some"})
    assert "Say how many people may use the link (2 or more)." in page
    assert ThreadInvite.objects.count() == 2
    # One person, as before: the link works once.
    page = create({"role": "writer", "who": "one", "up_to": "50"})
    assert "It works once." in page
    assert ThreadInvite.objects.get(role="writer").uses == 1


def test_the_admin_makes_links_for_several_people(owner_browser, thread):  # noqa: F811
    add = reverse("admin:core_threadinvite_add")

    def create(fields: dict):
        return owner_browser.post(
            add, {"thread": thread.pk, "expires_in_hours": 2, **fields}, follow=True
        )

    create({"role": "reader", "uses": 5, "label": "shop followers"})
    create({"role": "reader", "anyone": "on"})
    create({"role": "writer"})  # one person, as before
    refused = create({"role": "writer", "uses": 3})
    assert "A link for more than one person cannot make anyone writer" in refused.content.decode()
    made = {(i.role, i.uses, i.label) for i in ThreadInvite.objects.all()}
    assert made == {("reader", 5, "shop followers"), ("reader", None, ""), ("writer", 1, "")}
    listing = owner_browser.get(reverse("admin:core_threadinvite_changelist")).content.decode()
    assert "shop followers" in listing
