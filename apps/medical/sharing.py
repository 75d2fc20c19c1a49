"""Who holds a record and what they may do: sharing by invite with a grant, grants, revoking,
and the sensitive part that only chosen members join (ADR 23). Writers, like ``services``."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import nacl.exceptions
import nacl.public
import nacl.signing

from apps.core.models import Thread
from apps.core.threads import services as threads
from apps.core.threads.app_kit import member_key
from apps.core.threads.context import thread_context
from apps.core.threads.services import CreatedInvite, ThreadServiceError
from apps.medical import fhir, rules, selectors
from apps.medical.models import Grant, PendingGrant, RecordLink, SealedInvite
from apps.medical.policy import CAREGIVER, PROVIDER, SHAPE
from apps.medical.writing import (
    MAX_NAME,
    creating_part,
    member_of,
    patient_only,
    record_only,
    record_write,
)

INVITE_DAYS_MAX = 7


# -- grants and access ---------------------------------------------------------------------------


def _ms(day: date | None, end: bool = False) -> int | None:
    if day is None:
        return None
    moment = datetime.combine(day + timedelta(days=1) if end else day, time(), tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def grant_terms(
    *,
    role: str,
    read: list[str],
    write: list[str],
    label: str = "",
    start: date | None = None,
    end: date | None = None,
    sensitive: bool = False,
) -> dict[str, Any]:
    """A grant as the rules take it, or ``invalid`` saying what is wrong."""
    if role not in (PROVIDER, CAREGIVER):
        raise ThreadServiceError("invalid", "Share the record with a provider or a caregiver.")
    unknown = [t for t in [*read, *write] if t not in fhir.TYPES]
    if unknown:
        raise ThreadServiceError("invalid", f"The record keeps no {unknown[0]} resources.")
    if role == CAREGIVER and write:
        raise ThreadServiceError("invalid", "A caregiver reads the record and writes nothing.")
    read = sorted(set(read) | set(write), key=list(fhir.TYPES).index)
    write = sorted(set(write), key=list(fhir.TYPES).index)
    if start and end and end < start:
        raise ThreadServiceError("invalid", "The access must end after it starts.")
    label = " ".join(str(label).split())
    if len(label) > rules.MAX_LABEL:
        raise ThreadServiceError("invalid", f"A label has at most {rules.MAX_LABEL} characters.")
    return {
        "label": label,
        "read": read,
        "write": write,
        "start": _ms(start),
        "end": _ms(end, end=True),
        "sensitive": bool(sensitive),
    }


def share_invite(
    thread: Thread,
    *,
    role: str,
    label: str,
    read: list[str],
    write: list[str],
    start: date | None = None,
    end: date | None = None,
    expires_in: timedelta = timedelta(days=1),
    sensitive: bool = False,
) -> CreatedInvite:
    """A single-use invite for a provider or a caregiver; the grant chosen here is written for
    whoever redeems it, by this node, as soon as it has admitted them (``duties``)."""
    patient_only(record_only(thread), "share the record")
    if selectors.is_sensitive(thread):
        raise ThreadServiceError("invalid", "Share the record itself, not its sensitive part.")
    terms = grant_terms(
        role=role, read=read, write=write, label=label, start=start, end=end, sensitive=sensitive
    )
    if expires_in > timedelta(days=INVITE_DAYS_MAX):
        raise ThreadServiceError("invalid", f"A link lasts at most {INVITE_DAYS_MAX} days.")
    made = threads.invite_create(
        thread=thread, role=role, expires_in=expires_in, uses=1, label=terms["label"]
    )
    PendingGrant.objects.create(
        thread=thread, invite_id=made.record.invite_id, grant=json.dumps(terms)
    )
    return made


def grant_write(thread: Thread, *, member: bytes, terms: dict[str, Any], status: str) -> None:
    """Write ``member``'s grant row (the patient's node)."""
    pk = uuid.UUID(hex=rules.grant_id(member_of(thread), member))

    def write() -> None:
        row = Grant.objects.filter(pk=pk).first() or Grant(id=pk, grantee=member.hex())
        row.label = terms.get("label", row.label)
        row.read = json.dumps(terms.get("read", json.loads(row.read)))
        row.write = json.dumps(terms.get("write", json.loads(row.write)))
        row.start = terms.get("start", row.start)
        row.end = terms.get("end", row.end)
        row.sensitive = bool(terms.get("sensitive", row.sensitive))
        row.status = status
        row.save()

    with thread_context(thread.thread):
        record_write(thread, write)


def grant_set(
    thread: Thread,
    *,
    member_id: str,
    read: list[str],
    write: list[str],
    label: str | None = None,
    start: date | None = None,
    end: date | None = None,
) -> None:
    """Change what a member may read and write (the patient only)."""
    patient_only(record_only(thread), "change what others may do")
    current = selectors.grant_of(thread, member_id)
    role = selectors.role_of(thread, member_id)
    if role is None:
        raise ThreadServiceError("not_found", "This person does not hold the record.")
    terms = grant_terms(
        role=role,
        read=read,
        write=write,
        label=label if label is not None else (current.label if current else ""),
        start=start,
        end=end,
        sensitive=current.sensitive if current else False,
    )
    grant_write(thread, member=bytes.fromhex(member_id), terms=terms, status=rules.ACTIVE)


def access_revoke(thread: Thread, *, member_id: str) -> None:
    """End a member's access: their grant revoked, and they are removed from the record and its
    sensitive part with new keys, so nothing written from now on reaches them. What their
    devices already hold stays there."""
    patient_only(record_only(thread), "revoke access")
    main = selectors.main_of(thread) or thread
    if selectors.role_of(main, member_id) is None:
        raise ThreadServiceError("not_found", "This person does not hold the record any more.")
    if member_id == main.member_id:
        raise ThreadServiceError("invalid", "You cannot revoke your own access.")
    if selectors.grant_of(main, member_id) is not None:
        grant_write(main, member=bytes.fromhex(member_id), terms={}, status=rules.REVOKED)
    part = selectors.sensitive_of(main)
    if part is not None:
        for theirs in selectors.part_members_of(main, member_id):
            threads.member_remove(thread=part, member_id=theirs)
    threads.member_remove(thread=main, member_id=member_id)


# -- the sensitive part --------------------------------------------------------------------------


def sensitive_create(thread: Thread) -> Thread:
    """The record's sensitive part (made once, by the patient): a record thread of its own that
    only the providers the patient picks are invited to."""
    patient_only(record_only(thread), "keep a sensitive part")
    existing = selectors.sensitive_of(thread)
    if existing is not None:
        return existing
    token = creating_part.set(True)
    try:
        part = threads.thread_create(name=f"{thread.name} (sensitive)"[:MAX_NAME], app=SHAPE)
    finally:
        creating_part.reset(token)
    with thread_context(part.thread):
        record_write(part, lambda: RecordLink.objects.create(kind="main", thread=thread.id))
    with thread_context(thread.thread):
        record_write(thread, lambda: RecordLink.objects.create(kind="sensitive", thread=part.id))
    for grant in selectors.grants(thread):
        if grant.sensitive and grant.status == rules.ACTIVE:
            sensitive_invite(thread, member_id=grant.member)
    return part


def invite_seal(link: str, member: bytes) -> bytes:
    """An invite link sealed to a member's ed25519 key (as X25519): only its node opens it."""
    public = nacl.signing.VerifyKey(member).to_curve25519_public_key()
    return nacl.public.SealedBox(public).encrypt(link.encode())


