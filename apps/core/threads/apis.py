"""The threads API (owner only): threads, members, invites, this node's writes and what became
of each, and the op log for debugging. This node's writes are ``write_apis``; the refusals'
answers ``api_errors`` (both re-exported here for the apps' APIs that import them from here).

Thin: serializers check the input, services do the work, errors come back as
``{"error": code, "detail": message}`` with the status their code maps to.
"""

from __future__ import annotations

from datetime import timedelta

from django.http import HttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.models import Thread, ThreadInvite, ThreadMember
from apps.core.threads import invite_terms, selectors, services
from apps.core.threads.api_errors import ServiceFailed, _call, _thread
from apps.core.threads.invite_roles import invite_role_default
from apps.core.threads.names import thread_names
from apps.core.threads.qr import qr_svg
from apps.core.threads.write_apis import WRITES_TAKEN as WRITES_TAKEN
from apps.core.threads.write_apis import WriteRefOutput as WriteRefOutput
from apps.core.threads.write_apis import write_ref as write_ref


class ThreadOutput(serializers.Serializer):
    id = serializers.CharField(help_text="The thread id (64 hexadecimal characters).")
    name = serializers.CharField()
    app = serializers.CharField()
    role = serializers.CharField(help_text="This node's role in the thread.")


class ThreadDetailOutput(ThreadOutput):
    member_id = serializers.CharField(help_text="This party's member key in the thread, hex.")
    state = serializers.CharField(
        help_text="active, joining (redeeming its invite was interrupted: this node keeps "
        "trying), not_admitted (the inviter refused), left, removed or damaged."
    )
    problem = serializers.CharField(
        help_text="Why a thread is not active (joining, not admitted, damaged), in plain words."
    )


