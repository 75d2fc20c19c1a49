"""Who holds a record (``access.holders``), and the sharing pages: the patient shares with a
provider (a single-use link with a QR code and the grant chosen), the provider's node (another
node in this process) joins with it and gets that grant, the access page lists them with their
devices and when each last synced, an open invite is revoked, a grant is changed, and access is
revoked after a confirm step: the provider is removed and the record's key replaced, so the
next write never reaches its database. Bad input is refused in words, nothing is written, and no
page shows a hex id."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.core.delivery_models import PeerVector
from apps.core.threads.registry import thread_database
from apps.medical import access, fhir, selectors, services, sharing
from apps.medical.policy import CAREGIVER, PROVIDER
from tests.checklist.conftest import browser, owner_user  # noqa: F401
from tests.core.threads.conftest import node, thread_databases_allowed  # noqa: F401
from tests.medical import samples
from tests.medical.access_support import Provider, provider_joins

pytestmark = pytest.mark.django_db(transaction=True)

HEX_ID = re.compile(r"(?<![0-9A-Za-z])(?=[0-9A-Fa-f]*[A-Fa-f])[0-9A-Fa-f]{12,}(?![0-9A-Za-z])")
ALL = list(fhir.TYPES)  # every type the record keeps, in display order


def readable(page: bytes) -> str:
    """What a person reads on the page, checked: no hex id, no template syntax."""
    text = page.decode()
    main = text.split('<main id="main"', 1)[1].split("</main>", 1)[0]
    main = re.sub(r"<(script|textarea|svg)\b.*?</\1>", " ", main, flags=re.S)
    words = html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", main)))
    assert not HEX_ID.search(words), HEX_ID.search(words)
    for syntax in ("{{", "{%", "{#"):
        assert syntax not in words
    return words


@pytest.fixture
def record(node):  # noqa: F811 - the fixture
    return services.record_create(name="Ada Lovelace", birth_date="1985-12-10")


@pytest.fixture
def lee(record, tmp_path) -> Provider:
    return provider_joins(record, tmp_path, "Dr. Lee", write=["Observation", "Condition"])


# -- holders -----------------------------------------------------------------------------------


def test_holders_names_each_member_with_grant_and_devices(record, lee: Provider) -> None:
    found = access.holders(record)
    assert [(h.name, h.role) for h in found] == [("you", "owner"), ("Dr. Lee", PROVIDER)]
    me, doctor = found
    assert me.is_me
    assert [d.label for d in me.devices] == ["this device"]
    assert doctor.label == "Dr. Lee, Riverside Clinic"
    assert doctor.grant is not None
    assert doctor.grant.write == ["Condition", "Observation"]
    assert set(doctor.grant.read) == set(ALL)
    [device] = doctor.devices
    assert device.label == "Dr. Lee's device"
    assert device.last_synced is None
    assert not device.holds_latest
    assert device.words == "has not synced with this node yet"


def test_a_device_holds_the_latest_when_its_vector_covers_this_nodes(record, lee: Provider) -> None:
    """The vectors the p2p node keeps (what each device said in its last sync session) say
    which devices hold everything this node has."""
    database = thread_database(record.thread)
    device = lee.node.keys.device.verify_key.encode().hex()
    mine = {dev.hex(): seq for dev, seq in database.replica().version_vector().items()}
    seen = timezone.now() - timedelta(minutes=5)
    PeerVector.objects.create(thread=record, device_id=device, vv=mine, seen_at=seen)
    [sync] = access.holder(record, lee.member).devices
    assert (sync.last_synced, sync.holds_latest) == (seen, True)
    assert sync.words == "holds everything this node has; last synced 5 minutes ago"
    services.resource_write(record, "AllergyIntolerance", samples.allergy())  # it lacks this
    [sync] = access.holder(record, lee.member).devices
    assert not sync.holds_latest
    assert sync.words == "does not hold everything this node has yet; last synced 5 minutes ago"


def test_open_invites_say_the_grant_they_will_give(record) -> None:
    made = sharing.share_invite(
        record, role=CAREGIVER, label="Sam", read=["AllergyIntolerance"], write=[],
        expires_in=timedelta(hours=1),
    )  # fmt: skip
    [invite] = access.open_invites(record)
    assert invite.invite_id == made.record.invite_id
    assert (invite.label, invite.role, invite.read, invite.write) == (
        "Sam", "caregiver", ["AllergyIntolerance"], [],
    )  # fmt: skip
    assert invite.expires == "expires in 1 hour"


def test_former_holders_keep_what_they_had(record, lee: Provider) -> None:
    sharing.access_revoke(record, member_id=lee.member)
    assert [h.name for h in access.holders(record)] == ["you"]
    [gone] = access.former(record)
    assert (gone.name, gone.how) == ("Dr. Lee", "removed")
    assert gone.grant is not None
    assert gone.grant.status == "revoked"


def test_who_also_holds_the_sensitive_part(record, lee: Provider, tmp_path) -> None:
    """Only the providers the patient picked join the sensitive part; the access page says
    which (by their devices: a person's member key differs from thread to thread)."""
    kim = provider_joins(record, tmp_path, "Dr. Kim", sensitive=True)
    services.resource_write(record, "Condition", samples.condition(), sensitive=True)
    part = selectors.sensitive_of(record)
    assert part is not None
    kim.join_part(part, tmp_path)
    found = {h.name: h.sensitive for h in access.holders(record)}
    assert found == {"you": True, "Dr. Lee": False, "Dr. Kim": True}


def test_types_in_words() -> None:
    assert access.types_words(ALL) == "everything"
    assert access.types_words([]) == "nothing"
    assert access.types_words(["Condition", "Observation"]) == "problems and results"
    assert access.types_words(["Observation", "Condition", "Immunization"]) == (
        "problems, vaccinations and results"
    )


# -- the pages ---------------------------------------------------------------------------------


def test_sharing_shows_a_single_use_link_with_its_qr_code(browser, record) -> None:  # noqa: F811
    url = reverse("medical:share", args=[record.id])
    page = browser.get(url)
    assert page.status_code == 200
    words = readable(page.content)
    assert "Share with" in words
    assert "sensitive" in words
    response = browser.post(
        url,
        {
            "role_choice": PROVIDER,
            "label": "Dr. Lee, Riverside Clinic",
            "preset": "read_all_write_clinical",
            "lifetime": "1h",
        },
    )
    assert response.status_code == 302
    shown = browser.get(response["Location"])
    assert shown["Cache-Control"] == "no-store"
    words = readable(shown.content)
    assert "works once" in words
    assert "expires in 1 hour" in words
    assert "reads everything" in words
    assert "adds problems and results" in words
    [invite] = record.invites.all()
    assert invite.link in shown.content.decode()
    assert "<svg" in shown.content.decode()
    assert reverse("core:thread_join") in shown.content.decode()  # how the provider joins


def test_the_link_page_says_when_they_joined(browser, record, tmp_path) -> None:  # noqa: F811
    """The page with the QR code asks whether the link was used: nothing while it was not,
    then the card that says they joined, in place of the code."""
    made = sharing.share_invite(
        record, role=PROVIDER, label="Dr. Lee", read=ALL, write=[], expires_in=timedelta(hours=1)
    )
    status = reverse("medical:shared_status", args=[record.id, made.record.invite_id])
    page = browser.get(reverse("medical:shared", args=[record.id, made.record.invite_id]))
    assert status in page.content.decode()  # what the page polls
    assert browser.get(status).status_code == 204
    provider_joins(record, tmp_path, "Dr. Lee", link=made.link)
    answer = browser.get(status)
    assert answer.status_code == 200
    words = answer.content.decode()
    assert "Dr. Lee joined with it" in words
    assert made.link not in words
    assert "Dr. Lee joined with it" in readable(
        browser.get(reverse("medical:shared", args=[record.id, made.record.invite_id])).content
    )


def test_sharing_refuses_bad_choices_in_words(browser, record) -> None:  # noqa: F811
    url = reverse("medical:share", args=[record.id])
    caregiver_writes = browser.post(
        url, {"role_choice": CAREGIVER, "preset": "custom", "write": ["Observation"],
              "lifetime": "1d"},
    )  # fmt: skip
    assert caregiver_writes.status_code == 400
    assert "A caregiver reads the record and adds nothing." in readable(caregiver_writes.content)
    backwards = browser.post(
        url, {"role_choice": PROVIDER, "preset": "read_all", "lifetime": "1d",
              "start": "2026-05-02", "end": "2026-05-01"},
    )  # fmt: skip
    assert backwards.status_code == 400
    assert "must end on or after" in readable(backwards.content)
    forever = browser.post(url, {"role_choice": PROVIDER, "preset": "read_all", "lifetime": "9y"})
    assert forever.status_code == 400
    assert not record.invites.exists()


def test_the_access_page_lists_holders_and_invites(browser, record, lee) -> None:  # noqa: F811
    sharing.share_invite(
        record, role=CAREGIVER, label="Sam", read=ALL, write=[], expires_in=timedelta(days=1)
    )
    words = readable(browser.get(reverse("medical:access", args=[record.id])).content)
    assert "Dr. Lee" in words
    assert "Riverside Clinic" in words
    assert "Dr. Lee's device" in words
    assert "has not synced with this node yet" in words
    assert "Sam" in words
    assert "expires in 1 day" in words
    assert "Revoke access" in words


def test_revoking_an_open_invite(browser, record) -> None:  # noqa: F811
    made = sharing.share_invite(
        record, role=PROVIDER, label="Dr. Kim", read=ALL, write=[], expires_in=timedelta(days=1)
    )
    url = reverse("medical:invite_revoke", args=[record.id, made.record.invite_id])
    response = browser.post(url)
    assert response.status_code == 302
    record.invites.get().refresh_from_db()
    assert record.invites.get().status == "revoked"
    assert access.open_invites(record) == []


def test_changing_a_grant(browser, record, lee: Provider) -> None:  # noqa: F811
    url = reverse("medical:grant_edit", args=[record.id, lee.member])
    page = browser.get(url)
    assert page.status_code == 200
    assert "Dr. Lee" in readable(page.content)
    response = browser.post(
        url, {"label": "Dr. Lee", "preset": "custom", "read": ["AllergyIntolerance"],
              "write": ["Observation"]},
    )  # fmt: skip
    assert response.status_code == 302, response.content[:3000]
    grant = selectors.grant_of(record, lee.member)
    assert grant is not None
    assert (grant.label, grant.read, grant.write) == (
        "Dr. Lee", ["AllergyIntolerance", "Observation"], ["Observation"],
    )  # fmt: skip
    # Bad input is refused in words and changes nothing.
    for bad in (
        {"preset": "custom", "read": ["Nonsense"]},
        {"preset": "read_all", "start": "someday"},
        {"preset": "custom"},
    ):
        answer = browser.post(url, bad)
        assert answer.status_code == 400
        assert readable(answer.content)
    assert selectors.grant_of(record, lee.member) == grant


def test_a_caregivers_grant_has_no_writes(browser, record, tmp_path) -> None:  # noqa: F811
    sam = provider_joins(record, tmp_path, "Sam", role=CAREGIVER, label="Sam")
    url = reverse("medical:grant_edit", args=[record.id, sam.member])
    assert "They add and change" not in readable(browser.get(url).content)
    answer = browser.post(url, {"label": "Sam", "preset": "read_all", "write": ["Observation"]})
    assert answer.status_code == 302
    grant = selectors.grant_of(record, sam.member)
    assert grant is not None
    assert (grant.read, grant.write) == (ALL, [])


def test_revoking_access_asks_first_then_removes_and_rekeys(
    browser,  # noqa: F811 - the fixture
    record,
    lee: Provider,
) -> None:
    url = reverse("medical:access_revoke", args=[record.id, lee.member])
    confirm = readable(browser.get(url).content)
    assert "keeps what their devices already hold" in confirm
    assert "nothing written from now on reaches them" in confirm
    assert selectors.role_of(record, lee.member) == PROVIDER  # asking changed nothing
    response = browser.post(url)
    assert response.status_code == 302
    assert selectors.role_of(record, lee.member) is None
    after = readable(browser.get(response["Location"]).content)
    assert "Dr. Lee no longer holds the record" in after
    assert "Who held it before" in after
    # The next write never reaches the revoked provider's node: it cannot open it.
    services.resource_write(record, "AllergyIntolerance", samples.allergy(display="Latex"))
    lee.receive()
    assert "Latex" not in lee.readable_text()


def test_unknown_threads_and_members_are_404(browser, record) -> None:  # noqa: F811
    assert browser.get(reverse("medical:access", args=["ab" * 32])).status_code == 404
    gone = browser.get(reverse("medical:grant_edit", args=[record.id, "cd" * 32]))
    assert gone.status_code == 404
    revoke = browser.post(reverse("medical:access_revoke", args=[record.id, "cd" * 32]))
    assert revoke.status_code == 302  # back to the page, with the refusal in words
    assert "nothing to revoke" in readable(browser.get(revoke["Location"]).content)
    mine = browser.post(reverse("medical:access_revoke", args=[record.id, record.member_id]))
    assert "your own access cannot be revoked" in readable(browser.get(mine["Location"]).content)
    assert selectors.role_of(record, record.member_id) == "owner"
