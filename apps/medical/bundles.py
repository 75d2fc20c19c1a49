"""FHIR Bundles in and out of a record (issue 16 §6): import with a report, export as stored.

``bundle_import`` takes a Bundle as a clinic's system sends it (collection, transaction, batch,
document or searchset; JSON text or an already parsed object), sorts out the entries the record
cannot take (no resource, a type it does not keep, a bad or repeated id; from a patient
summary, its Composition and its "no information" entries) and writes the rest
through the services (``services.resources_write``), which check each with the FHIR library
(``fhir.resource_check``) and write the valid ones. Nothing is lost quietly: every entry not
written is in the report with its place in the Bundle, its type, its id and the reason in
words.

Ids: an entry with an id keeps it (importing again updates the same entries instead of adding
copies). One without gets an id here: the uuid of its ``urn:uuid:`` fullUrl when it has one,
so that references between entries of a transaction can be rewritten to ``Type/id`` and still
point at the right resource once stored; else a uuid made from its content, so that a second
import of the same file finds it too. A record is about one patient: the Bundle's Patient is
written as the record's own, and references to it follow.

``bundle_export`` is the whole record (and its sensitive part when this node holds it) as a
Bundle of type collection, each resource exactly as stored: importing it into an empty record
and exporting again gives the same entries. Entries from the sensitive part carry an entry
extension (``SENSITIVE_EXTENSION``) so an import puts them back there.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from apps.core.models import Thread
from apps.core.threads.services import ThreadServiceError
from apps.medical import fhir, ips, selectors, services
from apps.medical.services import Outcome

MAX_BUNDLE = 64 * 1024 * 1024  # bytes of JSON; a record of years fits many times over
BUNDLE_TYPES = ("collection", "transaction", "batch", "document", "searchset")
SENSITIVE_EXTENSION = "https://sereus.org/fhir/StructureDefinition/record-sensitive"
_UUID_URL = "urn:uuid:"
_CONTENT_IDS = uuid.UUID("5b0e8a43-7c1d-5e2f-9a6b-3c4d8e1f2a70")  # uuid5 namespace of new ids

DOCUMENT_WORDS = (
    "A document's table of contents (Composition) is not kept; the entries it lists are."
)
NOTHING_WORDS = (
    "It says there is no information (a patient summary's empty section): nothing to keep."
)
ID_WORDS = "A resource's id is 1 to 64 letters, digits, '-' or '.'."


class BundleInvalid(fhir.FhirInvalid):
    """The file as a whole is not a Bundle this record can read; the message says why."""


@dataclass
class ImportReport:
    """What an import did: every entry of the Bundle is in ``imported`` or ``refused``."""

    imported: list[Outcome] = field(default_factory=list)
    refused: list[Outcome] = field(default_factory=list)
    total: int = 0

    def words(self) -> str:
        """One line for a message: "Imported 185 of 200 entries; 15 were refused."."""
        done = f"Imported {len(self.imported)} of {self.total} entries"
        if not self.refused:
            return done + "."
        return (
            done + f"; {len(self.refused)} {'was' if len(self.refused) == 1 else 'were'} refused."
        )


# -- reading the file --------------------------------------------------------------------------


def bundle_read(data: bytes | str | dict[str, Any]) -> dict[str, Any]:
    """The Bundle object, or ``BundleInvalid`` in words (not JSON, not a Bundle, too large)."""
    if isinstance(data, (bytes, str)):
        if len(data) > MAX_BUNDLE:
            raise BundleInvalid(
                f"This file is larger than {MAX_BUNDLE // (1024 * 1024)} MiB, the most a Bundle "
                "may be. Split it into smaller Bundles."
            )
        try:
            data = json.loads(data)
        except UnicodeDecodeError:
            raise BundleInvalid("This file is not text: a FHIR Bundle is JSON.") from None
        except ValueError as exc:
            where = getattr(exc, "lineno", None)
            at = f" (line {where})" if where else ""
            raise BundleInvalid(f"This file is not valid JSON{at}.") from None
        except RecursionError:
            raise BundleInvalid("This file's JSON is nested too deeply to be FHIR.") from None
    if not isinstance(data, dict):
        raise BundleInvalid("This file is JSON but not a FHIR resource (it is not an object).")
    kind = data.get("resourceType")
    if kind != "Bundle":
        if isinstance(kind, str) and kind:
            what = f"{'an' if kind[:1].lower() in 'aeiou' else 'a'} {kind}"
        else:
            what = "not a FHIR resource"
        raise BundleInvalid(f"This file is {what}, not a Bundle. Import takes a FHIR Bundle.")
    if data.get("type") not in BUNDLE_TYPES:
        raise BundleInvalid(
            f"A Bundle of type {data.get('type')!r} cannot be imported; "
            f"types taken: {', '.join(BUNDLE_TYPES)}."
        )
    entries = data.get("entry", [])
    if not isinstance(entries, list):
        raise BundleInvalid("This Bundle's entries are not a list.")
    return data


@dataclass
class _Item:
    index: int  # place in the Bundle's entries
    resource_type: str
    fhir_id: str
    resource: dict[str, Any]
    sensitive: bool


def _refusal(index: int, resource_type: str, fhir_id: str, reason: str) -> Outcome:
    return Outcome(index, resource_type, fhir_id, False, reason)


def _marked_sensitive(entry: dict[str, Any]) -> bool:
    for extension in entry.get("extension") or []:
        if isinstance(extension, dict) and extension.get("url") == SENSITIVE_EXTENSION:
            return extension.get("valueBoolean") is True
    return False


def _new_id(entry: dict[str, Any], resource: dict[str, Any]) -> str:
    """An id for an entry that has none: its urn:uuid's uuid, else one made from its content,
    so that importing the same file again finds the same entries instead of adding copies."""
    url = entry.get("fullUrl")
    if isinstance(url, str) and url.startswith(_UUID_URL):
        try:
            return str(uuid.UUID(url[len(_UUID_URL) :]))
        except ValueError:
            pass
    return str(uuid.uuid5(_CONTENT_IDS, fhir.canonical(resource)))


def _rewrite(value: Any, targets: dict[str, str]) -> Any:
    """``value`` with every ``reference`` naming a fullUrl of the Bundle made ``Type/id``."""
    if isinstance(value, dict):
        out = {key: _rewrite(item, targets) for key, item in value.items()}
        reference = out.get("reference")
        if isinstance(reference, str) and reference in targets:
            out["reference"] = targets[reference]
        return out
    if isinstance(value, list):
        return [_rewrite(item, targets) for item in value]
    return value


def _says_nothing(resource: dict[str, Any]) -> bool:
    """An IPS "no information" entry ("No information about allergies"): a summary's way of
    saying a section is empty, not something to keep."""
    for name in ("code", "medicationCodeableConcept"):
        concept = resource.get(name)
        codings = concept.get("coding") if isinstance(concept, dict) else None
        if isinstance(codings, list) and any(
            isinstance(c, dict) and c.get("system") == ips.ABSENT for c in codings
        ):
            return True
    return False


def _entries(bundle: dict[str, Any], patient_id: str | None) -> tuple[list[_Item], list[Outcome]]:
    """The entries to write, checked, and the refused ones with reasons. A record is about one
    patient: the Bundle's (first) Patient is this record's (``patient_id``, when it has one),
    and references to it are made references to the record's."""
    items: list[_Item] = []
    refused: list[Outcome] = []
    raw: list[tuple[int, dict[str, Any], dict[str, Any]]] = []  # index, entry, resource
    targets: dict[str, str] = {}
    patient_at: int | None = None
    for index, entry in enumerate(bundle.get("entry") or []):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(entry, dict) or not isinstance(resource, dict):
            request = entry.get("request") if isinstance(entry, dict) else None
            method = request.get("method") if isinstance(request, dict) else None
            reason = (
                "Deleting through a Bundle is not taken: delete the entry in the record."
                if method == "DELETE"
                else "The entry holds no resource (a FHIR resource is a JSON object)."
            )
            refused.append(_refusal(index, "", "", reason))
            continue
        kind = resource.get("resourceType")
        rid = resource.get("id")
        if not isinstance(kind, str) or not kind:
            refused.append(_refusal(index, "", str(rid or ""), "The resource has no resourceType."))
            continue
        if kind not in fhir.TYPES:
            reason = (
                DOCUMENT_WORDS
                if kind == "Composition" and bundle.get("type") == "document"
                else f"This record does not keep {kind}."
            )
            refused.append(_refusal(index, kind, str(rid or ""), reason))
            continue
        if _says_nothing(resource):
            refused.append(_refusal(index, kind, str(rid or ""), NOTHING_WORDS))
            continue
        if kind == "Patient":
            if patient_at is not None:
                refused.append(_refusal(index, kind, str(rid or ""), (
                    f"A record is about one patient; entry {patient_at + 1} is the patient's "
                    "details.")))  # fmt: skip
                continue
            patient_at = index
            if patient_id and isinstance(rid, str):
                targets[f"Patient/{rid}"] = f"Patient/{patient_id}"
            if patient_id:
                rid = patient_id
                resource = {**resource, "id": rid}
        if rid is None:
            rid = _new_id(entry, resource)
            resource = {**resource, "id": rid}
        if isinstance(rid, str):
            url = entry.get("fullUrl")
            if isinstance(url, str) and url:
                targets[url] = f"{kind}/{rid}"
        raw.append((index, entry, resource))
    seen: dict[tuple[str, str], int] = {}
    for index, entry, resource in raw:
        kind, rid = resource["resourceType"], resource["id"]
        if not isinstance(rid, str) or not fhir.ID_RE.match(rid):
            refused.append(_refusal(index, kind, str(rid), ID_WORDS))
            continue
        if (kind, rid) in seen:
            refused.append(
                _refusal(index, kind, rid, f"Entry {seen[kind, rid] + 1} has the same id.")
            )
            continue
        seen[kind, rid] = index
        # The services check each resource with the FHIR library as they write it (once: a
        # check here too would double the import's largest cost) and say why one is refused.
        try:
            resource = _rewrite(resource, targets)
        except RecursionError:
            refused.append(_refusal(index, kind, rid, "The resource is nested too deeply."))
            continue
        items.append(_Item(index, kind, rid, resource, _marked_sensitive(entry)))
    return items, refused


