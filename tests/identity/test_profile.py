"""The profile's fields (ADR 26): made on first use with the control thread, each value checked
in words before anything is written, a new salt for a new value, one commitment over every
field that verifies with the profile key, and an SD-JWT presentation of chosen fields."""

from __future__ import annotations

import base64
import io
from datetime import date, timedelta

import pytest
from PIL import Image

from apps.cadre.control import control_thread
from apps.identity import formats, profile
from apps.identity.models import ProfileField
from apps.identity.profile import ProfileError
from tests.identity.test_profile_sharing import duty_by_hand  # noqa: F401 - autouse

pytestmark = pytest.mark.django_db(transaction=True)


def png(size: int = 8) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), (200, 40, 40)).save(out, format="PNG")
    return out.getvalue()


def data_url(kind: str, data: bytes) -> str:
    return f"data:{kind};base64,{base64.b64encode(data).decode()}"


def rows() -> dict[str, ProfileField]:
    thread = profile.profile_thread()
    alias = profile._alias(thread)
    return {r.name: r for r in ProfileField.objects.using(alias)}


def test_the_profile_thread_is_made_once_after_the_control_thread(node) -> None:
    assert profile.profile_thread() is None
    assert profile.fields() == []
    thread = profile.profile_ensure()
    assert control_thread() is not None  # so the phrase restores it, as the storage thread
    assert thread.app == "profile"
    assert thread.role == "owner"
    assert profile.profile_ensure().pk == thread.pk


def test_fields_are_set_read_back_in_order_and_deleted_by_an_empty_value(node) -> None:
    changed = profile.fields_set(
        {
            "x-shoe-size": {"label": "Shoe size", "value": "42"},
            "name": {"value": "  Alice Example "},
            "links": {"value": "https://alice.example\n\n http://blog.example/a \n"},
            "birth_date": {"value": "1990-04-23"},
        }
    )
    assert sorted(changed) == ["birth_date", "links", "name", "x-shoe-size"]
    shown = profile.fields()
    assert [f.name for f in shown] == ["name", "birth_date", "links", "x-shoe-size"]
    assert shown[0].value == "Alice Example"
    assert shown[0].label == "Name"
    assert shown[2].value == "https://alice.example\nhttp://blog.example/a"
    assert shown[3].label == "Shoe size"
    assert not shown[3].standard
    assert profile.fields_set({"name": {"value": "Alice Example"}}) == []  # nothing changed
    assert profile.fields_set({"x-shoe-size": {"value": ""}}) == ["x-shoe-size"]
    assert "x-shoe-size" not in rows()


@pytest.mark.parametrize(
    ("name", "value", "label", "words"),
    [
        ("birth_date", "1990-02-30", "", "must be a real date"),
        ("birth_date", "23/04/1990", "", "must be a real date"),
        ("birth_date", (date.today() + timedelta(days=1)).isoformat(), "", "in the past"),
        ("links", "ftp://files.example", "", "is not a web address"),
        ("links", "alice.example", "", "is not a web address"),
        ("links", "\n".join(f"https://e.example/{i}" for i in range(11)), "", "At most 10"),
        ("contact", "x" * 2001, "", "at most 2000 fit"),
        ("location", "bell\x07", "", "cannot be shown"),
        ("photo", "https://example.com/me.png", "", "must be a picture"),
        ("photo", data_url("image/gif", b"GIF89a...."), "", "JPEG, PNG or WebP"),
        ("photo", data_url("image/jpeg", png()), "", "not the picture it says"),
        ("photo", data_url("image/png", b"\x89PNG\r\n\x1a\n" + b"0" * 300_000), "", "at most 290"),
        ("x-shoe-size", "42", "", "Give your own field a label"),
        ("x-Shoe size", "42", "Shoe", "lowercase letters"),
        ("nickname", "Al", "", "is not a field"),
    ],
)
def test_a_bad_value_is_refused_in_words_and_nothing_is_written(
    node, name, value, label, words
) -> None:
    profile.fields_set({"name": {"value": "Alice"}})
    with pytest.raises(ProfileError) as raised:
        profile.fields_set(
            {"contact": {"value": "alice@example.org"}, name: {"value": value, "label": label}}
        )
    assert raised.value.code == "invalid"
    assert words in raised.value.words
    assert "Traceback" not in raised.value.words
    assert set(rows()) == {"name"}  # the good field in the same call was not written either


def test_a_photo_is_kept_when_its_bytes_are_the_type_it_says(node) -> None:
    photo = data_url("image/png", png())
    profile.fields_set({"photo": {"value": photo}})
    assert rows()["photo"].value == photo
    assert profile.photo_data_url(png()) == photo
    with pytest.raises(ProfileError, match="JPEG, PNG or WebP"):
        profile.photo_data_url(b"%PDF-1.7 not a picture")


def test_a_new_value_gets_a_new_salt_and_a_new_label_keeps_it(node) -> None:
    profile.fields_set({"x-club": {"label": "Club", "value": "Rock Rats"}})
    first = rows()["x-club"].salt
    profile.fields_set({"x-club": {"label": "My club", "value": "Rock Rats"}})
    assert rows()["x-club"].salt == first
    assert rows()["x-club"].label == "My club"
    profile.fields_set({"x-club": {"label": "My club", "value": "Boulder Bats"}})
    assert rows()["x-club"].salt != first
    assert len(base64.urlsafe_b64decode(rows()["x-club"].salt + "==")) == 16


def test_the_commitment_covers_every_field_and_verifies_with_the_profile_key(node) -> None:
    profile.fields_set({"name": {"value": "Alice"}, "location": {"value": "Lyon"}})
    token = profile.presentation(["location"])
    head, *leaves, tail = token.split("~")
    assert tail == ""
    assert len(leaves) == 1
    key = formats.profile_key(node.master_secret)
    digests = formats.commitment_open(head, bytes(key.verify_key))
    assert digests is not None
    assert len(digests) == 2
    assert formats.disclosure_digest(leaves[0]) in digests
    assert formats.disclosure_open(leaves[0])[1:] == ("location", "Lyon")
    other = formats.profile_key(bytes(32))
    assert formats.commitment_open(head, bytes(other.verify_key)) is None
    # A changed value is a new leaf under a new commitment; the old leaf is no longer in it.
    profile.fields_set({"location": {"value": "Grenoble"}})
    again = profile.presentation(["location"]).split("~")
    assert formats.disclosure_digest(leaves[0]) not in formats.commitment_open(
        again[0], bytes(key.verify_key)
    )


def test_a_presentation_of_a_missing_field_is_refused_in_words(node) -> None:
    profile.fields_set({"name": {"value": "Alice"}})
    with pytest.raises(ProfileError, match="no field contact"):
        profile.presentation(["name", "contact"])
    with pytest.raises(ProfileError, match="at least one field"):
        profile.presentation([])
