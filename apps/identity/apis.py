"""The achievement API (owner only, like the rest): a thread's claims, attestations,
retractions, challenges, judgements, witnesses' standing, settings, and a verified claim's
credential. Errors are ``{"error": code, "detail": words}``: 400 for bad input (a serializer's
fields or the service's words), 403 when this member may not, 404 for an unknown thread, claim
or challenge, 409 when the app is not enabled, the thing is already done, or a rule refuses."""

from __future__ import annotations

import contextlib
from typing import Any
from urllib.parse import urlencode

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.models import Thread
from apps.core.threads.app_kit import AppFailed, api_call, api_thread
from apps.core.threads.services import ThreadServiceError
from apps.identity import selectors, services
from apps.identity.serializers import (
    AttestationInput,
    ChallengeInput,
    ChallengeOutput,
    ClaimInput,
    ClaimOutput,
    CredentialOutput,
    JudgementInput,
    RetractionInput,
    SettingsInput,
    SettingsOutput,
    WitnessOutput,
    challenge_body,
    claim_body,
    settings_body,
    witness_body,
)


def _failed(code: str, words: str) -> AppFailed:
    return AppFailed(ThreadServiceError(code, words))


def _thread(thread_id: str) -> Thread:
    thread = api_thread(thread_id)
    if not selectors.enabled(thread):
        raise _failed(
            "not_enabled",
            "achievements are not enabled in this thread: an owner or admin enables the "
            "identity app first",
        )
    return thread


def _valid(serializer_class: type, data: Any) -> dict[str, Any]:
    if not hasattr(data, "get"):
        raise _failed("invalid", "the request body is a JSON object")
    found = serializer_class(data=data)
    found.is_valid(raise_exception=True)
    return dict(found.validated_data)


def _claim(thread: Thread, claim_id: str) -> dict[str, Any]:
    found = selectors.claim(thread, claim_id)
    if found is None:
        raise _failed("not_found", "there is no such claim in this thread")
    return claim_body(found)


def _challenge(thread: Thread, challenge_id: str) -> dict[str, Any]:
    found = selectors.challenge(thread, challenge_id)
    if found is None:
        raise _failed("not_found", "there is no such challenge in this thread")
    return challenge_body(found)


def _outcomes(thread: Thread) -> None:
    """A side's outcome the worker has not written yet (cheap when there is none)."""
    with contextlib.suppress(ThreadServiceError):
        services.outcomes_due(thread=thread)


class ClaimsApi(APIView):
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    @extend_schema(
        responses=ClaimOutput(many=True),
        operation_id="identity_claims_list",
        parameters=[
            OpenApiParameter("subject", str, description="Only this member's claims (hex)."),
            OpenApiParameter(
                "before", str, description="A claim's id: the page of claims older than it."
            ),
            OpenApiParameter(
                "after", str, description="A claim's id: the page of claims newer than it."
            ),
            OpenApiParameter(
                "limit",
                int,
                description=f"At most this many (default {selectors.PAGE}, "
                f"at most {selectors.MAX_PAGE}).",
            ),
        ],
        description="A page of the thread's claims, newest first. The `Link` header names the "
        'older page (`rel="next"`) and the newer one (`rel="prev"`) when there are more; '
        "the filters are kept in them.",
    )
    def get(self, request: Request, thread_id: str) -> Response:
        """The thread's claims, newest first, each with its state (verified, pending,
        overturned, withdrawn) as every node derives it; a page at a time."""
        thread = _thread(thread_id)
        asked = request.query_params
        subject = asked.get("subject") or None
        if subject is not None and not _is_member_hex(subject):
            raise _failed("invalid", "subject is a member key (64 hex digits)")
        limit = _limit(asked.get("limit"))
        before, after = asked.get("before") or None, asked.get("after") or None
        try:
            page = selectors.claim_page(
                thread, before=before, after=after, subject=subject, limit=limit
            )
        except ValueError:
            raise _failed("invalid", "before and after are a claim's id (32 hex digits)") from None
        response = Response([claim_body(c) for c in page.claims])
        keep = {"subject": subject, "limit": asked.get("limit")}
        links = [
            f'<{_page_url(request, keep, "before", page.older)}>; rel="next"' if page.older else "",
            f'<{_page_url(request, keep, "after", page.newer)}>; rel="prev"' if page.newer else "",
        ]
        if any(links):
            response["Link"] = ", ".join(link for link in links if link)
        return response

    @extend_schema(
        request={"application/json": ClaimInput, "multipart/form-data": ClaimInput},
        responses={201: ClaimOutput},
        operation_id="identity_claims_make",
        description="Claim an achievement of a kind the thread keeps. Evidence files go as "
        "multipart `files` (photos, videos or PDFs).",
    )
    def post(self, request: Request, thread_id: str) -> Response:
        thread = _thread(thread_id)
        data = dict(request.data.items()) if hasattr(request.data, "items") else request.data
        if hasattr(request.data, "getlist"):
            data["files"] = request.FILES.getlist("files")
        values = _valid(ClaimInput, data)
        made = api_call(services.claim_make, thread=thread, **values)
        return Response(_claim(thread, made), status=status.HTTP_201_CREATED)


