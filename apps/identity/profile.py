"""The party's profile (ADR 26): its fields, kept in the profile thread as salted leaves under
one commitment signed by the profile key, and shared field by field into the threads the person
chooses. This module is the only writer of the profile thread's rows and of this member's
shared copies (``SharedField``) in other threads.

A shared copy carries the leaf, the commitment over every current field, the profile's public
key and the binding (the profile key's signature over this member's key in that thread). When a
field changes, ``copies_sync`` (run by ``profile_duties`` after the profile thread's ops) writes
the new leaf and commitment into every thread the field is shared with."""

from __future__ import annotations

import base64
import binascii
import logging
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import TypeVar
from urllib.parse import urlsplit

from django.db import transaction

from apps.core.models import Thread
from apps.core.threads import services as thread_services
from apps.core.threads.app_kit import app_enabled, app_write
from apps.core.threads.context import thread_context
from apps.core.threads.database import NodeKeys, WriteRefused
from apps.core.threads.registry import thread_database
from apps.core.threads.services import ThreadServiceError
from apps.core.threads.thread_apps import app_enable
from apps.identity import formats, policy
from apps.identity.models import (
    MAX_LABEL,
    MAX_NAME,
    MAX_TEXT,
    ProfileField,
    ProfileShare,
    SharedField,
)

T = TypeVar("T")
logger = logging.getLogger(__name__)

PROFILE_NAME = "Profile"
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
NOT_ENABLED = "Ask an admin of this conversation to turn on Identity, then share again."


class ProfileError(Exception):
    """A profile action that cannot be done, in words; ``code`` as the API maps it to a status:
    invalid, not_found, forbidden, not_enabled, refused, unavailable."""

    def __init__(self, code: str, words: str) -> None:
        super().__init__(words)
        self.code = code
        self.words = words


@dataclass(frozen=True)
class ShareView:
    """A thread a field is shared with, by its name."""

    thread: str  # the thread's id, for links (never shown)
    thread_name: str
    active: bool


@dataclass(frozen=True)
class FieldView:
    name: str
    label: str
    value: str
    standard: bool
    shares: tuple[ShareView, ...] = ()


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


# -- the profile thread -----------------------------------------------------------------------


def master_secret() -> bytes:
    secret = NodeKeys.of_this_node().master_secret
    if secret is None:
        raise ProfileError(
            "unavailable", "This node has no master secret yet: claim it (or restore it) first."
        )
    return secret


def profile_thread() -> Thread | None:
    """The party's profile thread on this node (the oldest, should two devices have made one at
    the same moment), or None."""
    shape = policy.PROFILE_SHAPE
    return Thread.objects.filter(app=shape, state=Thread.State.ACTIVE).order_by("id").first()


def profile_ensure() -> Thread:
    """The profile thread, made now (after the control thread, so every full device of the
    party takes it in and the phrase restores it) if there is none."""
    found = profile_thread()
    if found is not None:
        return found
    from apps.cadre.control import CadreError, control_ensure

    master_secret()
    try:
        control_ensure()
    except CadreError as exc:
        raise ProfileError(exc.code, exc.words) from exc
    thread = thread_services.thread_create(name=PROFILE_NAME, app=policy.PROFILE_SHAPE)
    app_enable(thread=thread, app=policy.PROFILE_APP)
    return thread


def _write(thread: Thread, action: Callable[[], T]) -> T:
    """One transaction of the profile thread: one signed op."""
    database = thread_database(thread.thread)
    try:
        with thread_context(thread.thread), transaction.atomic(using=database.alias):
            return action()
    except WriteRefused as exc:
        raise ProfileError("refused", "Your profile could not be saved: " + str(exc)) from exc


def _alias(thread: Thread) -> str:
    return thread_database(thread.thread).alias


def _rows(thread: Thread) -> dict[str, ProfileField]:
    found = ProfileField.objects.using(_alias(thread)).order_by("id")
    return {row.name: row for row in found}


def _share_rows(thread: Thread) -> list[ProfileShare]:
    return list(ProfileShare.objects.using(_alias(thread)).order_by("thread_name", "id"))


