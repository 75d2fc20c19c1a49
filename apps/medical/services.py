"""The writers of medical records' content (ADR 23): the record, its resources and documents
(``sharing`` writes grants, access and the sensitive part). Each write is one transaction of a
record's database and so one signed op, which this node's replica judges at once as every
replica will (``rules.py``). What the rules check is checked here first, so a refusal is
specific and in words and nothing is written.

Errors are ``ThreadServiceError``: ``invalid`` (bad input, not valid FHIR), ``forbidden`` (not
your role or grant), ``not_found``, ``conflict``, ``refused`` (the rules at commit),
``not_enabled``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from apps.core import blobs
from apps.core.models import Thread
from apps.core.thread.rowid import row_id_for
from apps.core.threads import services as threads
from apps.core.threads.context import thread_context
from apps.core.threads.services import ThreadServiceError
from apps.core.threads.thread_apps import app_enable
from apps.medical import fhir, rules, selectors
from apps.medical.policy import RULES_APP, SHAPE
from apps.medical.sharing import sensitive_create
from apps.medical.writing import (
    MAX_NAME,
    creating_part,
    fhir_check,
    member_of,
    patient_only,
    record_only,
    record_write,
)
from apps.messaging.services import Upload, _file_name, _mime

BATCH = 100  # resources per op when importing
DOCUMENT_TYPES = rules.DOCUMENT_TYPES


# -- the record ----------------------------------------------------------------------------------


def record_setup(thread: Thread) -> None:
    """Enable the record's rules in a record this node created (idempotent), and give a main
    record its patient row, named after the thread."""
    from apps.core.threads.app_kit import app_enabled

    if not app_enabled(thread, RULES_APP):
        app_enable(thread=thread, app=RULES_APP)
    if creating_part.get() or selectors.entries(thread, "Patient", own_only=True):
        return
    patient = {"resourceType": "Patient", "name": [{"text": thread.name}]}
    resource_write(thread, "Patient", patient)


def record_create(*, name: str, birth_date: str = "", gender: str = "") -> Thread:
    """A new record of this node's person: the thread, its rules and the patient row."""
    name = " ".join(str(name).split())
    if not name or len(name) > MAX_NAME:
        raise ThreadServiceError("invalid", "Give the patient's name (at most 200 characters).")
    patient: dict[str, Any] = {"resourceType": "Patient", "name": [{"text": name}]}
    if birth_date:
        patient["birthDate"] = str(birth_date)
    if gender:
        patient["gender"] = str(gender)
    fhir_check("Patient", patient)  # before a thread is made for it
    thread = threads.thread_create(name=name, app=SHAPE)  # the duty writes the patient row
    if birth_date or gender:
        current = selectors.entries(thread, "Patient")
        fhir_id = current[0].fhir_id if current else None
        resource_write(thread, "Patient", patient, fhir_id=fhir_id)
    return thread


# -- resources -----------------------------------------------------------------------------------


def _may_write(thread: Thread, resource_type: str) -> None:
    problem = selectors.write_problem(thread, resource_type)
    if problem:
        raise ThreadServiceError("forbidden", problem)


def _columns(checked: fhir.Checked) -> dict[str, Any]:
    return {"resource": checked.json, **checked.columns}


def _resource_id(resource_type: str, data: dict[str, Any], fhir_id: str | None) -> str | None:
    rid = fhir_id or data.get("id")
    if rid is not None and (not isinstance(rid, str) or not fhir.ID_RE.match(rid)):
        raise ThreadServiceError(
            "invalid", "A resource's id is 1 to 64 letters, digits, '-' or '.'."
        )
    return rid