# -- import --------------------------------------------------------------------------------------


def bundle_import(
    thread: Thread, data: bytes | str | dict[str, Any], *, sensitive: bool = False
) -> ImportReport:
    """Write the Bundle's valid resources into the record (``sensitive``: all into its
    sensitive part; otherwise the entries an export marked sensitive go there) and report every
    entry. ``BundleInvalid`` when the file as a whole cannot be read."""
    bundle = bundle_read(data)
    patient = selectors.entries(thread, "Patient")
    items, refused = _entries(bundle, patient[0].fhir_id if patient else None)
    report = ImportReport(refused=refused, total=len(bundle.get("entry") or []))
    # The patient's details stay in the main record, whatever the file says.
    apart = {i.index for i in items if (sensitive or i.sensitive) and i.resource_type != "Patient"}
    groups = {
        False: [i for i in items if i.index not in apart],
        True: [i for i in items if i.index in apart],
    }
    for part, group in groups.items():
        if not group:
            continue
        try:
            outcomes = services.resources_write(
                thread, [(i.resource_type, i.resource) for i in group], sensitive=part
            )
        except ThreadServiceError as exc:  # the whole write refused (not allowed, not enabled)
            report.refused += [
                _refusal(i.index, i.resource_type, i.fhir_id, str(exc)) for i in group
            ]
            continue
        for outcome in outcomes:
            item = group[outcome.index]
            placed = replace(outcome, index=item.index, fhir_id=outcome.fhir_id or item.fhir_id)
            (report.imported if outcome.ok else report.refused).append(placed)
    report.imported.sort(key=lambda o: o.index)
    report.refused.sort(key=lambda o: o.index)
    return report


