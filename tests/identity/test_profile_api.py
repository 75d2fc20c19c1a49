"""The profile API (ADR 26): fields read and set with refusals in words as JSON errors, sharing
into a thread and stopping, what a thread sees (per member, only proven fields), and an SD-JWT
presentation that the sd-jwt library verifies, and that stops verifying when a field is
altered."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from jwcrypto import jwk, jws

from apps.identity import formats, profile
from apps.messaging import services as messaging
from tests.identity.support import Club
from tests.identity.test_profile_sharing import duty_by_hand  # noqa: F401 - autouse

pytestmark = pytest.mark.django_db(transaction=True)

FIELDS = "/api/v1/profile/fields/"


def put(api: Client, url: str, body) -> object:
    return api.put(url, json.dumps(body), content_type="application/json")


def share_url(thread) -> str:
    return f"/api/v1/threads/{thread.id}/profile/share/"


@pytest.fixture
def api(browser) -> Client:
    return browser


def test_fields_are_set_and_read_and_a_bad_one_is_refused_in_words(api) -> None:
    assert api.get(FIELDS).json() == []
    done = put(
        api,
        FIELDS,
        {"fields": {"name": {"value": "Alice"}, "x-grade": {"value": "6b", "label": "Grade"}}},
    )
    assert done.status_code == 200, done.json()
    assert [(f["name"], f["label"], f["value"]) for f in done.json()] == [
        ("name", "Name", "Alice"),
        ("x-grade", "Grade", "6b"),
    ]
    bad = put(api, FIELDS, {"fields": {"birth_date": {"value": "2999-01-01"}}})
    assert bad.status_code == 400
    assert bad.json()["error"] == "invalid"
    assert bad.json()["detail"] == "The birth date must be in the past."
    junk = put(api, FIELDS, {"fields": ["name"]})
    assert junk.status_code == 400
    assert "error" in junk.json()


def test_owner_only(client) -> None:
    refused = client.get(FIELDS)
    assert refused.status_code in (401, 403)


def test_sharing_stopping_and_what_a_thread_sees(api, club: Club) -> None:
    put(api, FIELDS, {"fields": {"name": {"value": "Alice"}, "location": {"value": "Lyon"}}})
    shared = api.post(
        share_url(club.thread), {"fields": ["name", "location"]}, content_type="application/json"
    )
    assert shared.status_code == 200, shared.json()
    assert shared.json()["shared"] == ["name", "location"]
    seen = api.get(f"/api/v1/threads/{club.thread.id}/profile/").json()
    assert seen == [
        {
            "member": club.me,
            "name": "you",
            "mine": True,
            "fields": [
                {"name": "name", "label": "Name", "value": "Alice"},
                {"name": "location", "label": "Location", "value": "Lyon"},
            ],
        }
    ]
    fields = {f["name"]: f for f in api.get(FIELDS).json()}
    assert fields["name"]["shared_with"] == [
        {"thread": club.thread.id, "thread_name": "Climbing club"}
    ]
    stopped = api.delete(
        share_url(club.thread), {"fields": ["location"]}, content_type="application/json"
    )
    assert stopped.status_code == 200
    assert stopped.json()["shared"] == ["name"]
    other = messaging.conversation_create(name="Work", my_name="Alice")
    assert api.get(f"/api/v1/threads/{other.id}/profile/").json() == []
    missing = api.post(
        share_url(club.thread), {"fields": ["contact"]}, content_type="application/json"
    )
    assert missing.status_code == 404
    assert missing.json()["detail"] == "Your profile has no Contact yet."
    nowhere = api.post(
        "/api/v1/threads/" + "ab" * 32 + "/profile/share/",
        {"fields": ["name"]},
        content_type="application/json",
    )
    assert nowhere.status_code == 404


def test_a_presentation_verifies_with_sd_jwt_and_an_altered_field_does_not(api) -> None:
    from sd_jwt.verifier import SDJWTVerifier

    put(
        api,
        FIELDS,
        {
            "fields": {
                "name": {"value": "Alice"},
                "location": {"value": "Lyon"},
                "contact": {"value": "alice@example.org"},
            }
        },
    )
    got = api.get("/api/v1/profile/credential/?fields=name,location")
    assert got.status_code == 200, got.json()
    body = got.json()
    public = formats.did_public(body["profile_key"])
    key = jwk.JWK.from_pyca(_ed25519(public))

    def issuer_key(issuer: str, header: dict) -> jwk.JWK:
        assert issuer == body["profile_key"]
        return key

    verified = SDJWTVerifier(body["sd_jwt"], issuer_key).get_verified_payload()
    assert verified["name"] == "Alice"
    assert verified["location"] == "Lyon"
    assert "contact" not in verified  # not chosen: only its salted digest is there
    # One field altered (a leaf re-made with another value under its salt): its digest is not
    # in the signed commitment, so the library does not vouch for it; and the digests made
    # to match it need a new commitment the signature no longer covers.
    head, *leaves, _ = body["sd_jwt"].split("~")
    salt, name, _value = formats.disclosure_open(leaves[0])
    forged = formats.disclosure(salt, name, "Mallory")
    altered = "~".join([head, forged, *leaves[1:]]) + "~"
    verified = SDJWTVerifier(altered, issuer_key).get_verified_payload()
    assert "name" not in verified
    assert "Mallory" not in json.dumps(verified)
    top, claims, sig = head.split(".")
    payload = json.loads(formats.b64url_decode(claims))
    payload["_sd"].append(formats.disclosure_digest(forged))
    moved = ".".join([top, formats.b64url(formats.canonical_json(payload)), sig])
    with pytest.raises(Exception, match=r"(?i)verif|signature"):
        SDJWTVerifier(moved + "~" + forged + "~", issuer_key)
    # The commitment itself is a JWS that jwcrypto checks with the profile key.
    token = jws.JWS()
    token.deserialize(head)
    token.verify(key)
    bad = api.get("/api/v1/profile/credential/?fields=birth_date")
    assert bad.status_code == 404
    assert bad.json()["detail"] == "Your profile has no field birth_date."


def _ed25519(public: bytes):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    return Ed25519PublicKey.from_public_bytes(public)


def test_a_photo_goes_in_as_a_data_url(api) -> None:
    from tests.identity.test_profile import data_url, png

    photo = data_url("image/png", png())
    done = put(api, FIELDS, {"fields": {"photo": {"value": photo}}})
    assert done.status_code == 200
    assert done.json()[0]["value"] == photo
    liar = put(api, FIELDS, {"fields": {"photo": {"value": data_url("image/webp", png())}}})
    assert liar.status_code == 400
    assert "not the picture it says" in liar.json()["detail"]
    assert profile.fields()[0].value == photo