def _order(name: str) -> tuple[int, str]:
    names = list(STANDARD)
    return (names.index(name), "") if name in STANDARD else (len(names), name)


def shares() -> dict[str, list[ShareView]]:
    """Each field's active shares, by the thread's name as this node knows it now."""
    thread = profile_thread()
    if thread is None:
        return {}
    known = dict(Thread.objects.values_list("id", "name"))
    found: dict[str, list[ShareView]] = {}
    for row in _share_rows(thread):
        if row.active:
            name = known.get(row.thread) or row.thread_name or "a thread you left"
            found.setdefault(row.name, []).append(ShareView(row.thread, name, True))
    return found


def fields() -> list[FieldView]:
    """The profile's fields (standard ones first), with where each is shared."""
    thread = profile_thread()
    if thread is None:
        return []
    where = shares()
    rows = sorted(_rows(thread).values(), key=lambda row: _order(row.name))
    return [
        FieldView(
            row.name,
            field_label(row.name, row.label),
            row.value,
            row.name in STANDARD,
            tuple(where.get(row.name, ())),
        )
        for row in rows
    ]


def fields_set(values: Mapping[str, Mapping[str, str]]) -> list[str]:
    """Set fields at once (one op): ``{name: {"value": ..., "label": ...}}``; an empty value
    deletes the field. A new value gets a new salt. Every field is checked before anything is
    written. Returns the names that changed."""
    planned: dict[str, tuple[str, str] | None] = {}
    for name, given in values.items():
        problem = name_problem(name)
        if problem is None:
            value = value_clean(name, str(given.get("value", "")))
            label = str(given.get("label", "") or "").strip()
            if name in STANDARD:
                label = ""
            problem = (value_problem(name, value) if value else None) or (
                label_problem(name, label) if value else None
            )
        if problem is not None:
            raise ProfileError("invalid", problem)
        planned[name] = (value, label) if value else None
    thread = profile_ensure()
    owner = bytes.fromhex(thread.member_id)
    current = _rows(thread)
    changed = [
        name
        for name, want in planned.items()
        if (want is None and name in current)
        or (want is not None and (current.get(name) is None or _differs(current[name], *want)))
    ]
    if not changed:
        return []

    def save() -> None:
        manager = ProfileField.objects
        for name in changed:
            want, row = planned[name], current.get(name)
            if want is None:
                manager.filter(pk=row.pk).delete()
                continue
            value, label = want
            salt = row.salt if row is not None and row.value == value else formats.salt_new()
            manager.update_or_create(
                pk=uuid.UUID(hex=formats.field_id(owner, name)),
                defaults={"name": name, "label": label, "value": value, "salt": salt},
            )

    _write(thread, save)
    return changed


def _differs(row: ProfileField, value: str, label: str) -> bool:
    return row.value != value or row.label != label


# -- the proof ------------------------------------------------------------------------------


def _profile_key():
    return formats.profile_key(master_secret())


def profile_did() -> str:
    """The profile key as a did:key (what a verifier of a presentation checks it with)."""
    return formats.did_key(bytes(_profile_key().verify_key))


def _leaves(rows: Iterable[ProfileField]) -> dict[str, str]:
    return {row.name: formats.disclosure(row.salt, row.name, row.value) for row in rows}


def _commitment(key, leaves: Mapping[str, str]) -> str:
    return formats.commitment_make(key, [formats.disclosure_digest(t) for t in leaves.values()])


def presentation(names: Iterable[str]) -> str:
    """The chosen fields as an SD-JWT presentation: the commitment, then each field's leaf."""
    wanted = list(dict.fromkeys(n.strip() for n in names if n.strip()))
    thread = profile_thread()
    rows = _rows(thread) if thread is not None else {}
    missing = [n for n in wanted if n not in rows]
    if not wanted:
        raise ProfileError("invalid", "Choose at least one field to put in the credential.")
    if missing:
        raise ProfileError("not_found", f"Your profile has no field {', '.join(missing)}.")
    leaves = _leaves(rows.values())
    head = _commitment(_profile_key(), leaves)
    return head + "~" + "".join(leaves[n] + "~" for n in wanted)


# -- sharing ------------------------------------------------------------------------------


