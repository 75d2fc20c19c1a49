"""The record's rules, which every replica applies to the rows of its ordered tables in the
thread's order (``apps.core.thread.ordered``). Pure functions of the view, the row change and
its author's standing: no clock, no database, nothing of this node. Refusals are sentences.

- **A resource** (one table per FHIR type, ``fhir.TYPES``) is valid FHIR by the library
  (``fhir.resource_check``, the same check its writer ran), stored in its canonical text, with
  ``fhir_id`` equal to the resource's id and the search columns equal to what the resource says.
  One row per id in a table. The patient writes and deletes any; a provider inserts and updates
  only the types its grant lets it write, only while the grant is active and only within the
  grant's period, judged by the op's own stamp (``View.stamp_millis``: data of the op, the same
  on every replica); nobody else writes. Only the patient deletes (a provider marks an entry
  "entered-in-error" instead, as FHIR does).
- **A grant** is written only by the patient, one per grantee (its id follows from the patient
  and the grantee, ``grant_id``), never deleted (revoked instead): which types it reads and
  writes, a period, a label.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from apps.core.thread.ordered import Author, Validator, View
from apps.core.thread.payloads import UPSERT, RowChange
from apps.core.thread.policy import OWNER
from apps.core.thread.rowid import row_id_for
from apps.medical import fhir
from apps.medical.policy import DOCUMENT, GRANT, PATIENT, PROVIDER

ACTIVE, REVOKED = "active", "revoked"
GRANT_STATUSES = (ACTIVE, REVOKED)
MAX_LABEL = 120
HEX64 = frozenset("0123456789abcdef")


def grant_id(patient: bytes, grantee: bytes) -> str:
    """The one grant row of ``grantee`` in a record of ``patient`` (hex)."""
    return row_id_for(patient, b"medical-grant/" + grantee).hex


def _after(view: View, table: str, change: RowChange) -> dict[str, Any] | None:
    """The row as the change leaves it (None for a delete)."""
    if change.action != UPSERT:
        return None
    before = view.get(table, change.pk)
    row = dict(before) if before is not None else {}
    row.update(change.cols)
    return row


def _types(value: Any) -> list[str] | None:
    try:
        types = json.loads(value) if isinstance(value, str) else None
    except ValueError:
        return None
    if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
        return None
    return types


def grant_in_force(view: View, member: bytes) -> Mapping[str, Any] | None:
    """The grant of ``member`` as it stands where the judged row does (the newest written, if
    an owner who changed hands left two)."""
    rows = view.rows(GRANT, grantee=member.hex())
    if not rows:
        return None
    return max(rows, key=lambda row: view.stamp_of(GRANT, row["pk"]) or 0)


def grant_problem(grant: Mapping[str, Any] | None, resource_type: str, stamp: int) -> str | None:
    """Why a provider with ``grant`` may not write ``resource_type`` at ``stamp`` (ms), or None."""
    kind = fhir.TYPES[resource_type]
    if grant is None:
        return "the patient has not granted this provider any writing"
    if grant.get("status") != ACTIVE:
        return "the patient revoked this provider's access"
    if resource_type not in (_types(grant.get("write")) or ()):
        return f"the patient's grant does not let this provider write {kind.plural}"
    start, end = grant.get("start"), grant.get("end")
    if isinstance(start, int) and stamp < start:
        return "the patient's grant to this provider had not started yet"
    if isinstance(end, int) and stamp >= end:
        return "the patient's grant to this provider had ended"
    return None


def _columns_problem(row: Mapping[str, Any], checked: fhir.Checked) -> str | None:
    for column, expected in checked.columns.items():
        got = row.get(column)
        if column == "value":
            same = (got is None and expected is None) or (
                isinstance(got, (int, float))
                and expected is not None
                and math.isclose(float(got), expected, rel_tol=0, abs_tol=0)
            )
        else:
            same = (got if got is not None else "") == expected
        if not same:
            return f"its {column} column does not say what the resource says"
    return None


def _content_problem(view: View, table: str, change: RowChange, kind: fhir.FhirType) -> str | None:
    row = _after(view, table, change)
    assert row is not None
    text = row.get("resource")
    if not isinstance(text, str):
        return f"a {kind.label} row must hold its FHIR resource"
    try:
        checked = fhir.resource_check(kind.name, text)
    except fhir.FhirInvalid as exc:
        return str(exc).rstrip(".")
    if checked.json != text:
        return f"the {kind.label} is not stored in its canonical form"
    fhir_id = row.get("fhir_id")
    if not isinstance(fhir_id, str) or checked.resource.get("id") != fhir_id:
        return f"the {kind.label}'s id does not match its row"
    before = view.get(table, change.pk)
    if before is not None and before.get("fhir_id") != fhir_id:
        return "an entry's id never changes"
    if before is None and any(r["pk"] != change.pk for r in view.rows(table, fhir_id=fhir_id)):
        return f"the record already has a {kind.label} with this id"
    return _columns_problem(row, checked)


DOCUMENT_TYPES = ("application/pdf", "image/jpeg", "image/png", "image/webp", "text/plain")
MAX_FILE_NAME = 200


def _is_hex(value: Any, multiple: int) -> bool:
    return isinstance(value, str) and len(value) % multiple == 0 and set(value) <= HEX64


def _file_problem(row: Mapping[str, Any]) -> str | None:
    """A document's file, as its row names it: a sealed blob the pages can open, of a type they
    serve, the same as its DocumentReference says (or no file at all)."""
    key, chunks, size = row.get("key") or "", row.get("chunks") or "", row.get("size")
    if not key and not chunks:
        return None
    if len(key) != 64 or not _is_hex(key, 64) or not chunks or not _is_hex(chunks, 64):
        return "a document's file is named by its key and chunk hashes"
    if type(size) is not int or size < 0:
        return "a document's size is a whole number of bytes"
    name = row.get("name") or ""
    if not isinstance(name, str) or len(name) > MAX_FILE_NAME or not name.isprintable():
        return f"a document's file name is plain text of at most {MAX_FILE_NAME} characters"
    mime = row.get("mime")
    if mime not in DOCUMENT_TYPES:
        return "a document's file is a PDF, an image or a text file"
    try:
        attachment = json.loads(row["resource"])["content"][0]["attachment"]
    except (KeyError, IndexError, TypeError, ValueError):
        return "a document with a file says so in its attachment"
    if attachment.get("contentType") != mime or attachment.get("size", size) != size:
        return "a document's file must be what its attachment says"
    return None


def resource_rule(table: str) -> Validator:
    kind = fhir.TYPE_BY_TABLE[table]

    def rule(view: View, change: RowChange, author: Author) -> str | None:
        if author.role == OWNER:
            pass
        elif author.role == PROVIDER:
            if change.action != UPSERT:
                return "only the patient deletes entries (mark it entered in error instead)"
            if table == PATIENT and view.get(table, change.pk) is None:
                return "only the patient adds patient details (a provider may correct them)"
            problem = grant_problem(
                grant_in_force(view, author.member), kind.name, view.stamp_millis
            )
            if problem:
                return problem
        else:
            return "only the patient and the providers they granted write the record"
        if change.action != UPSERT:
            return None
        problem = _content_problem(view, table, change, kind)
        if problem is None and table == DOCUMENT:
            problem = _file_problem(_after(view, table, change) or {})
        return problem

    rule.__name__ = f"{kind.slug}_rule"
    return rule


def _grant_fields_problem(row: Mapping[str, Any]) -> str | None:
    grantee = row.get("grantee")
    if not isinstance(grantee, str) or len(grantee) != 64 or not set(grantee) <= HEX64:
        return "a grant names its member by key"
    for column in ("read", "write"):
        types = _types(row.get(column))
        if types is None:
            return f"a grant's {column} list must be a list of resource types"
        unknown = [t for t in types if t not in fhir.TYPES]
        if unknown:
            return f"the record keeps no {unknown[0]} resources"
    if not set(_types(row.get("write")) or ()) <= set(_types(row.get("read")) or ()):
        return "a grant cannot let someone write what it does not let them read"
    start, end = row.get("start"), row.get("end")
    for value in (start, end):
        if value is not None and (type(value) is not int or value < 0):
            return "a grant's period is given in milliseconds"
    if isinstance(start, int) and isinstance(end, int) and end <= start:
        return "a grant's period must end after it starts"
    if row.get("status") not in GRANT_STATUSES:
        return "a grant is active or revoked"
    label = row.get("label") or ""
    if not isinstance(label, str) or len(label) > MAX_LABEL or not label.isprintable():
        return f"a grant's label is plain text of at most {MAX_LABEL} characters"
    return None


def grant_rule(view: View, change: RowChange, author: Author) -> str | None:
    if author.role != OWNER:
        return "only the patient grants access to the record"
    if change.action != UPSERT:
        return "a grant is never deleted: it is revoked"
    row = _after(view, GRANT, change)
    assert row is not None
    problem = _grant_fields_problem(row)
    if problem:
        return problem
    if change.pk != grant_id(author.member, bytes.fromhex(row["grantee"])):
        return "a grant's id must follow from the patient and the member it names"
    return None


def validators() -> dict[str, Validator]:
    """The record's ordered tables and their rules (``validators_register``)."""
    rules: dict[str, Callable[..., str | None]] = {GRANT: grant_rule}
    for kind in fhir.TYPES.values():
        rules[kind.table] = resource_rule(kind.table)
    return rules