def _limit(value: str | None) -> int:
    if value is None or value == "":
        return selectors.PAGE
    try:
        limit = int(value)
    except ValueError:
        raise _failed("invalid", "limit is a whole number") from None
    if not 1 <= limit <= selectors.MAX_PAGE:
        raise _failed("invalid", f"limit is between 1 and {selectors.MAX_PAGE}")
    return limit


def _page_url(request: Request, keep: dict[str, str | None], cursor: str, claim: str) -> str:
    """The list's URL for another page, with the filters asked for."""
    params = {k: v for k, v in keep.items() if v}
    params[cursor] = claim
    return request.build_absolute_uri(request.path + "?" + urlencode(params))


def _is_member_hex(value: str) -> bool:
    try:
        return len(bytes.fromhex(value)) == 32
    except ValueError:
        return False


class ClaimApi(APIView):
    @extend_schema(responses=ClaimOutput, operation_id="identity_claims_get")
    def get(self, request: Request, thread_id: str, claim_id: str) -> Response:
        """A claim with every attestation, who counts, and its challenges."""
        return Response(_claim(_thread(thread_id), claim_id))

    @extend_schema(
        request=None,
        responses=ClaimOutput,
        operation_id="identity_claims_withdraw",
        description="Withdraw your claim (it stays, marked withdrawn).",
    )
    def delete(self, request: Request, thread_id: str, claim_id: str) -> Response:
        thread = _thread(thread_id)
        api_call(services.claim_withdraw, thread=thread, claim=claim_id)
        return Response(_claim(thread, claim_id))


class AttestationsApi(APIView):
    @extend_schema(
        request=AttestationInput,
        responses={201: ClaimOutput},
        operation_id="identity_claims_attest",
        description="Give your word on another member's claim: witnessed or disputed, signed "
        "by your member key. Once per claim; retract it to take it back.",
    )
    def post(self, request: Request, thread_id: str, claim_id: str) -> Response:
        thread = _thread(thread_id)
        values = _valid(AttestationInput, request.data)
        api_call(services.attest, thread=thread, claim=claim_id, **values)
        return Response(_claim(thread, claim_id), status=status.HTTP_201_CREATED)


class RetractionApi(APIView):
    @extend_schema(
        request=RetractionInput,
        responses={201: ClaimOutput},
        operation_id="identity_claims_retract",
        description="Take back your attestation (final; it counts against your standing).",
    )
    def post(self, request: Request, thread_id: str, claim_id: str) -> Response:
        thread = _thread(thread_id)
        values = _valid(RetractionInput, request.data)
        api_call(services.retract, thread=thread, claim=claim_id, **values)
        return Response(_claim(thread, claim_id), status=status.HTTP_201_CREATED)


class CredentialApi(APIView):
    @extend_schema(
        responses=CredentialOutput,
        operation_id="identity_claims_credential",
        description="Your verified claim as an Open Badges 3.0 credential (vc+jwt, EdDSA by "
        "your member key, did:key) with the witnesses' endorsements.",
    )
    def get(self, request: Request, thread_id: str, claim_id: str) -> Response:
        from apps.identity import export

        thread = _thread(thread_id)
        return Response(api_call(export.claim_credential, thread=thread, claim=claim_id))


class ChallengesApi(APIView):
    @extend_schema(responses=ChallengeOutput(many=True), operation_id="identity_challenges_list")
    def get(self, request: Request, thread_id: str) -> Response:
        """The thread's challenges and duels, newest first."""
        thread = _thread(thread_id)
        _outcomes(thread)
        return Response([challenge_body(c) for c in selectors.challenges(thread)])

    @extend_schema(
        request=ChallengeInput,
        responses={201: ChallengeOutput},
        operation_id="identity_challenges_make",
        description="Challenge a verified claim (`claim`), challenge back a won challenge "
        "(`against`), or challenge a member to a duel (`defendant`). Decided by `judges` the "
        "defendant accepts, or by a `poll` of the thread (voting must be enabled).",
    )
    def post(self, request: Request, thread_id: str) -> Response:
        thread = _thread(thread_id)
        values = _valid(ChallengeInput, request.data)
        made = api_call(services.challenge_make, thread=thread, **values)
        return Response(_challenge(thread, made), status=status.HTTP_201_CREATED)


class ChallengeApi(APIView):
    @extend_schema(responses=ChallengeOutput, operation_id="identity_challenges_get")
    def get(self, request: Request, thread_id: str, challenge_id: str) -> Response:
        thread = _thread(thread_id)
        _outcomes(thread)
        return Response(_challenge(thread, challenge_id))


