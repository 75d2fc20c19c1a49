"""The emergency links' API (owner only, like the rest): list a record's links with every try
to open them, make one (the answer holds its URL, with its key, once), revoke one.

Errors are ``{"error": code, "detail": words}``: 404 for an unknown record or link, 403 when
this node is not the record's patient, 400 for a passcode, expiry or limit out of range."""

from __future__ import annotations

from datetime import timedelta

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.models import Thread
from apps.core.threads.app_kit import AppFailed, api_call, api_thread
from apps.core.threads.services import ThreadServiceError
from apps.medical import emergency
from apps.medical.policy import SHAPE


class EmergencyInput(serializers.Serializer):
    passcode = serializers.CharField(
        max_length=40,
        help_text="4 to 12 characters (spaces do not count, nor letter case): whoever opens "
        "the link types it.",
    )
    expires_in = serializers.IntegerField(
        required=False,
        default=int(emergency.EXPIRY_DEFAULT.total_seconds()),
        help_text="Seconds the link works: 3600 (one hour) to 2592000 (30 days); 7 days if "
        "not given.",
    )
    max_attempts = serializers.IntegerField(
        required=False,
        default=emergency.ATTEMPTS_DEFAULT,
        help_text=f"Wrong passcodes before the link locks ({emergency.ATTEMPTS_MIN} to "
        f"{emergency.ATTEMPTS_MAX}).",
    )
    sensitive = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Also show the entries of the record's sensitive part (left out if not given).",
    )


class OpenOutput(serializers.Serializer):
    at = serializers.DateTimeField()
    ok = serializers.BooleanField(help_text="True: the right passcode; false: refused.")
    address = serializers.CharField(help_text="Where the try came from (an IP address).")


class LinkOutput(serializers.Serializer):
    id = serializers.CharField()
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    state = serializers.ChoiceField(choices=["active", "expired", "revoked", "locked"])
    attempts = serializers.IntegerField(help_text="Wrong passcodes so far.")
    max_attempts = serializers.IntegerField()
    opens = OpenOutput(many=True, help_text="Every try to open the link, newest first.")


class CreatedOutput(serializers.Serializer):
    id = serializers.CharField()
    url = serializers.CharField(
        help_text="The link, its key after '#'. Given only here: the node keeps no copy."
    )
    expires_at = serializers.DateTimeField()
    max_attempts = serializers.IntegerField()


def record(thread_id: str) -> Thread:
    thread = api_thread(thread_id)
    if thread.app != SHAPE:
        raise AppFailed(ThreadServiceError("not_found", "this thread is not a medical record"))
    return thread


def link_body(link: emergency.LinkView) -> dict:
    return {
        "id": link.id,
        "created_at": link.created_at,
        "expires_at": link.expires_at,
        "state": link.state,
        "attempts": link.attempts,
        "max_attempts": link.max_attempts,
        "opens": [{"at": o.at, "ok": o.ok, "address": o.address} for o in link.opens],
    }


class EmergencyLinksApi(APIView):
    @extend_schema(responses=LinkOutput(many=True), operation_id="medical_emergency_list")
    def get(self, request: Request, thread_id: str) -> Response:
        """The record's emergency links, newest first, with every try to open each."""
        thread = record(thread_id)
        if thread.role != "owner":
            return Response([])  # the links are the patient's node's, never a provider's
        links = emergency.emergency_links(thread)
        return Response(LinkOutput([link_body(link) for link in links], many=True).data)

    @extend_schema(
        request=EmergencyInput,
        responses={201: CreatedOutput},
        operation_id="medical_emergency_create",
        description="Make an emergency link to the record's summary (the patient only). The "
        "summary is sealed with a key in the link and the passcode; the URL in the answer is "
        "the only copy of the key.",
    )
    def post(self, request: Request, thread_id: str) -> Response:
        thread = record(thread_id)
        data = EmergencyInput(data=request.data)
        data.is_valid(raise_exception=True)
        given = data.validated_data
        link, path = api_call(
            emergency.emergency_create,
            thread=thread,
            passcode=given["passcode"],
            expires_in=timedelta(seconds=given["expires_in"]),
            max_attempts=given["max_attempts"],
            sensitive=given["sensitive"],
        )
        body = {
            "id": emergency.link_name(link.id),
            "url": request.build_absolute_uri(path),
            "expires_at": link.expires_at,
            "max_attempts": link.max_attempts,
        }
        answer = Response(CreatedOutput(body).data, status=status.HTTP_201_CREATED)
        answer["Cache-Control"] = "no-store"
        return answer


class EmergencyLinkApi(APIView):
    @extend_schema(request=None, responses={204: None}, operation_id="medical_emergency_revoke")
    def delete(self, request: Request, thread_id: str, link_id: str) -> Response:
        """Revoke a link: it stops opening at once; its tries stay listed."""
        thread = record(thread_id)
        api_call(emergency.emergency_revoke, thread=thread, link_id=link_id)
        return Response(status=status.HTTP_204_NO_CONTENT)