def resource_write(
    thread: Thread,
    resource_type: str,
    data: dict[str, Any],
    *,
    fhir_id: str | None = None,
    sensitive: bool | None = None,
    extra: dict[str, Any] | None = None,
) -> selectors.Entry:
    """Add a resource (a new id, or the one given) or change the one with that id, wherever the
    record keeps it (the main record or its sensitive part)."""
    thread = record_only(thread)
    kind = fhir.TYPES.get(resource_type)
    if kind is None:
        raise ThreadServiceError("invalid", f"This record does not keep {resource_type} resources.")
    if not isinstance(data, dict):
        raise ThreadServiceError("invalid", f"A {resource_type} must be a JSON object.")
    rid = _resource_id(resource_type, data, fhir_id)
    found = selectors.entry_get(thread, resource_type, rid) if rid else None
    if found is not None:
        target = Thread.objects.get(pk=found.thread_id)
        if sensitive is not None and sensitive != found.sensitive:
            where = "the sensitive part" if found.sensitive else "the main record"
            raise ThreadServiceError(
                "conflict",
                f"This {kind.label} is kept in {where}; delete it and add it again to move it.",
            )
    elif sensitive:
        patient_only(thread, "keep entries in the sensitive part")
        target = sensitive_create(selectors.main_of(thread) or thread)
    else:
        target = selectors.main_of(thread) or thread
    _may_write(target, resource_type)
    model = kind.model()

    def write() -> str:
        if found is not None:
            row = model.objects.get(pk=found.pk)
            body = dict(data, id=row.fhir_id)
        else:
            # An id given (an import, a PUT) makes the row id: one row per id and author.
            seed = f"{resource_type}/{rid}".encode()
            row = (
                model(id=uuid.UUID(hex=row_id_for(member_of(target), seed).hex)) if rid else model()
            )
            body = dict(data, id=rid or row.id.hex)
        checked = fhir_check(resource_type, body)
        row.fhir_id = body["id"]
        for column, value in {**_columns(checked), **(extra or {})}.items():
            setattr(row, column, value)
        row.save()
        return row.fhir_id

    with thread_context(target.thread):
        written = record_write(target, write)
    entry = selectors.entry_get(target, resource_type, written)
    assert entry is not None
    return entry


@dataclass(frozen=True)
class Outcome:
    index: int  # the item's place in what was given
    resource_type: str
    fhir_id: str
    ok: bool
    reason: str = ""  # why not, in words
    action: str = ""  # "added", "changed", "unchanged"


def resources_write(
    thread: Thread, items: list[tuple[str, Any]], *, sensitive: bool = False
) -> list[Outcome]:
    """Write many resources (an import): each is checked, the valid ones written ``BATCH`` per
    op; an id the record has is changed, the same content again is left as it is. Every item
    has an outcome, in the order given."""
    thread = record_only(thread)
    target = selectors.main_of(thread) or thread
    if sensitive:
        patient_only(thread, "keep entries in the sensitive part")
        target = sensitive_create(target)
    outcomes: dict[int, Outcome] = {}
    todo: list[tuple[int, fhir.FhirType, fhir.Checked, Any]] = []
    seen: set[tuple[str, str]] = set()
    me = member_of(target)
    for index, (resource_type, data) in enumerate(items):
        kind = fhir.TYPES.get(resource_type)
        rid = data.get("id") if isinstance(data, dict) else None
        rid = rid if isinstance(rid, str) else ""
        try:
            if kind is None:
                raise ThreadServiceError(
                    "invalid", f"This record does not keep {resource_type or 'such'} resources."
                )
            problem = selectors.write_problem(target, resource_type)
            if problem:
                raise ThreadServiceError("forbidden", problem)
            body = dict(data) if isinstance(data, dict) else data
            if isinstance(body, dict) and not rid:
                rid = row_id_for(me, f"import/{index}/{fhir.canonical(body)}".encode()).hex
                body["id"] = rid
            checked = fhir_check(resource_type, body)
            if (resource_type, rid) in seen:
                raise ThreadServiceError("invalid", f"The id {rid} comes twice.")
            seen.add((resource_type, rid))
            todo.append((index, kind, checked, None))
        except ThreadServiceError as exc:
            outcomes[index] = Outcome(index, str(resource_type), rid, False, str(exc))
    for start in range(0, len(todo), BATCH):
        batch = todo[start : start + BATCH]
        try:
            for outcome in _batch_write(target, batch, me):
                outcomes[outcome.index] = outcome
        except ThreadServiceError:
            # One of them was refused at commit: write them one by one to say which.
            for item in batch:
                try:
                    for outcome in _batch_write(target, [item], me):
                        outcomes[outcome.index] = outcome
                except ThreadServiceError as exc:
                    index, kind, checked, _ = item
                    outcomes[index] = Outcome(
                        index, kind.name, checked.resource["id"], False, str(exc)
                    )
    return [outcomes[i] for i in sorted(outcomes)]


