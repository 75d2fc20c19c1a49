"""``GET /api/v1/threads/{id}/audit/``: a medical record's audit log (``audit.py``), newest first,
a page at a time, narrowed to one kind of event or one person. Owner-only like the rest of the
API; errors are ``{"error", "detail"}`` (404 for a thread that is not a record here, 400 for a
bad filter). ``api_urlpatterns`` is listed in ``sereus_web.app_routes.API_URLS``."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api_urls import THREAD
from apps.core.models import Thread
from apps.core.threads.app_kit import AppFailed, api_thread
from apps.core.threads.services import ThreadServiceError
from apps.medical import audit
from apps.medical.access import holders
from apps.medical.policy import SHAPE


class AuditQuery(serializers.Serializer):
    kind = serializers.ChoiceField(
        choices=list(audit.KINDS),
        required=False,
        help_text="Only one kind: "
        + ", ".join(f"{k} ({w.lower()})" for k, w in audit.KINDS.items()),
    )
    member = serializers.RegexField(
        r"^[0-9a-fA-F]{64}$",
        required=False,
        help_text="Only what this member (hex key) did or what concerned them.",
    )
    page = serializers.IntegerField(min_value=1, max_value=10_000, default=1)
    per_page = serializers.IntegerField(min_value=1, max_value=audit.MAX_PAGE, default=audit.PAGE)


class AuditEntryOutput(serializers.Serializer):
    at = serializers.DateTimeField(help_text="When: the signed op's stamp, or this node's record.")
    who = serializers.CharField(help_text='Who, as this node names them ("you", "Dr. Lee").')
    member = serializers.CharField(
        help_text="Who, as a member key (hex); empty for someone "
        "outside the record (an emergency link's opener)."
    )
    what = serializers.CharField(help_text="What they did, a phrase that follows the name.")
    kind = serializers.ChoiceField(choices=list(audit.KINDS))
    about = serializers.CharField(help_text="The member the event concerns (hex), or empty.")
    part = serializers.CharField(help_text='"sensitive" for the record\'s sensitive part.')
    resource_type = serializers.CharField(help_text="The entry's FHIR type, for writes.")
    id = serializers.CharField(help_text="The entry's FHIR id, for writes still in the record.")


class DeviceSyncOutput(serializers.Serializer):
    member = serializers.CharField(help_text="Whose device (member key, hex).")
    who = serializers.CharField()
    device = serializers.CharField(help_text="The device's key, hex.")
    label = serializers.CharField(help_text='The device in words ("Dr. Lee\'s device").')
    last_synced = serializers.DateTimeField(
        allow_null=True, help_text="When it last synced with this node; null: never."
    )
    holds_latest = serializers.BooleanField(help_text="Holds everything this node holds.")


class AuditOutput(serializers.Serializer):
    entries = AuditEntryOutput(many=True)
    page = serializers.IntegerField()
    next_page = serializers.IntegerField(allow_null=True, help_text="null: the oldest page.")
    devices = DeviceSyncOutput(
        many=True, help_text="Every other device that holds the record, as this node last heard."
    )


def _record(thread_id: str) -> Thread:
    thread = api_thread(thread_id)
    if thread.app != SHAPE:
        raise AppFailed(ThreadServiceError("not_found", "this thread is not a medical record"))
    return thread


def _body(entry: audit.AuditEntry) -> dict:
    from apps.medical.fhir import TYPE_BY_SLUG

    kind = TYPE_BY_SLUG.get(entry.slug)
    return {
        "at": entry.at,
        "who": entry.who,
        "member": entry.member,
        "what": entry.what,
        "kind": entry.kind,
        "about": entry.about,
        "part": entry.part,
        "resource_type": kind.name if kind is not None else "",
        "id": entry.fhir_id,
    }


class AuditApi(APIView):
    @extend_schema(
        parameters=[AuditQuery],
        responses=AuditOutput,
        operation_id="medical_audit",
        description="The record's audit log, newest first: who joined, left or was removed, "
        "invites made and revoked, grants given, changed and revoked, every entry written or "
        "changed and by whom (from the signed ops), and, on the patient's node, every use of an "
        "emergency link; and when each device that holds the record last synced with this node.",
    )
    def get(self, request: Request, thread_id: str) -> Response:
        thread = _record(thread_id)
        query = AuditQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        wanted = query.validated_data
        found = audit.audit_page(
            thread,
            kind=wanted.get("kind"),
            member=(wanted.get("member") or "").lower() or None,
            page=wanted["page"],
            per_page=wanted["per_page"],
        )
        devices = [
            {
                "member": holder.member,
                "who": holder.name,
                "device": device.device,
                "label": device.label,
                "last_synced": device.last_synced,
                "holds_latest": device.holds_latest,
            }
            for holder in holders(thread)
            for device in holder.devices
            if not device.this_device
        ]
        body = {
            "entries": [_body(entry) for entry in found.entries],
            "page": found.page,
            "next_page": found.page + 1 if found.has_next else None,
            "devices": devices,
        }
        return Response(AuditOutput(body).data)


api_urlpatterns = [path(THREAD + "audit/", AuditApi.as_view(), name="medical_audit")]