def invite_unseal(thread: Thread, box: bytes) -> str | None:
    """The link in ``box`` if it was sealed to this node's member of ``thread``."""
    private = member_key(thread).to_curve25519_private_key()
    try:
        return nacl.public.SealedBox(private).decrypt(bytes(box)).decode()
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        return None


def sensitive_invite(thread: Thread, *, member_id: str) -> None:
    """Invite a member of the record into its sensitive part: a single-use invite, sealed to
    them in the record; their node joins on its own, and this node writes their grant there
    once it admits them."""
    patient_only(thread, "invite to the sensitive part")
    part = selectors.sensitive_of(thread)
    role = selectors.role_of(thread, member_id)
    grant = selectors.grant_of(thread, member_id)
    if part is None or role is None or grant is None:
        return
    made = threads.invite_create(
        thread=part, role=role, expires_in=timedelta(days=INVITE_DAYS_MAX), uses=1,
        label=grant.label,
    )  # fmt: skip
    terms = {
        "label": grant.label,
        "read": grant.read,
        "write": grant.write,
        "start": selectors.to_ms(grant.start),
        "end": selectors.to_ms(grant.end),
        "sensitive": True,
    }
    PendingGrant.objects.create(
        thread=part, invite_id=made.record.invite_id, grant=json.dumps(terms)
    )
    box = invite_seal(made.link, bytes.fromhex(member_id))
    with thread_context(thread.thread):
        record_write(
            thread,
            lambda: SealedInvite.objects.create(
                member=member_id, thread=part.id, invite=made.record.invite_id, box=box
            ),
        )
