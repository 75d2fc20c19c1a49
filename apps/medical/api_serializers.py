"""What the medical record's API takes and answers besides FHIR resources, for the schema and the
checks of shape: a grant (what a provider or caregiver may read and write, and when), the
history of an entry, and the report of a Bundle's import. FHIR resources themselves are
checked by the FHIR library (``fhir.resource_check``), never by a serializer here."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.medical import fhir

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
    start = serializers.DateTimeField(allow_null=True)
    end = serializers.DateTimeField(allow_null=True)
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
