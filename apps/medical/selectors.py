"""Reading medical records: entries (from the record and, where this node holds it, its
sensitive part), provenance from the signed ops, grants, and what this node may write."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from apps.core.models import Thread
from apps.core.thread.policy import OWNER
from apps.core.threads.context import thread_context
from apps.core.threads.names import Names, thread_names
from apps.core.threads.registry import thread_database
from apps.core.threads.writes import row_history
from apps.medical import fhir, rules
from apps.medical.models import Grant, RecordLink, SealedInvite
from apps.medical.policy import CAREGIVER, PROVIDER, SHAPE

RESULTS_SHOWN = 10


@dataclass(frozen=True)
class Entry:
    type: str  # resourceType
    fhir_id: str
    resource: dict[str, Any]
    code: str
    display: str
    date: str
    status: str
    value: float | None
    unit: str
    sensitive: bool  # kept in the record's sensitive part
    thread_id: str  # the thread holding it (hex)
    pk: str  # its row id (hex)

    @property
    def kind(self) -> fhir.FhirType:
        return fhir.TYPES[self.type]


@dataclass(frozen=True)
class Version:
    at: datetime
    member: str  # hex
    name: str
    action: str  # insert, update, delete


@dataclass(frozen=True)
class GrantView:
    member: str  # hex
    name: str
    role: str | None  # None: no longer a member
    label: str
    read: list[str]
    write: list[str]
    start: datetime | None
    end: datetime | None
    status: str
    sensitive: bool
    pk: str


@dataclass
class Overview:
    patient: Entry | None
    problems: list[Entry] = field(default_factory=list)
    allergies: list[Entry] = field(default_factory=list)
    medications: list[Entry] = field(default_factory=list)
    results: list[Entry] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def records() -> list[Thread]:
    """This node's medical records (not their sensitive parts), newest first."""
    found = Thread.objects.filter(app=SHAPE, state=Thread.State.ACTIVE).order_by("-created_at")
    return [thread for thread in found if not is_sensitive(thread)]


def _links(thread: Thread, kind: str) -> list[str]:
    try:
        with thread_context(thread.thread):
            return list(RecordLink.objects.filter(kind=kind).values_list("thread", flat=True))
    except Exception:  # a thread without the record's tables (not enabled yet)
        return []


def is_sensitive(thread: Thread) -> bool:
    return bool(_links(thread, "main"))


def main_of(thread: Thread) -> Thread | None:
    """The record a sensitive part belongs to, as this node holds it (None for a record)."""
    ids = _links(thread, "main")
    return Thread.objects.filter(pk__in=ids, app=SHAPE).first() if ids else None


def sensitive_of(thread: Thread) -> Thread | None:
    """The record's sensitive part, if this node is in it."""
    ids = _links(thread, "sensitive")
    found = Thread.objects.filter(pk__in=ids, app=SHAPE, state=Thread.State.ACTIVE)
    return found.first() if ids else None


def _parts(thread: Thread) -> list[tuple[Thread, bool]]:
    main = main_of(thread) or thread
    parts = [(main, False)]
    part = sensitive_of(main)
    if part is not None:
        parts.append((part, True))
    return parts


def _entry(row: Any, kind: fhir.FhirType, thread: Thread, sensitive: bool) -> Entry:
    try:
        resource = json.loads(row.resource)
    except ValueError:
        resource = {}
    return Entry(
        type=kind.name,
        fhir_id=row.fhir_id,
        resource=resource,
        code=row.code,
        display=row.display,
        date=row.date,
        status=row.status,
        value=row.value,
        unit=row.unit,
        sensitive=sensitive,
        thread_id=thread.id,
        pk=row.id.hex,
    )


def entries(
    thread: Thread, resource_type: str, *, limit: int | None = None, own_only: bool = False
) -> list[Entry]:
    """The record's entries of one type, newest clinical date first (``own_only``: only from
    this thread, not its other part)."""
    kind = fhir.TYPES[resource_type]
    found: list[Entry] = []
    for part, sensitive in [(thread, is_sensitive(thread))] if own_only else _parts(thread):
        with thread_context(part.thread):
            rows = kind.model().objects.order_by("-date", "-id")
            if limit is not None:
                rows = rows[:limit]
            found.extend(_entry(row, kind, part, sensitive) for row in rows)
    found.sort(key=lambda e: (e.date, e.pk), reverse=True)
    return found[:limit] if limit is not None else found


def entry_get(thread: Thread, resource_type: str, fhir_id: str | None) -> Entry | None:
    kind = fhir.TYPES.get(resource_type)
    if kind is None or not fhir_id:
        return None
    # The sensitive part first: ids are one per table within a thread, and a provider who does
    # not hold the part could reuse one of its ids in the record (ADR 23); the patient's own
    # entry is the one an id names here.
    for part, sensitive in reversed(_parts(thread)):
        with thread_context(part.thread):
            row = kind.model().objects.filter(fhir_id=fhir_id).first()
        if row is not None:
            return _entry(row, kind, part, sensitive)
    return None