# -- export --------------------------------------------------------------------------------------


def resource_json(entry: selectors.Entry) -> dict[str, Any]:
    """One resource as stored, its id the record's (first after the type, as FHIR shows it)."""
    resource = dict(entry.resource)
    resource.pop("id", None)
    return {"resourceType": entry.type, "id": entry.fhir_id, **resource}


def bundle_entry(entry: selectors.Entry, *, full_url: str | None = None) -> dict[str, Any]:
    """A Bundle entry of one resource as stored (marked when the sensitive part keeps it);
    ``full_url`` defaults to ``Type/id``."""
    out: dict[str, Any] = {"fullUrl": full_url or f"{entry.type}/{entry.fhir_id}"}
    if entry.sensitive:
        out["extension"] = [{"url": SENSITIVE_EXTENSION, "valueBoolean": True}]
    out["resource"] = resource_json(entry)
    return out


def record_entries(thread: Thread) -> Iterable[selectors.Entry]:
    """Every resource of the record as this node holds it, type by type (``fhir.TYPES``)."""
    for kind in fhir.TYPES:
        yield from selectors.entries(thread, kind)


def bundle_export(thread: Thread, *, now: datetime | None = None) -> dict[str, Any]:
    """The record as a FHIR Bundle (type collection), every resource as stored."""
    stamp = (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds")
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": stamp.replace("+00:00", "Z"),
        "entry": [bundle_entry(entry) for entry in record_entries(thread)],
    }