def _batch_write(
    target: Thread, batch: list[tuple[int, fhir.FhirType, fhir.Checked, Any]], me: bytes
) -> list[Outcome]:
    def write() -> list[Outcome]:
        done = []
        for index, kind, checked, _ in batch:
            model = kind.model()
            rid = checked.resource["id"]
            row = model.objects.filter(fhir_id=rid).first()
            action = "changed"
            if row is None:
                pk = row_id_for(me, f"{kind.name}/{rid}".encode())
                row, action = model(id=uuid.UUID(hex=pk.hex), fhir_id=rid), "added"
            elif row.resource == checked.json:
                done.append(Outcome(index, kind.name, rid, True, action="unchanged"))
                continue
            for column, value in _columns(checked).items():
                setattr(row, column, value)
            row.save()
            done.append(Outcome(index, kind.name, rid, True, action=action))
        return done

    with thread_context(target.thread):
        return record_write(target, write)


def resource_delete(thread: Thread, resource_type: str, fhir_id: str) -> None:
    """Delete an entry (the patient only; its versions stay in the log, as the audit shows)."""
    patient_only(thread, "delete entries (a provider marks one entered in error)")
    kind = fhir.TYPES.get(resource_type)
    found = selectors.entry_get(thread, resource_type, fhir_id) if kind else None
    if kind is None or found is None:
        raise ThreadServiceError("not_found", "The record has no such entry.")
    target = Thread.objects.get(pk=found.thread_id)

    def delete() -> None:
        kind.model().objects.filter(pk=found.pk).delete()

    with thread_context(target.thread):
        record_write(target, delete)


def document_add(
    thread: Thread, *, upload: Upload, title: str, date: str = "", sensitive: bool = False
) -> selectors.Entry:
    """A scan or a PDF: the file sealed into the record's blobs, and a DocumentReference."""
    mime = _mime(upload.name)
    if mime not in DOCUMENT_TYPES:
        raise ThreadServiceError("invalid", "A document is a PDF, an image or a text file.")
    target = selectors.main_of(thread) or thread
    if sensitive:
        patient_only(thread, "keep entries in the sensitive part")
        target = sensitive_create(target)
    _may_write(target, "DocumentReference")
    try:
        sealed = blobs.seal(target.thread, upload, limit=settings.SEREUS.max_attachment_bytes)
    except blobs.BlobError as exc:
        raise ThreadServiceError("invalid", f"{_file_name(upload.name)}: {exc}") from exc
    if sealed.size == 0:
        raise ThreadServiceError("invalid", "The file is empty.")
    title = " ".join(str(title).split())[:200] or _file_name(upload.name)
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "status": "current",
        "description": title,
        "content": [
            {
                "attachment": {
                    "contentType": mime,
                    "title": _file_name(upload.name),
                    "size": sealed.size,
                    **({"creation": date} if date else {}),
                }
            }
        ],
    }
    if date:
        resource["date"] = f"{date}T00:00:00Z" if len(date) == 10 else date
    extra = {
        "name": _file_name(upload.name),
        "mime": mime,
        "size": sealed.size,
        "key": sealed.key.hex(),
        "chunks": b"".join(sealed.chunks).hex(),
    }
    return resource_write(target, "DocumentReference", resource, extra=extra)


def document_bytes(thread: Thread, fhir_id: str) -> tuple[str, str, bytes]:
    """(file name, type, content) of a document; ``conflict`` while its file is still on its
    way here (this node asks the members' devices for it)."""
    from apps.medical.models import Document

    found = selectors.entry_get(thread, "DocumentReference", fhir_id)
    if found is None:
        raise ThreadServiceError("not_found", "The record has no such document.")
    target = Thread.objects.get(pk=found.thread_id)
    with thread_context(target.thread):
        row = Document.objects.get(pk=found.pk)
    try:
        key = bytes.fromhex(row.key)
        chunks = [bytes.fromhex(row.chunks[i : i + 64]) for i in range(0, len(row.chunks), 64)]
    except ValueError:
        key, chunks = b"", []
    if len(key) != 32 or not chunks:
        raise ThreadServiceError("not_found", "This document has no file in the record.")
    missing = blobs.missing(target.thread, chunks)
    if missing:
        if threads.network is not None:
            threads.network.blobs_want(target.thread, missing)
        raise ThreadServiceError("conflict", "The file is still on its way to this device.")
    try:
        data = b"".join(blobs.open_blob(target.thread, key, chunks))
    except blobs.BlobError as exc:
        raise ThreadServiceError(
            "conflict", f"This document's file cannot be opened: {exc}"
        ) from exc
    return row.name, row.mime, data
