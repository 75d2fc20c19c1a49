"""The profile pages without JavaScript (ADR 26): "Your profile" saves fields (a photo upload
becomes a small JPEG without its camera details), says why a value is refused next to it,
shares with a conversation and stops, and says plainly what sharing costs; a person's page
shows what they shared into the thread, by name, never by key."""

from __future__ import annotations

import io
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image

from apps.identity import profile
from tests.identity.support import Club
from tests.identity.test_profile_sharing import duty_by_hand  # noqa: F401 - autouse

pytestmark = pytest.mark.django_db(transaction=True)

PAGE = "/node/profile/"
HEX = re.compile(r"\b[0-9a-f]{32,}\b")


def text(response) -> str:
    return response.content.decode()


def visible(response) -> str:
    """The page's words outside tags and attribute values (where ids may go in links)."""
    body = text(response).split("<main", 1)[1]
    return re.sub(r"<[^>]*>", " ", body)


def jpeg_with_gps() -> bytes:
    image = Image.new("RGB", (1200, 800), (20, 120, 200))
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x8825] = {2: (45.0, 45.0, 0.0)}  # GPS latitude
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif)
    return out.getvalue()


def test_the_page_saves_fields_and_a_photo_without_its_camera_details(browser: Client) -> None:
    shown = browser.get(PAGE)
    assert shown.status_code == 200
    assert "Your profile" in text(shown)
    upload = SimpleUploadedFile("me.jpg", jpeg_with_gps(), content_type="image/jpeg")
    saved = browser.post(
        PAGE,
        {
            "name": "Alice Martin",
            "birth_date": "1990-04-23",
            "links": "https://alice.example",
            "photo": upload,
            "label:new": "Climbing grade",
            "value:new": "7a",
        },
        follow=True,
    )
    assert saved.status_code == 200
    assert "Your profile is saved" in text(saved)
    values = {f.name: f for f in profile.fields()}
    assert values["name"].value == "Alice Martin"
    assert values["x-climbing-grade"].label == "Climbing grade"
    kind, data = profile.photo_bytes(values["photo"].value)
    assert kind == "image/jpeg"
    with Image.open(io.BytesIO(data)) as photo:
        assert photo.size == (640, 640)  # square and small
        assert not photo.getexif()  # nothing of the camera's, no GPS position
    assert b"PhoneMaker" not in data
    assert 'alt="Your photo"' in text(saved)


def test_a_refused_value_is_said_next_to_its_field_and_nothing_is_saved(browser: Client) -> None:
    refused = browser.post(PAGE, {"name": "Alice", "links": "alice.example"})
    assert refused.status_code == 400
    assert "is not a web address" in text(refused)
    assert profile.fields() == []
    not_a_photo = SimpleUploadedFile("me.png", b"%PDF-1.4 nope", content_type="image/png")
    refused = browser.post(PAGE, {"name": "Alice", "photo": not_a_photo})
    assert refused.status_code == 400
    assert "not a picture this node can read" in text(refused)


def test_sharing_and_stopping_from_the_page(browser: Client, club: Club) -> None:
    profile.fields_set({"name": {"value": "Alice"}, "location": {"value": "Lyon"}})
    page = browser.get(PAGE)
    assert "A copy once shared stays with the people who received it" in text(page)
    assert "can tell, if they compare, that it is the same person" in text(page)
    assert "Climbing club" in text(page)
    shared = browser.post(
        "/node/profile/share/",
        {"thread": club.thread.id, "fields_": ["name", "location"]},
        follow=True,
    )
    assert "Climbing club now sees your Name, Location." in text(shared)
    assert "Stop sharing" in text(shared)
    stopped = browser.post(
        "/node/profile/unshare/", {"thread": club.thread.id, "field": "location"}, follow=True
    )
    assert "You no longer share your location with Climbing club." in text(stopped)
    assert [f.name for f in profile.fields() if f.shares] == ["name"]
    nothing = browser.post("/node/profile/share/", {"thread": club.thread.id}, follow=True)
    assert "Choose at least one field to share." in text(nothing)


def test_a_person_as_the_thread_sees_them_is_named_never_keyed(browser: Client, club: Club) -> None:
    profile.fields_set({"name": {"value": "Alice Martin"}, "links": {"value": "https://a.example"}})
    profile.share(thread=club.thread, names=["name", "links"])
    people = browser.get(f"/node/threads/{club.thread.id}/profiles/")
    assert people.status_code == 200
    assert "You · Alice Martin" in visible(people)
    assert "Shares name, links" in visible(people)
    assert not HEX.search(visible(people))
    me = browser.get(f"/node/threads/{club.thread.id}/people/{club.me}/")
    assert me.status_code == 200
    assert "Alice Martin" in text(me)
    assert 'href="https://a.example"' in text(me)
    assert not HEX.search(visible(me))
    dana = browser.get(f"/node/threads/{club.thread.id}/people/{club.dana.member}/")
    assert dana.status_code == 200
    assert "Dana shares nothing from their profile here." in text(dana)
    assert not HEX.search(visible(dana))
    stranger = browser.get(f"/node/threads/{club.thread.id}/people/{'cd' * 32}/")
    assert stranger.status_code == 404


def test_the_pages_are_the_owners_only(client: Client, club: Club) -> None:
    for url in (PAGE, f"/node/threads/{club.thread.id}/profiles/"):
        response = client.get(url)
        assert response.status_code == 302, url
        assert "login" in response["Location"]
    assert client.post("/node/profile/share/", {"thread": club.thread.id}).status_code == 302
    assert profile.shares() == {}


def test_a_credential_of_chosen_fields_downloads(browser: Client) -> None:
    from apps.identity import formats

    profile.fields_set({"name": {"value": "Alice"}, "contact": {"value": "alice@example.org"}})
    got = browser.get("/node/profile/credential/?fields=name")
    assert got.status_code == 200
    assert got["Content-Disposition"] == 'attachment; filename="profile.sd-jwt"'
    head, leaf, tail = got.content.decode().strip().split("~")
    assert tail == ""
    assert formats.disclosure_open(leaf)[1:] == ("name", "Alice")
    digests = formats.commitment_open(head, formats.did_public(profile.profile_did()))
    assert digests is not None
    assert formats.disclosure_digest(leaf) in digests
    assert len(digests) == 2  # the contact is there as a salted digest only
    assert b"alice@example.org" not in got.content
    nothing = browser.get("/node/profile/credential/", follow=True)
    assert "No credential was made: Choose at least one field" in text(nothing)


def test_the_photo_is_removed_with_its_box(browser: Client) -> None:
    from tests.identity.test_profile import data_url, png

    profile.fields_set(
        {"name": {"value": "Alice"}, "photo": {"value": data_url("image/png", png())}}
    )
    page = browser.get(PAGE)
    assert "Remove my photo" in text(page)
    browser.post(PAGE, {"name": "Alice", "photo_remove": "on"}, follow=True)
    assert [f.name for f in profile.fields()] == ["name"]