def _target(thread: Thread) -> Thread:
    """A thread fields may be shared into: active, not the profile (or another own) thread,
    with Identity on (turned on now if this member may)."""
    if thread.state != Thread.State.ACTIVE:
        raise ProfileError("forbidden", f"You can no longer write in {thread.name}.")
    if policy.APP not in _offered(thread):
        raise ProfileError("invalid", f"Profile fields cannot be shared into {thread.name}.")
    if not app_enabled(thread, policy.APP):
        try:
            app_enable(thread=thread, app=policy.APP)
        except ThreadServiceError as exc:
            raise ProfileError("not_enabled", NOT_ENABLED) from exc
        thread.refresh_from_db()
    return thread


def _offered(thread: Thread) -> tuple[str, ...]:
    from apps.core.thread.appspec import thread_apps

    if thread.app in _own_shapes():
        return ()
    return tuple(thread_apps(thread.app))


def _own_shapes() -> frozenset[str]:
    """Threads of the party alone (its devices, backups, profile): nobody there to share with."""
    from apps.cadre.policy import SHAPE as CONTROL
    from apps.storage.policy import HOLD_SHAPE
    from apps.storage.policy import SHAPE as BACKUPS

    return frozenset({CONTROL, BACKUPS, HOLD_SHAPE, policy.PROFILE_SHAPE})


def shareable(thread: Thread) -> bool:
    """Whether fields may be shared into ``thread`` at all (whatever Identity's state)."""
    return thread.state == Thread.State.ACTIVE and policy.APP in _offered(thread)


def share_targets() -> list[Thread]:
    """The threads this node is in that fields may be shared into, by name."""
    found = Thread.objects.filter(state=Thread.State.ACTIVE).order_by("name", "id")
    return [thread for thread in found if shareable(thread)]


def _names(names: Iterable[str], rows: Mapping[str, ProfileField]) -> list[str]:
    wanted = list(dict.fromkeys(n.strip() for n in names if n.strip()))
    if not wanted:
        raise ProfileError("invalid", "Choose at least one field.")
    missing = [field_label(n) for n in wanted if n not in rows]
    if missing:
        raise ProfileError("not_found", f"Your profile has no {', '.join(missing)} yet.")
    return wanted


def _plain(reason: str) -> str:
    return f"The conversation refused your shared fields: {reason}"


def _copies_write(thread: Thread, want: Mapping[str, str], drop: Iterable[str], head: str) -> None:
    """In ``thread``, one op: this member's copy of each field in ``want`` (name -> leaf) with
    the commitment ``head``; delete the copies named in ``drop``; and refresh the commitment of
    every other copy of this member there, so each still proves its leaf."""
    member = bytes.fromhex(thread.member_id)
    key = _profile_key()
    profile = bytes(key.verify_key).hex()
    binding = formats.binding_make(key, member)

    def save() -> None:
        mine = {
            row.name: row
            for row in SharedField.objects.all()
            if row.pk.hex == formats.shared_id(member, row.name)
        }
        for name in drop:
            if name in mine:
                SharedField.objects.filter(pk=mine.pop(name).pk).delete()
        for name, leaf in want.items():
            row = mine.pop(name, None)
            fresh = {"disclosure": leaf, "commitment": head, "profile": profile, "binding": binding}
            if row is None or any(getattr(row, k) != v for k, v in fresh.items()):
                SharedField.objects.update_or_create(
                    pk=uuid.UUID(hex=formats.shared_id(member, name)),
                    defaults={"name": name, **fresh},
                )
        for row in mine.values():  # shared earlier: same leaf, today's commitment
            if row.commitment != head or row.profile != profile or row.binding != binding:
                row.commitment, row.profile, row.binding = head, profile, binding
                row.save(update_fields=["commitment", "profile", "binding"])

    try:
        app_write(thread, save, app=policy.APP, not_enabled=NOT_ENABLED, plain=_plain)
    except ThreadServiceError as exc:
        raise ProfileError(exc.code, str(exc)) from exc


