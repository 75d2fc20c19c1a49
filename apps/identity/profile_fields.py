"""What a profile field may hold (ADR 26), checked in words before anything is written: the
standard fields and fields of one's own (``x-<slug>`` with a label), dates in the past, web
links, and photos as data: URLs whose bytes are the picture type they say. It reads nothing,
so the API, the pages and the services say the same words."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import date
from urllib.parse import urlsplit

from apps.identity.models import MAX_LABEL, MAX_NAME, MAX_TEXT

# The standard fields, in the order pages show them, with what pages call them.
STANDARD: dict[str, str] = {
    "name": "Name",
    "photo": "Photo",
    "birth_date": "Birth date",
    "location": "Location",
    "contact": "Contact",
    "links": "Links",
}
FREE_PREFIX = "x-"
_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
MAX_LINKS = 10
MAX_PHOTO_BYTES = 290 * 1024  # decoded: the data: URL stays under models.MAX_PHOTO
PHOTO_TYPES = ("image/jpeg", "image/png", "image/webp")


class ProfileError(Exception):
    """A profile action that cannot be done, in words; ``code`` as the API maps it to a status:
    invalid, not_found, forbidden, not_enabled, refused, unavailable."""

    def __init__(self, code: str, words: str) -> None:
        super().__init__(words)
        self.code = code
        self.words = words


# -- what a field may hold --------------------------------------------------------------------


def field_label(name: str, label: str = "") -> str:
    """What pages call a field: the standard label, the person's own, else the slug in words."""
    if name in STANDARD:
        return STANDARD[name]
    if label:
        return label
    return name.removeprefix(FREE_PREFIX).replace("-", " ").capitalize() or "A field"


def name_problem(name: str) -> str | None:
    if name in STANDARD:
        return None
    if not name.startswith(FREE_PREFIX):
        return f"“{name[:40]}” is not a field: use one of {', '.join(STANDARD)} or x-your-name."
    slug = name.removeprefix(FREE_PREFIX)
    if len(name) > MAX_NAME or not _SLUG.match(slug):
        return (
            "A field of your own is named x- then lowercase letters, digits and single dashes "
            f"(at most {MAX_NAME} characters), like x-shoe-size."
        )
    return None


def photo_bytes(value: str) -> tuple[str, bytes] | None:
    """The image type and bytes of a photo's data: URL, or None if it is not one."""
    head, sep, body = value.partition(",")
    match = re.fullmatch(r"data:(image/[a-z]+);base64", head)
    if not sep or match is None:
        return None
    try:
        data = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return None
    return match.group(1), data


def image_type(data: bytes) -> str | None:
    """The image type the file's first bytes say (JPEG, PNG or WebP), else None."""
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def photo_data_url(data: bytes) -> str:
    """A photo's data: URL, its type from its bytes (ProfileError if it is not a photo)."""
    kind = image_type(data)
    if kind is None:
        raise ProfileError("invalid", "The photo must be a JPEG, PNG or WebP picture.")
    return f"data:{kind};base64,{base64.b64encode(data).decode()}"


def _photo_problem(value: str) -> str | None:
    found = photo_bytes(value)
    if found is None:
        return "The photo must be a picture (a data: URL of a JPEG, PNG or WebP image)."
    declared, data = found
    if declared not in PHOTO_TYPES:
        return "The photo must be a JPEG, PNG or WebP picture."
    if len(data) > MAX_PHOTO_BYTES:
        return f"The photo is {len(data) // 1024} KiB: at most 290 KiB fits. Use a smaller one."
    if image_type(data) != declared:
        return "The photo's contents are not the picture it says it is: upload it again."
    return None


def _date_problem(value: str, today: date) -> str | None:
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return "The birth date must be a real date, written like 1990-04-23."
    if len(value) != 10:
        return "The birth date must be a real date, written like 1990-04-23."
    if day >= today:
        return "The birth date must be in the past."
    return None


def _links(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip()]


def _links_problem(value: str) -> str | None:
    links = _links(value)
    if len(links) > MAX_LINKS:
        return f"At most {MAX_LINKS} links, one per line (you gave {len(links)})."
    for link in links:
        parts = urlsplit(link)
        if parts.scheme not in ("http", "https") or not parts.netloc or " " in link:
            return f"“{link[:60]}” is not a web address: each link starts with https:// or http://."
    return None


def value_clean(name: str, value: str) -> str:
    """The value as it is kept: trimmed; links one per line without blank lines."""
    if name == "photo":
        return value.strip()
    if name == "links":
        return "\n".join(_links(value))
    return value.strip()


def value_problem(name: str, value: str, *, today: date | None = None) -> str | None:
    """Why ``value`` (cleaned) cannot be field ``name``'s, in words; None if it can."""
    if name == "photo":
        return _photo_problem(value)
    what = field_label(name)
    if len(value) > MAX_TEXT:
        return f"{what} is {len(value)} characters long: at most {MAX_TEXT} fit."
    if any(ord(c) < 32 and c not in "\n\t" for c in value):
        return f"{what} holds characters that cannot be shown: type it again."
    if name == "birth_date":
        return _date_problem(value, today or date.today())
    if name == "links":
        return _links_problem(value)
    return None


def label_problem(name: str, label: str) -> str | None:
    if name in STANDARD:
        return None
    if not label.strip():
        return "Give your own field a label (what others see it called)."
    if len(label) > MAX_LABEL:
        return f"A label is at most {MAX_LABEL} characters."
    return None