class AcceptApi(APIView):
    @extend_schema(
        request=None,
        responses={201: ChallengeOutput},
        operation_id="identity_challenges_accept",
        description="Accept a challenge made to you (and so its judges).",
    )
    def post(self, request: Request, thread_id: str, challenge_id: str) -> Response:
        thread = _thread(thread_id)
        api_call(services.challenge_accept, thread=thread, challenge=challenge_id)
        return Response(_challenge(thread, challenge_id), status=status.HTTP_201_CREATED)


class JudgementsApi(APIView):
    @extend_schema(
        request=JudgementInput,
        responses={201: ChallengeOutput},
        operation_id="identity_challenges_judge",
        description="A judge names the winner; the outcome is written once a majority agrees.",
    )
    def post(self, request: Request, thread_id: str, challenge_id: str) -> Response:
        thread = _thread(thread_id)
        values = _valid(JudgementInput, request.data)
        api_call(services.judge, thread=thread, challenge=challenge_id, **values)
        # Someone else's outcome may come first: the challenge shows it.
        with contextlib.suppress(ThreadServiceError):
            services.outcome_record(thread=thread, challenge=challenge_id)
        return Response(_challenge(thread, challenge_id), status=status.HTTP_201_CREATED)


class WitnessesApi(APIView):
    @extend_schema(responses=WitnessOutput(many=True), operation_id="identity_witnesses_list")
    def get(self, request: Request, thread_id: str) -> Response:
        """Every witness's standing with its inputs: each retracted attestation, and each
        attestation on a claim a challenge overturned. Flagged witnesses do not count."""
        return Response([witness_body(w) for w in selectors.witnesses(_thread(thread_id))])


class WitnessApi(APIView):
    @extend_schema(responses=WitnessOutput, operation_id="identity_witnesses_get")
    def get(self, request: Request, thread_id: str, member: str) -> Response:
        found = selectors.witness(_thread(thread_id), member)
        if found is None:
            raise _failed("not_found", "that is not a member key")
        return Response(witness_body(found))


def _settings(thread: Thread) -> dict[str, Any]:
    return settings_body(
        selectors.settings(thread), selectors.kinds(thread), selectors.authorities(thread)
    )


class SettingsApi(APIView):
    @extend_schema(responses=SettingsOutput, operation_id="identity_settings_get")
    def get(self, request: Request, thread_id: str) -> Response:
        """Witnesses needed (k), the flag threshold, the kinds and the trusted authorities."""
        return Response(_settings(_thread(thread_id)))

    @extend_schema(
        request=SettingsInput,
        responses=SettingsOutput,
        operation_id="identity_settings_set",
        description="Owner and admins. Each part given is set: `witnesses` and `flag_after`; "
        "`kinds` (the kinds in use: missing ones are retired, new ones added); `authorities` "
        "(the trusted members per kind: missing ones are revoked for good). Each change is "
        "its own write; the first refused stops the rest and says why.",
    )
    def put(self, request: Request, thread_id: str) -> Response:
        thread = _thread(thread_id)
        values = _valid(SettingsInput, request.data)
        current = selectors.settings(thread)
        if "witnesses" in values or "flag_after" in values:
            k = values.get("witnesses", current.witnesses)
            flag = values.get("flag_after", current.flag_after)
            if (k, flag) != (current.witnesses, current.flag_after):
                api_call(services.settings_set, thread=thread, witnesses=k, flag_after=flag)
        if "kinds" in values:
            _kinds_set(thread, values["kinds"])
        if "authorities" in values:
            _authorities_set(thread, values["authorities"])
        return Response(_settings(thread))


def _kinds_set(thread: Thread, wanted: list[dict[str, str]]) -> None:
    active = {k.slug for k in selectors.kinds(thread) if not k.retired}
    slugs = [str(k["slug"]).strip().lower() for k in wanted]
    for kind, slug in zip(wanted, slugs, strict=True):
        if slug not in active:
            api_call(services.kind_add, thread=thread, slug=slug, label=kind.get("label", ""))
    for slug in sorted(active - set(slugs)):
        api_call(services.kind_retire, thread=thread, slug=slug)


def _authorities_set(thread: Thread, wanted: list[dict[str, str]]) -> None:
    trusted = {(a.kind, a.member) for a in selectors.authorities(thread) if not a.revoked}
    pairs = [(str(a["kind"]).strip().lower(), str(a["member"]).strip().lower()) for a in wanted]
    for kind, member in pairs:
        if (kind, member) not in trusted:
            api_call(services.authority_add, thread=thread, kind=kind, member=member)
    for kind, member in sorted(trusted - set(pairs)):
        api_call(services.authority_revoke, thread=thread, kind=kind, member=member)
