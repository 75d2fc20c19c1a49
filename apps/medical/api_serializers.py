"""What the medical record's API takes and answers besides FHIR resources, for the schema and the
checks of shape: a grant (what a provider or caregiver may read and write, and when), the
history of an entry, and the report of a Bundle's import. FHIR resources themselves are
checked by the FHIR library (``fhir.resource_check``), never by a serializer here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rest_framework import serializers

from apps.medical import bundles, fhir, selectors

TYPE_NAMES = ", ".join(fhir.TYPES)


def resource_types(**kwargs: Any) -> serializers.ListField:
    """A list of FHIR resourceTypes; which ones a record keeps is the services' to say."""
    child = serializers.CharField(max_length=64)
    return serializers.ListField(child=child, max_length=len(fhir.TYPES) * 2, **kwargs)


class GrantInput(serializers.Serializer):
    read = resource_types(help_text=f"The resource types the member may read: {TYPE_NAMES}.")
    write = resource_types(
        required=False,
        default=list,
        help_text="The resource types the member may add and change (a provider's; a caregiver "
        "writes nothing). They are readable too.",
    )
    label = serializers.CharField(
        max_length=200,
        required=False,
        allow_blank=True,
        help_text='Who this is for, in your words ("Dr. Lee, family doctor").',
    )
    start = serializers.DateField(
        required=False, allow_null=True, help_text="First day it applies (none: from now)."
    )
    end = serializers.DateField(
        required=False, allow_null=True, help_text="Last day it applies (none: until revoked)."
    )


class InviteGrantInput(GrantInput):
    """A grant as an invite carries it (``grant`` of ``POST /threads/{id}/invites/``)."""

    sensitive = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Also invite them to the sensitive part of the record.",
    )


class GrantOutput(serializers.Serializer):
    member = serializers.CharField(help_text="The member key, hex.")
    name = serializers.CharField(help_text="The member as this node names them.")
    role = serializers.CharField(
        allow_null=True, help_text="provider, caregiver or reader; null: no longer a member."
    )
    label = serializers.CharField()
    read = serializers.ListField(child=serializers.CharField())
    write = serializers.ListField(child=serializers.CharField())
    start = serializers.DateTimeField(
        allow_null=True, help_text="When it starts to apply (the first day's start, UTC)."
    )
    end = serializers.DateTimeField(
        allow_null=True,
        help_text="When it stops applying: the end of the last day given (the next day's "
        "00:00 UTC); null: until revoked.",
    )
    status = serializers.CharField(help_text="active or revoked.")
    sensitive = serializers.BooleanField(help_text="Invited to the sensitive part too.")


class VersionOutput(serializers.Serializer):
    at = serializers.DateTimeField()
    member = serializers.CharField(help_text="Who wrote it: their member key, hex.")
    name = serializers.CharField(help_text="Who wrote it, as this node names them.")
    action = serializers.ChoiceField(["insert", "update", "delete"])


class HistoryOutput(serializers.Serializer):
    resourceType = serializers.CharField()
    id = serializers.CharField()
    versions = VersionOutput(many=True, help_text="Oldest first.")


class OutcomeOutput(serializers.Serializer):
    index = serializers.IntegerField(help_text="The entry's place in the Bundle, from 0.")
    resourceType = serializers.CharField(source="resource_type")
    id = serializers.CharField(source="fhir_id")
    reason = serializers.CharField(help_text="Why it was not written, in words; empty if it was.")


class ImportReportOutput(serializers.Serializer):
    total = serializers.IntegerField(help_text="Entries in the Bundle.")
    imported = OutcomeOutput(many=True)
    refused = OutcomeOutput(many=True)


def errors_in_words(errors: Any) -> str:
    """A serializer's errors as one sentence (``read: X is not a kind of entry...``)."""
    if isinstance(errors, dict):
        parts = []
        for field, found in errors.items():
            words = errors_in_words(found)
            parts.append(words if field == "non_field_errors" else f"{field}: {words}")
        return "; ".join(parts)
    if isinstance(errors, list):
        return " ".join(errors_in_words(e) for e in errors if e)
    return str(errors)