def share(*, thread: Thread, names: Iterable[str]) -> list[str]:
    """Share fields into ``thread``: their copies with the proof there (one op), and the shares
    recorded in the profile thread (another). Returns the names shared."""
    profile = profile_ensure()
    rows = _rows(profile)
    wanted = _names(names, rows)
    thread = _target(thread)
    leaves = _leaves(rows.values())
    head = _commitment(_profile_key(), leaves)
    _copies_write(thread, {n: leaves[n] for n in wanted}, (), head)
    owner = bytes.fromhex(profile.member_id)

    def record() -> None:
        for name in wanted:
            ProfileShare.objects.update_or_create(
                pk=uuid.UUID(hex=formats.share_id(owner, name, thread.id)),
                defaults={
                    "name": name,
                    "thread": thread.id,
                    "thread_name": thread.name[:MAX_LABEL],
                    "active": True,
                },
            )

    _write(profile, record)
    return wanted


def unshare(*, thread: Thread, names: Iterable[str]) -> list[str]:
    """Stop sharing fields into ``thread``: its copies there are deleted (what members already
    received stays with them) and no more updates go there."""
    profile = profile_ensure()
    owner = bytes.fromhex(profile.member_id)
    wanted = list(dict.fromkeys(n.strip() for n in names if n.strip()))
    if not wanted:
        raise ProfileError("invalid", "Choose at least one field.")
    active = {
        row.name: row for row in _share_rows(profile) if row.thread == thread.id and row.active
    }
    if not any(n in active for n in wanted):
        raise ProfileError("not_found", f"None of these fields is shared with {thread.name}.")
    if thread.state == Thread.State.ACTIVE and app_enabled(thread, policy.APP):
        leaves = _leaves(_rows(profile).values())
        _copies_write(thread, {}, wanted, _commitment(_profile_key(), leaves))

    def record() -> None:
        for name in wanted:
            if name in active:
                ProfileShare.objects.filter(
                    pk=uuid.UUID(hex=formats.share_id(owner, name, thread.id))
                ).update(active=False)

    _write(profile, record)
    return [n for n in wanted if n in active]


def copies_sync(profile: Thread) -> list[str]:
    """Bring every active shared copy in line with the profile: the new leaf and commitment
    for a changed field (and today's commitment for the other copies there), the copy deleted
    and the share stopped for a deleted field. Threads already in line are not written.
    Returns the ids of the threads written (the profile duty's step; idempotent)."""
    rows = _rows(profile)
    leaves = _leaves(rows.values())
    head = _commitment(_profile_key(), leaves) if leaves else ""
    by_thread: dict[str, list[ProfileShare]] = {}
    for row in _share_rows(profile):
        if row.active:
            by_thread.setdefault(row.thread, []).append(row)
    written: list[str] = []
    gone: list[ProfileShare] = []
    for thread_id, share_rows in by_thread.items():
        thread = Thread.objects.filter(pk=thread_id, state=Thread.State.ACTIVE).first()
        if thread is None or not app_enabled(thread, policy.APP):
            continue  # left, or Identity turned off there: nothing can be written now
        want = {r.name: leaves[r.name] for r in share_rows if r.name in leaves}
        drop = [r.name for r in share_rows if r.name not in leaves]
        if not _in_line(thread, want, drop, head):
            try:
                _copies_write(thread, want, drop, head)
            except ProfileError as exc:  # one thread refusing holds up none of the others
                logger.warning("profile: copies in %s not updated: %s", thread.name, exc.words)
                continue
            written.append(thread_id)
        gone.extend(r for r in share_rows if r.name not in leaves)
    if gone:

        def stop() -> None:
            ProfileShare.objects.filter(pk__in=[r.pk for r in gone]).update(active=False)

        _write(profile, stop)
    return written


def _in_line(thread: Thread, want: Mapping[str, str], drop: Iterable[str], head: str) -> bool:
    member = bytes.fromhex(thread.member_id)
    with thread_context(thread.thread):
        mine = {
            row.name: row
            for row in SharedField.objects.all()
            if row.pk.hex == formats.shared_id(member, row.name)
        }
    if any(name in mine for name in drop):
        return False
    if any(name not in mine or mine[name].disclosure != leaf for name, leaf in want.items()):
        return False
    return all(row.commitment == head for row in mine.values())
