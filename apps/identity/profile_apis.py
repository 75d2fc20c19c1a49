"""The profile API (owner only, like the rest): this party's fields, sharing them into a thread
and stopping, what a thread sees of its members' profiles, and an SD-JWT presentation of chosen
fields. Errors are ``{"error": code, "detail": words}``: 400 for a bad value (the words say
which and why), 404 for an unknown thread or field, 403 when this member may no longer write
there, 409 when Identity is off in the thread and this member cannot turn it on, or the
thread's rules refuse the copy."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.threads.app_kit import AppFailed, api_thread
from apps.core.threads.services import ThreadServiceError
from apps.identity import profile
from apps.identity.models import MAX_LABEL, MAX_NAME, MAX_PHOTO
from apps.identity.profile import FieldView, ProfileError
from apps.identity.profile_selectors import shared_in

# A field's value: text up to models.MAX_TEXT, or a photo's data: URL (the larger bound).
_VALUE_MAX = MAX_PHOTO


def _failed(exc: ProfileError) -> AppFailed:
    return AppFailed(ThreadServiceError(exc.code, exc.words))


class ShareOutput(serializers.Serializer):
    thread = serializers.CharField(help_text="The thread's id.")
    thread_name = serializers.CharField()


class FieldOutput(serializers.Serializer):
    name = serializers.CharField(
        help_text="name, photo, birth_date, location, contact, links "
        "or x-<slug> (a field of your own)."
    )
    label = serializers.CharField()
    value = serializers.CharField(help_text="Text; a photo is a data: URL; links one per line.")
    standard = serializers.BooleanField()
    shared_with = ShareOutput(many=True, help_text="Threads it is shared with now.")


class FieldInput(serializers.Serializer):
    value = serializers.CharField(
        max_length=_VALUE_MAX,
        allow_blank=True,
        trim_whitespace=False,
        help_text="Empty deletes the field.",
    )
    label = serializers.CharField(
        max_length=MAX_LABEL,
        required=False,
        allow_blank=True,
        default="",
        help_text="Fields of your own (x-...): what others see it called.",
    )


class FieldsInput(serializers.Serializer):
    fields = serializers.DictField(
        child=FieldInput(), help_text="{name: {value, label?}}: only the fields named change."
    )


class NamesInput(serializers.Serializer):
    fields = serializers.ListField(
        child=serializers.CharField(max_length=MAX_NAME), min_length=1, max_length=50
    )


class SharedOutput(serializers.Serializer):
    name = serializers.CharField()
    label = serializers.CharField()
    value = serializers.CharField()


class PersonOutput(serializers.Serializer):
    member = serializers.CharField(help_text="The member's key in this thread, hex.")
    name = serializers.CharField(help_text="The member's name as this node shows it.")
    mine = serializers.BooleanField()
    fields = SharedOutput(many=True, help_text="Only fields whose proof checks.")


class SharedNowOutput(serializers.Serializer):
    thread = serializers.CharField()
    changed = serializers.ListField(child=serializers.CharField())
    shared = serializers.ListField(
        child=serializers.CharField(), help_text="Every field of yours this thread has now."
    )


class ProfileCredentialOutput(serializers.Serializer):
    sd_jwt = serializers.CharField(help_text="<issuer-signed JWT>~<disclosure>~...~")
    fields = serializers.ListField(child=serializers.CharField())
    profile_key = serializers.CharField(help_text="did:key of the profile key that signed it.")


def field_body(field: FieldView) -> dict[str, Any]:
    return {
        "name": field.name,
        "label": field.label,
        "value": field.value,
        "standard": field.standard,
        "shared_with": [{"thread": s.thread, "thread_name": s.thread_name} for s in field.shares],
    }


def _fields() -> list[dict[str, Any]]:
    return [field_body(f) for f in profile.fields()]


class FieldsApi(APIView):
    @extend_schema(responses=FieldOutput(many=True), operation_id="profile_fields_list")
    def get(self, request: Request) -> Response:
        """Your profile's fields, standard ones first, with the threads each is shared with."""
        return Response(_fields())

    @extend_schema(
        request=FieldsInput,
        responses=FieldOutput(many=True),
        operation_id="profile_fields_set",
        description='Set fields at once: {"fields": {name: {value, label?}}}. An empty value '
        "deletes the field. Every value is checked first (birth_date a past date YYYY-MM-DD, "
        "links http(s) addresses one per line, at most 10; photo a data: URL of a JPEG, PNG or "
        "WebP of at most 290 KiB); nothing is written if one is refused. Threads a changed "
        "field is shared with get the new value shortly after.",
    )
    def put(self, request: Request) -> Response:
        data = FieldsInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            profile.fields_set(data.validated_data["fields"])
        except ProfileError as exc:
            raise _failed(exc) from exc
        return Response(_fields())