# -- FHIR search: the parameters taken, the searchset Bundle answered --------------------------

COUNT_DEFAULT, COUNT_MAX = 100, 1000


class SearchInvalid(ValueError):
    """A search parameter that cannot be read; the message says which, in words."""


DATE_TESTS = {
    "eq": lambda have, want: have == want,
    "ge": lambda have, want: have >= want,
    "le": lambda have, want: have <= want,
    "gt": lambda have, want: have > want,
    "lt": lambda have, want: have < want,
}
CONCEPTS = ("code", "medicationCodeableConcept", "vaccineCode", "type")  # where codes are


def _codes(entry: selectors.Entry) -> set[str]:
    """Every ``system|code`` of the entry's coded concepts (its first is ``entry.code``)."""
    found = {entry.code} if entry.code else set()
    for name in CONCEPTS:
        value = entry.resource.get(name)
        for concept in value if isinstance(value, list) else [value]:
            if isinstance(concept, dict):
                for coding in concept.get("coding") or []:
                    if isinstance(coding, dict) and coding.get("code"):
                        found.add(f"{coding.get('system') or ''}|{coding['code']}")
    return found


def _code_matches(entry: selectors.Entry, wanted: list[str]) -> bool:
    """FHIR token search: ``system|code``, ``|code`` (no system) or ``code`` (any system)."""
    have = _codes(entry)
    return any(
        want in have if "|" in want else any(c.rpartition("|")[2] == want for c in have)
        for want in wanted
    )


def _date_tests(values: list[str]) -> list[tuple[Any, str]]:
    tests = []
    for value in values:
        prefix, rest = (value[:2], value[2:]) if value[:2] in DATE_TESTS else ("eq", value)
        if not rest or not rest[:4].isdigit():
            raise SearchInvalid(f"date: {value[:40]} is not a date like ge2024-01-31.")
        tests.append((DATE_TESTS[prefix], rest))
    return tests


def _count(value: str | None) -> int:
    if value in (None, ""):
        return COUNT_DEFAULT
    try:
        return max(0, min(COUNT_MAX, int(value)))
    except ValueError:
        raise SearchInvalid("_count: a whole number.") from None


def search(entries: list[selectors.Entry], params: Any) -> tuple[list[selectors.Entry], int]:
    """The entries the FHIR search parameters keep (at most ``_count``), and how many match.
    Dates compare as far as the wanted one goes (``le2024-03`` takes all of March)."""
    codes = [c for v in params.getlist("code") for c in v.split(",") if c]
    states = {s for v in params.getlist("status") for s in v.split(",") if s}
    dates = _date_tests([v for v in params.getlist("date") if v])
    limit = _count(params.get("_count"))
    kept = [
        e
        for e in entries
        if (not codes or _code_matches(e, codes))
        and (not states or e.status in states)
        and all(e.date and test(e.date[: len(want)], want) for test, want in dates)
    ]
    return kept[:limit], len(kept)


def searchset(
    entries: list[selectors.Entry],
    params: Any,
    *,
    self_url: str,
    url_of: Callable[[selectors.Entry], str],
) -> dict[str, Any]:
    """The entries the search keeps as a FHIR searchset Bundle (sensitive ones marked as an
    export marks them)."""
    shown, total = search(entries, params)
    items = []
    for entry in shown:
        item: dict[str, Any] = {"fullUrl": url_of(entry)}
        if entry.sensitive:
            item["extension"] = [{"url": bundles.SENSITIVE_EXTENSION, "valueBoolean": True}]
        item["resource"] = bundles.resource_json(entry)
        item["search"] = {"mode": "match"}
        items.append(item)
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": [{"relation": "self", "url": self_url}],
        "entry": items,
    }
