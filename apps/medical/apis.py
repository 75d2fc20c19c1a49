"""The medical record's REST API (issue 16 §7), owner-only like the rest: FHIR resources of a
record by type (search as a searchset Bundle, read, create, update or create by id, delete, the
history of an entry), Bundles in and out, the International Patient Summary, and the grants of
the people who hold the record. A record is created with ``POST /api/v1/threads/`` and
``{"app": "medical"}`` (its rules are enabled at once).

FHIR bodies are taken as ``application/fhir+json`` or ``application/json`` and answered as JSON
(``application/fhir+json`` when asked for). Errors are ``{"error": code, "detail": words}``: 404
for an unknown record, type or entry, 400 for a resource that is not valid FHIR (the detail says
what is wrong), 403 when your role or grant does not allow it ("Dr. Lee may not write
medications in this record"), 409 when the record's rules refuse it.

``medical_invite_terms`` is the handler of invites' grants (``apps.core.threads.invite_terms``):
an invite to a record made through the core's invites API carries the grant written for
whoever redeems it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.models import Thread
from apps.core.threads.app_kit import AppFailed, api_thread
from apps.core.threads.services import CreatedInvite, ThreadServiceError
from apps.medical import bundles, fhir, ips, selectors, services, sharing
from apps.medical.api_serializers import (
    GrantInput,
    GrantOutput,
    HistoryOutput,
    ImportReportOutput,
    InviteGrantInput,
    SearchInvalid,
    errors_in_words,
    searchset,
)
from apps.medical.policy import SHAPE

FHIR_JSON = "application/fhir+json"


class FhirJsonParser(JSONParser):
    media_type = FHIR_JSON


class FhirJsonRenderer(JSONRenderer):
    media_type = FHIR_JSON


class FhirView(APIView):
    """Takes FHIR JSON as well as JSON, and answers it when asked for."""

    parser_classes = [JSONParser, FhirJsonParser]
    renderer_classes = [JSONRenderer, FhirJsonRenderer]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        # Django refuses a body over its limit with a bare page; say it, and how to send more.
        length = request.META.get("CONTENT_LENGTH") or "0"
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        multipart = request.content_type.startswith("multipart/")
        if limit and length.isdigit() and int(length) > limit and not multipart:
            raise fail(
                "invalid",
                f"This is larger than {limit / 2**20:.1f} MiB: send a large Bundle as a file "
                "(multipart/form-data, field bundle) to the record's fhir/ address.",
            )


FHIR_OBJECT = {FHIR_JSON: OpenApiTypes.OBJECT, "application/json": OpenApiTypes.OBJECT}
TYPE_HELP = "One of: " + ", ".join(fhir.TYPES) + "."


def fail(code: str, words: str) -> AppFailed:
    return AppFailed(ThreadServiceError(code, words))


def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a service; its refusal (or a resource the FHIR check refuses) becomes an answer."""
    try:
        return fn(*args, **kwargs)
    except ThreadServiceError as exc:
        raise AppFailed(exc) from exc
    except fhir.FhirInvalid as exc:
        raise fail("invalid", str(exc)) from exc


def record_thread(thread_id: str) -> Thread:
    """A medical record this node holds, by the record's own id (not its sensitive part's)."""
    thread = api_thread(thread_id)
    if thread.app != SHAPE:
        raise fail("not_found", "This thread is not a medical record.")
    if selectors.is_sensitive(thread):
        raise fail("not_found", "This is the sensitive part of a record: use the record's own id.")
    return thread


def resource_kind(resource_type: str) -> fhir.FhirType:
    kind = fhir.TYPES.get(resource_type)
    if kind is None:
        raise fail(
            "not_found",
            f"A record keeps no {resource_type[:64]} resources; it keeps "
            + ", ".join(fhir.TYPES)
            + ".",
        )
    return kind


def entry_found(thread: Thread, kind: fhir.FhirType, rid: str) -> selectors.Entry:
    found = selectors.entry_get(thread, kind.name, rid)
    if found is None:
        raise fail("not_found", f"The record has no {kind.label} with this id.")
    return found


def _flag(request: Request, name: str) -> bool | None:
    """A yes/no query parameter: None when absent."""
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise fail("invalid", f"{name}: true or false.")


def resource_url(request: Request, thread: Thread, entry: selectors.Entry) -> str:
    path = reverse("api:medical_fhir_resource", args=[thread.id, entry.type, entry.fhir_id])
    return request.build_absolute_uri(path)


def stored(request: Request, thread: Thread, entry: selectors.Entry, code: int = 200) -> Response:
    """The resource as the record keeps it; on creation with its address (``Location``)."""
    response = Response(bundles.resource_json(entry), status=code)
    if code == status.HTTP_201_CREATED:
        response["Location"] = resource_url(request, thread, entry)
    return response