def _mine_in(thread_id: str) -> list[str]:
    return [f.name for f in profile.fields() if any(s.thread == thread_id for s in f.shares)]


class ShareApi(APIView):
    @extend_schema(
        request=NamesInput,
        responses=SharedNowOutput,
        operation_id="profile_share",
        description="Share fields into the thread: each with its proof (the profile's "
        "commitment and the binding to your member key there). Turns Identity on if it is off "
        "and you may. Members of the thread keep what they received; those of two threads you "
        "share into can tell it is the same person.",
    )
    def post(self, request: Request, thread_id: str) -> Response:
        thread = api_thread(thread_id)
        data = NamesInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            done = profile.share(thread=thread, names=data.validated_data["fields"])
        except ProfileError as exc:
            raise _failed(exc) from exc
        return Response({"thread": thread.id, "changed": done, "shared": _mine_in(thread.id)})

    @extend_schema(
        request=NamesInput,
        responses=SharedNowOutput,
        operation_id="profile_unshare",
        description="Stop sharing fields into the thread: your copies there are deleted and no "
        "more updates go there. What members already received stays with them.",
    )
    def delete(self, request: Request, thread_id: str) -> Response:
        thread = api_thread(thread_id)
        data = NamesInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            done = profile.unshare(thread=thread, names=data.validated_data["fields"])
        except ProfileError as exc:
            raise _failed(exc) from exc
        return Response({"thread": thread.id, "changed": done, "shared": _mine_in(thread.id)})


class ThreadProfilesApi(APIView):
    @extend_schema(responses=PersonOutput(many=True), operation_id="profile_thread_people")
    def get(self, request: Request, thread_id: str) -> Response:
        """What this thread sees of its members' profiles: per member, the fields they shared
        into it whose proof checks (you first)."""
        thread = api_thread(thread_id)
        found = shared_in(thread)
        people = sorted(
            found.items(), key=lambda item: (not item[1][0].mine, item[1][0].member_name)
        )
        return Response(
            [
                {
                    "member": member,
                    "name": views[0].member_name,
                    "mine": views[0].mine,
                    "fields": [{"name": v.name, "label": v.label, "value": v.value} for v in views],
                }
                for member, views in people
            ]
        )


class CredentialApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "fields", str, required=True, description="Field names, comma separated."
            )
        ],
        responses=ProfileCredentialOutput,
        operation_id="profile_credential",
        description="Chosen fields as an SD-JWT presentation: the commitment over every field "
        "(signed by the profile key, EdDSA) and the disclosures of the chosen ones only.",
    )
    def get(self, request: Request) -> Response:
        names = [n.strip() for n in request.query_params.get("fields", "").split(",")]
        names = [n for n in names if n]
        try:
            token = profile.presentation(names)
            did = profile.profile_did()
        except ProfileError as exc:
            raise _failed(exc) from exc
        return Response({"sd_jwt": token, "fields": list(dict.fromkeys(names)), "profile_key": did})