class ThreadCreateInput(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    app = serializers.RegexField(r"\A[a-z][a-z0-9_]{0,63}\Z", default="default")


class ThreadListApi(APIView):
    @extend_schema(responses=ThreadOutput(many=True), operation_id="threads_list")
    def get(self, request: Request) -> Response:
        threads = services.thread_list().filter(state=Thread.State.ACTIVE)
        return Response(ThreadOutput(threads, many=True).data)

    @extend_schema(
        request=ThreadCreateInput, responses={201: ThreadOutput}, operation_id="threads_create"
    )
    def post(self, request: Request) -> Response:
        data = ThreadCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        thread = _call(services.thread_create, **data.validated_data)
        return Response(ThreadOutput(thread).data, status=status.HTTP_201_CREATED)


class KeyProblemOutput(serializers.Serializer):
    keys_op = serializers.CharField(help_text="The keys op that sealed this node a wrong key.")
    device = serializers.CharField(help_text="The device that signed it (hex).")
    member = serializers.CharField(help_text="The member that device acts for (hex).")


class ThreadDetailWithKeysOutput(ThreadDetailOutput):
    key_problems = KeyProblemOutput(
        many=True,
        help_text="Rotations that gave this node a key that does not match the epoch's check "
        "(a hostile or broken rotator): their ops stay unreadable here until another member "
        "rotates the keys.",
    )


class ThreadDetailApi(APIView):
    @extend_schema(responses=ThreadDetailWithKeysOutput, operation_id="threads_retrieve")
    def get(self, request: Request, thread_id: str) -> Response:
        thread = _thread(thread_id)
        data = dict(ThreadDetailOutput(thread).data)
        problems = selectors.key_problems(thread) if thread.state == Thread.State.ACTIVE else []
        data["key_problems"] = KeyProblemOutput(problems, many=True).data
        return Response(data)


class MemberOutput(serializers.Serializer):
    id = serializers.CharField(source="member_id", help_text="The member key, hex.")
    name = serializers.SerializerMethodField(
        help_text="What this node shows for the member: the name only this node gives it, "
        "else the name it gave itself in the thread, else two words made from its key."
    )
    role = serializers.CharField()
    me = serializers.BooleanField(source="is_me")
    devices = serializers.SerializerMethodField()

    def get_name(self, member: ThreadMember) -> str:
        names = self.context.get("names") or thread_names(member.thread)
        return names[member.member_id]

    def get_devices(self, member: ThreadMember) -> list[str]:
        return [d.device_id for d in member.thread.devices.all() if d.member_id == member.member_id]


class MemberRoleInput(serializers.Serializer):
    role = serializers.RegexField(r"\A[a-z][a-z0-9_]{0,63}\Z")


class MemberListApi(APIView):
    @extend_schema(responses=MemberOutput(many=True), operation_id="thread_members_list")
    def get(self, request: Request, thread_id: str) -> Response:
        thread = _thread(thread_id)
        members = thread.members.select_related("thread").prefetch_related("thread__devices")
        names = thread_names(thread)
        return Response(MemberOutput(members, many=True, context={"names": names}).data)


class MemberDetailApi(APIView):
    @extend_schema(
        request=MemberRoleInput, responses=MemberOutput, operation_id="thread_members_set_role"
    )
    def patch(self, request: Request, thread_id: str, member_id: str) -> Response:
        thread = _thread(thread_id)
        data = MemberRoleInput(data=request.data)
        data.is_valid(raise_exception=True)
        _call(
            services.member_set_role,
            thread=thread,
            member_id=member_id,
            role=data.validated_data["role"],
        )
        member = thread.members.filter(member_id=member_id.lower()).first()
        return Response(MemberOutput(member).data)

    @extend_schema(responses={204: None}, operation_id="thread_members_remove")
    def delete(self, request: Request, thread_id: str, member_id: str) -> Response:
        _call(services.member_remove, thread=_thread(thread_id), member_id=member_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class InviteCreateInput(serializers.Serializer):
    role = serializers.RegexField(
        r"\A[a-z][a-z0-9_]{0,63}\Z",
        required=False,
        help_text="The role the newcomer gets. Left out: the thread's ordinary member role (in "
        "the built-in threads and conversations: writer; for a link for several people, a role "
        "such a link may grant), never admin unless asked for.",
    )
    expires_in = serializers.IntegerField(
        min_value=60,
        max_value=services.MAX_INVITE_DAYS * 86400,
        help_text="Seconds the invite stays valid.",
    )
    uses = serializers.IntegerField(
        min_value=1,
        max_value=services.MAX_INVITE_USES,
        allow_null=True,
        default=1,
        help_text="How many people may join with the link: 1 (the default), up to "
        f"{services.MAX_INVITE_USES}, or null for anyone who has it until it expires or is "
        "revoked. More than 1 only at a role the thread's policy opens to such links (in the "
        "built-in threads: reader; in conversations also writer).",
    )
    label = serializers.CharField(
        max_length=services.MAX_INVITE_LABEL,
        allow_blank=True,
        default="",
        help_text="A note for the thread's members (e.g. shop followers); not in the link.",
    )
    grant = serializers.DictField(
        required=False,
        allow_null=True,
        help_text="Terms the thread's app attaches to the invite, e.g. a medical record's "
        "grant: {read: [...], write: [...], start, end, label}. Refused in a thread whose app "
        "takes none.",
    )


class InviteOutput(serializers.Serializer):
    id = serializers.CharField(source="invite_id")
    role = serializers.CharField()
    expires_at = serializers.DateTimeField()
    status = serializers.CharField(
        help_text="open, revoked, redeemed (a single-use invite was used) or used up."
    )
    uses = serializers.IntegerField(
        allow_null=True, help_text="How many people may join with it; null: no cap."
    )
    used = serializers.IntegerField(help_text="How many people joined with it so far.")
    label = serializers.CharField()
    link = serializers.CharField(help_text="sereus:invite/... to send out of band.")
    qr_svg_url = serializers.SerializerMethodField()

    def get_qr_svg_url(self, invite: ThreadInvite) -> str:
        return reverse("api:thread_invite_qr", args=[invite.thread_id, invite.invite_id])


class InviteCreateApi(APIView):
    @extend_schema(
        responses=InviteOutput(many=True),
        operation_id="thread_invites_list",
        description="The invites this node made in the thread, newest first, with how many "
        "people joined with each.",
    )
    def get(self, request: Request, thread_id: str) -> Response:
        invites = _thread(thread_id).invites.exclude(link="")
        return Response(InviteOutput(invites, many=True).data)

    @extend_schema(
        request=InviteCreateInput,
        responses={201: InviteOutput},
        operation_id="thread_invites_create",
    )
    def post(self, request: Request, thread_id: str) -> Response:
        thread = _thread(thread_id)
        data = InviteCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        uses = data.validated_data["uses"]
        role = data.validated_data.get("role") or invite_role_default(thread, uses=uses)
        if role is None:
            raise ServiceFailed(
                services.ThreadServiceError(
                    "forbidden", "Your role in this thread does not let you invite anyone."
                )
            )
        created = _call(
            invite_terms.invite_with_terms,
            thread=thread,
            role=role,
            expires_in=timedelta(seconds=data.validated_data["expires_in"]),
            uses=uses,
            label=data.validated_data["label"],
            terms=data.validated_data.get("grant"),
        )
        return Response(InviteOutput(created.record).data, status=status.HTTP_201_CREATED)


class InviteDetailApi(APIView):
    @extend_schema(responses={204: None}, operation_id="thread_invites_revoke")
    def delete(self, request: Request, thread_id: str, invite_id: str) -> Response:
        """Revoke an invite: nobody can redeem it any more (a control op in the thread)."""
        _call(services.invite_revoke, thread=_thread(thread_id), invite_id=invite_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class InviteQrApi(APIView):
    @extend_schema(
        responses={(200, "image/svg+xml"): OpenApiTypes.BINARY}, operation_id="thread_invite_qr"
    )
    def get(self, request: Request, thread_id: str, invite_id: str) -> HttpResponse:
        invite = ThreadInvite.objects.filter(
            thread_id=thread_id.lower(), invite_id=invite_id.lower()
        ).first()
        if invite is None or not invite.link:
            raise ServiceFailed(
                services.ThreadServiceError("not_found", "no invite made by this node with this id")
            )
        response = HttpResponse(qr_svg(invite.link), content_type="image/svg+xml")
        response["Cache-Control"] = "no-store"  # it holds the invite secret
        return response


class RedeemInput(serializers.Serializer):
    link = serializers.CharField(max_length=4096)


class InviteRedeemApi(APIView):
    @extend_schema(
        request=RedeemInput,
        responses={201: ThreadOutput, 202: ThreadDetailOutput},
        operation_id="invites_redeem",
        description="Join a thread with an invite link: this node proves the invite secret to a "
        "member listed in the invite, is admitted, and receives the thread's log (201). If the "
        "inviter's answer is lost on the way, the thread is returned in the state `joining` "
        "(202): this node redeems again in the background until it is admitted (`active`) or "
        "refused for good (`not_admitted`, with the reason in `problem`).",
    )
    def post(self, request: Request) -> Response:
        data = RedeemInput(data=request.data)
        data.is_valid(raise_exception=True)
        thread = _call(services.invite_redeem, link=data.validated_data["link"])
        if thread.state == Thread.State.JOINING:
            return Response(ThreadDetailOutput(thread).data, status=status.HTTP_202_ACCEPTED)
        return Response(ThreadOutput(thread).data, status=status.HTTP_201_CREATED)


class OpOutput(serializers.Serializer):
    n = serializers.IntegerField(help_text="Position in this node's log.")
    hash = serializers.CharField()
    device = serializers.CharField()
    seq = serializers.IntegerField()
    kind = serializers.CharField()
    status = serializers.CharField(allow_null=True)
    reason = serializers.CharField(allow_null=True)


class OpLogApi(APIView):
    """The thread's op log, in the order this node admitted it (for debugging)."""

    @extend_schema(
        parameters=[
            OpenApiParameter("after", int, description="Only ops after this log position."),
            OpenApiParameter("limit", int, description="At most this many (default 100)."),
        ],
        responses=inline_serializer(
            "OpLog", {"ops": OpOutput(many=True), "next": serializers.IntegerField()}
        ),
        operation_id="thread_ops_list",
    )
    def get(self, request: Request, thread_id: str) -> Response:
        thread = _thread(thread_id)
        try:
            after = max(0, int(request.query_params.get("after", 0)))
            limit = min(1000, max(1, int(request.query_params.get("limit", 100))))
        except ValueError as exc:
            raise serializers.ValidationError({"after": "a whole number"}) from exc
        logged = selectors.thread_ops(thread.thread, after=after, limit=limit)
        ops = OpOutput(logged, many=True).data
        return Response({"ops": ops, "next": ops[-1]["n"] if ops else after})