def counts(thread: Thread) -> dict[str, int]:
    total: dict[str, int] = {}
    for part, _ in _parts(thread):
        with thread_context(part.thread):
            for name, kind in fhir.TYPES.items():
                total[name] = total.get(name, 0) + kind.model().objects.count()
    return total


def overview(thread: Thread) -> Overview:
    patients = entries(thread, "Patient", limit=1)
    return Overview(
        patient=patients[0] if patients else None,
        problems=entries(thread, "Condition"),
        allergies=entries(thread, "AllergyIntolerance"),
        medications=entries(thread, "MedicationStatement"),
        results=entries(thread, "Observation", limit=RESULTS_SHOWN),
        counts=counts(thread),
    )


def member_names(thread: Thread) -> Names:
    """Any member key (hex) -> how this node names them ("you" for this node's member)."""
    return thread_names(thread, me_as="you")


def provenance(thread: Thread, resource_type: str, fhir_id: str) -> list[Version]:
    """Every accepted version of an entry, oldest first, as the signed ops say: who, when."""
    found = entry_get(thread, resource_type, fhir_id)
    if found is None:
        return []
    part = Thread.objects.get(pk=found.thread_id)
    names = member_names(part)
    history = row_history(thread_database(part.thread), fhir.TYPES[resource_type].table, found.pk)
    return [
        Version(v.at, v.member.hex(), names.get(v.member.hex(), "a former member"), v.action)
        for v in history
    ]


# -- members, roles, grants ----------------------------------------------------------------------


def _state(thread: Thread) -> Any:
    database = thread_database(thread.thread)
    with database.lock:
        return database.replica().control.state


def role_of(thread: Thread, member_id: str) -> str | None:
    try:
        return _state(thread).role_of(bytes.fromhex(member_id))
    except ValueError:
        return None


def my_role(thread: Thread) -> str:
    return thread.role


def _time(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, UTC) if ms is not None else None


def to_ms(moment: datetime | None) -> int | None:
    return int(moment.timestamp() * 1000) if moment is not None else None


def _grant_rows(thread: Thread) -> list[Grant]:
    with thread_context(thread.thread):
        return list(Grant.objects.all())


def _grant_view(row: Grant, names: Names, state: Any) -> GrantView:
    return GrantView(
        member=row.grantee,
        name=names.get(row.grantee, row.label or "a former member"),
        role=state.role_of(bytes.fromhex(row.grantee)),
        label=row.label,
        read=json.loads(row.read),
        write=json.loads(row.write),
        start=_time(row.start),
        end=_time(row.end),
        status=row.status,
        sensitive=row.sensitive,
        pk=row.id.hex,
    )


def grants(thread: Thread) -> list[GrantView]:
    main = main_of(thread) or thread
    names, state = member_names(main), _state(main)
    return [_grant_view(row, names, state) for row in _grant_rows(main)]


def grant_of(thread: Thread, member_id: str) -> GrantView | None:
    return next((g for g in grants(thread) if g.member == member_id), None)


def _row_dict(row: Grant) -> dict[str, Any]:
    return {c: getattr(row, c) for c in ("grantee", "read", "write", "start", "end", "status")}


def write_problem(thread: Thread, resource_type: str) -> str | None:
    """Why this node may not write ``resource_type`` in ``thread`` now, in words (None: it
    may). The rules decide at commit; this says it first."""
    if thread.state != Thread.State.ACTIVE:
        return "You no longer hold this record."
    if thread.role == OWNER:
        return None
    if thread.role == CAREGIVER:
        return "A caregiver reads the record and writes nothing."
    if thread.role != PROVIDER:
        return "You may read this record, not write in it."
    with thread_context(thread.thread):
        row = Grant.objects.filter(grantee=thread.member_id).first()
    now = time.time_ns() // 1_000_000
    problem = rules.grant_problem(_row_dict(row) if row else None, resource_type, now)
    if problem is None:
        return None
    said = problem.replace("this provider's", "your").replace("this provider", "you")
    return "You may not write this: " + said + "."


def may_write(thread: Thread, resource_type: str) -> bool:
    return write_problem(thread, resource_type) is None


def my_grant(thread: Thread) -> GrantView | None:
    return grant_of(thread, thread.member_id)


def part_members_of(thread: Thread, member_id: str) -> list[str]:
    """The members in the sensitive part that ``member_id`` of the record became (hex): the
    redeemers of the invites sealed to them."""
    part = sensitive_of(thread)
    if part is None:
        return []
    with thread_context(thread.thread):
        invites = list(
            SealedInvite.objects.filter(member=member_id, thread=part.id).values_list(
                "invite", flat=True
            )
        )
    state = _state(part)
    found = []
    for invite in invites:
        held = state.invites.get(bytes.fromhex(invite))
        for member in held.redeemers if held is not None else ():
            if state.role_of(member) is not None:
                found.append(member.hex())
    return found
