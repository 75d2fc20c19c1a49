"""The party's profile (ADR 26): its fields, kept in the profile thread as salted leaves under
one commitment signed by the profile key, and shared field by field into the threads the person
chooses. This module is the only writer of the profile thread's rows and of this member's
shared copies (``SharedField``) in other threads.

A shared copy carries the leaf, the commitment over every current field, the profile's public
key and the binding (the profile key's signature over this member's key in that thread). When a
field changes, ``copies_sync`` (run by ``profile_duties`` after the profile thread's ops) writes
the new leaf and commitment into every thread the field is shared with."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from django.db import transaction

from apps.core.models import Thread
from apps.core.threads.app_kit import app_enabled, app_write
from apps.core.threads.context import thread_context
from apps.core.threads.database import WriteRefused
from apps.core.threads.registry import thread_database
from apps.core.threads.services import ThreadServiceError
from apps.core.threads.thread_apps import app_enable
from apps.identity import formats, policy
from apps.identity.models import MAX_LABEL, ProfileField, ProfileShare, SharedField
from apps.identity.profile_fields import (  # noqa: F401 - the profile's words, re-exported
    FREE_PREFIX,
    MAX_PHOTO_BYTES,
    STANDARD,
    ProfileError,
    field_label,
    label_problem,
    name_problem,
    photo_bytes,
    photo_data_url,
    value_clean,
    value_problem,
)

T = TypeVar("T")
logger = logging.getLogger(__name__)

PROFILE_NAME = "Profile"
NOT_ENABLED = "Ask an admin of this conversation to turn on Identity, then share again."


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


# -- the profile thread -----------------------------------------------------------------------


def master_secret() -> bytes:
    from apps.cadre.control import CadreError
    from apps.cadre.own_threads import master_secret

    try:
        return master_secret()
    except CadreError as exc:
        raise ProfileError(exc.code, exc.words) from exc


def profile_thread() -> Thread | None:
    """The party's profile thread on this node, or None."""
    from apps.cadre.own_threads import own_thread

    return own_thread(policy.PROFILE_SHAPE)


def profile_ensure() -> Thread:
    """The profile thread, made now (after the control thread, so every full device of the
    party takes it in and the phrase restores it) if there is none."""
    from apps.cadre.control import CadreError
    from apps.cadre.own_threads import own_thread_ensure

    try:
        return own_thread_ensure(
            shape=policy.PROFILE_SHAPE, rules_app=policy.PROFILE_APP, name=PROFILE_NAME
        )
    except CadreError as exc:
        raise ProfileError(exc.code, exc.words) from exc


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