def _body(request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise fail("invalid", "A FHIR resource is a JSON object.")
    return request.data


# -- resources -----------------------------------------------------------------------------------

SEARCH_PARAMS = [
    OpenApiParameter("_count", int, description="At most this many entries (default 100)."),
    OpenApiParameter(
        "code",
        str,
        description="Only entries with this code: ``system|code`` or the code alone.",
    ),
    OpenApiParameter(
        "date",
        str,
        many=True,
        description="The entry's clinical date, with a FHIR prefix: ``ge2024-01-01``, "
        "``le2024-12-31`` (gt, lt, eq too; repeat it for a range).",
    ),
    OpenApiParameter("status", str, description="Only entries in this status (final, active…)."),
]
SENSITIVE_PARAM = OpenApiParameter(
    "sensitive",
    bool,
    description="The patient only: keep a new entry in the record's sensitive part.",
)


class FhirTypeApi(FhirView):
    @extend_schema(
        parameters=SEARCH_PARAMS,
        responses={(200, FHIR_JSON): OpenApiTypes.OBJECT},
        operation_id="medical_fhir_search",
        description="A record's entries of one type as a FHIR searchset Bundle, newest first "
        "(with the sensitive part's when this node holds it). " + TYPE_HELP,
    )
    def get(self, request: Request, thread_id: str, resource_type: str) -> Response:
        thread = record_thread(thread_id)
        kind = resource_kind(resource_type)
        try:
            bundle = searchset(
                selectors.entries(thread, kind.name),
                request.query_params,
                self_url=request.build_absolute_uri(),
                url_of=lambda entry: resource_url(request, thread, entry),
            )
        except SearchInvalid as exc:
            raise fail("invalid", str(exc)) from exc
        return Response(bundle)

    @extend_schema(
        request=FHIR_OBJECT,
        parameters=[SENSITIVE_PARAM],
        responses={(201, FHIR_JSON): OpenApiTypes.OBJECT},
        operation_id="medical_fhir_create",
        description="Add a resource to the record: checked as FHIR R4B, stored as checked "
        "(answered with its id and ``Location``). A provider adds the types its grant allows.",
    )
    def post(self, request: Request, thread_id: str, resource_type: str) -> Response:
        thread = record_thread(thread_id)
        kind = resource_kind(resource_type)
        data = _body(request)
        if data.get("id") and selectors.entry_get(thread, kind.name, str(data["id"])):
            raise fail(
                "conflict", f"The record has a {kind.label} with this id already: PUT changes it."
            )
        entry = call(
            services.resource_write,
            thread,
            kind.name,
            data,
            sensitive=True if _flag(request, "sensitive") else None,
        )
        return stored(request, thread, entry, status.HTTP_201_CREATED)


class FhirResourceApi(FhirView):
    @extend_schema(
        responses={(200, FHIR_JSON): OpenApiTypes.OBJECT},
        operation_id="medical_fhir_read",
        description="One resource as the record keeps it.",
    )
    def get(self, request: Request, thread_id: str, resource_type: str, rid: str) -> Response:
        thread = record_thread(thread_id)
        return stored(request, thread, entry_found(thread, resource_kind(resource_type), rid))

    @extend_schema(
        request=FHIR_OBJECT,
        parameters=[SENSITIVE_PARAM],
        responses={(200, FHIR_JSON): OpenApiTypes.OBJECT, (201, FHIR_JSON): OpenApiTypes.OBJECT},
        operation_id="medical_fhir_update",
        description="Change the resource with this id (200), or add it with this id (201). "
        "The body's id, if any, must be the address's.",
    )
    def put(self, request: Request, thread_id: str, resource_type: str, rid: str) -> Response:
        thread = record_thread(thread_id)
        kind = resource_kind(resource_type)
        data = _body(request)
        if "id" in data and data["id"] != rid:
            raise fail("invalid", "The resource's id is not the one in its address.")
        existed = selectors.entry_get(thread, kind.name, rid) is not None
        entry = call(
            services.resource_write,
            thread,
            kind.name,
            data,
            fhir_id=rid,
            sensitive=_flag(request, "sensitive"),
        )
        code = status.HTTP_200_OK if existed else status.HTTP_201_CREATED
        return stored(request, thread, entry, code)

    @extend_schema(
        responses={204: None},
        operation_id="medical_fhir_delete",
        description="Delete an entry (the patient only; its versions stay in the record's log).",
    )
    def delete(self, request: Request, thread_id: str, resource_type: str, rid: str) -> Response:
        thread = record_thread(thread_id)
        kind = resource_kind(resource_type)
        entry_found(thread, kind, rid)
        call(services.resource_delete, thread, kind.name, rid)
        return Response(status=status.HTTP_204_NO_CONTENT)


class FhirHistoryApi(APIView):
    @extend_schema(
        responses=HistoryOutput,
        operation_id="medical_fhir_history",
        description="Who wrote an entry and when: each version, oldest first.",
    )
    def get(self, request: Request, thread_id: str, resource_type: str, rid: str) -> Response:
        thread = record_thread(thread_id)
        kind = resource_kind(resource_type)
        versions = selectors.provenance(thread, kind.name, rid)
        if not versions:
            entry_found(thread, kind, rid)
        history = {"resourceType": kind.name, "id": rid, "versions": versions}
        return Response(HistoryOutput(history).data)


# -- Bundles and the summary ---------------------------------------------------------------------


class FhirBundleApi(FhirView):
    parser_classes = [JSONParser, FhirJsonParser, MultiPartParser]

    @extend_schema(
        request={**FHIR_OBJECT, "multipart/form-data": OpenApiTypes.OBJECT},
        parameters=[SENSITIVE_PARAM],
        responses=ImportReportOutput,
        operation_id="medical_fhir_import",
        description="Import a FHIR Bundle (collection, transaction, batch, document or "
        "searchset), as JSON or as a file (multipart, field ``bundle``, for large ones): every "
        "valid entry is written, every other one reported with its place and the reason.",
    )
    def post(self, request: Request, thread_id: str) -> Response:
        thread = record_thread(thread_id)
        upload = request.FILES.get("bundle") if hasattr(request, "FILES") else None
        data = upload.read() if upload is not None else request.data
        if not upload and not isinstance(data, dict):
            raise fail("invalid", "Send a FHIR Bundle: a JSON object, or a file named bundle.")
        sensitive = bool(_flag(request, "sensitive"))
        report = call(bundles.bundle_import, thread, data, sensitive=sensitive)
        return Response(ImportReportOutput(report).data)


class FhirExportApi(FhirView):
    @extend_schema(
        responses={(200, FHIR_JSON): OpenApiTypes.OBJECT},
        operation_id="medical_fhir_export",
        description="The whole record (and its sensitive part when this node holds it) as a "
        "FHIR Bundle of type collection, each resource as stored. Also at ``fhir/$export``, "
        "FHIR's name for it.",
    )
    def get(self, request: Request, thread_id: str) -> Response:
        thread = record_thread(thread_id)
        response = Response(call(bundles.bundle_export, thread))
        response["Content-Disposition"] = 'attachment; filename="record.json"'
        return response


@extend_schema(exclude=True)  # the schema cannot spell "$": it lists fhir/export
class FhirDollarExportApi(FhirExportApi):
    pass


class IpsApi(FhirView):
    @extend_schema(
        responses={(200, FHIR_JSON): OpenApiTypes.OBJECT},
        operation_id="medical_ips",
        description="The International Patient Summary: a FHIR document Bundle of the record's "
        "patient, allergies, medications and problems.",
    )
    def get(self, request: Request, thread_id: str) -> Response:
        return Response(call(ips.ips_bundle, record_thread(thread_id)))


# -- grants --------------------------------------------------------------------------------------


class GrantsApi(APIView):
    @extend_schema(
        responses=GrantOutput(many=True),
        operation_id="medical_grants_list",
        description="Who holds the record besides the patient, and what each may read and write.",
    )
    def get(self, request: Request, thread_id: str) -> Response:
        grants = selectors.grants(record_thread(thread_id))
        return Response(GrantOutput(grants, many=True).data)


class GrantApi(APIView):
    @extend_schema(
        request=GrantInput,
        responses=GrantOutput,
        operation_id="medical_grant_set",
        description="Change what a member may read and write, and when (the patient only).",
    )
    def put(self, request: Request, thread_id: str, member: str) -> Response:
        thread = record_thread(thread_id)
        data = GrantInput(data=request.data)
        data.is_valid(raise_exception=True)
        member = member.lower()
        call(sharing.grant_set, thread, member_id=member, **data.validated_data)
        grant = selectors.grant_of(thread, member)
        if grant is None:
            raise fail("not_found", "This person does not hold the record.")
        return Response(GrantOutput(grant).data)

    @extend_schema(
        responses={204: OpenApiResponse(description="Access revoked.")},
        operation_id="medical_grant_revoke",
        description="Revoke a member's access: their grant ends and they are removed from the "
        "record (and its sensitive part) with new keys. What their devices hold stays there.",
    )
    def delete(self, request: Request, thread_id: str, member: str) -> Response:
        thread = record_thread(thread_id)
        call(sharing.access_revoke, thread, member_id=member.lower())
        return Response(status=status.HTTP_204_NO_CONTENT)


# -- invites' grants (registered by the app: invite_terms.register) ----------------------------


def medical_invite_terms(
    *,
    thread: Thread,
    role: str,
    expires_in: timedelta,
    uses: int | None,
    label: str,
    terms: dict[str, Any] | None,
) -> CreatedInvite:
    """An invite to a record made through the invites API: for one person, with the grant
    written for them once they redeem it (``sharing.share_invite``)."""
    if terms is None:
        raise ThreadServiceError(
            "invalid",
            "An invite to a medical record says what the newcomer may read and write: give a "
            'grant, like {"read": ["Observation"], "write": []}.',
        )
    if uses != 1:
        raise ThreadServiceError(
            "invalid", "An invite to a medical record is for one person (uses: 1)."
        )
    data = InviteGrantInput(data=terms)
    if not data.is_valid():
        raise ThreadServiceError("invalid", "The grant: " + errors_in_words(data.errors))
    grant = data.validated_data
    return sharing.share_invite(
        thread,
        role=role,
        label=grant.get("label") or label,
        read=grant["read"],
        write=grant["write"],
        start=grant.get("start"),
        end=grant.get("end"),
        expires_in=expires_in,
        sensitive=grant["sensitive"],
    )
