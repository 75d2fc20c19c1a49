"""The threads API (owner only): threads, members, invites, this node's writes and what became
of each, and the op log for debugging.

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
    extend_schema_field,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api_output import represent
from apps.core.models import Thread, ThreadInvite, ThreadMember
from apps.core.threads import invite_terms, selectors, services, writes
from apps.core.threads.invite_roles import invite_role_default
from apps.core.threads.names import thread_names
from apps.core.threads.qr import qr_svg
from apps.core.threads.registry import thread_database

STATUS_OF = {
    "invalid": 400,
    "malformed": 400,
    "version": 400,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "expired": 410,
    "revoked": 410,
    "used": 409,
    "unknown": 404,
    "unavailable": 503,
    "unreachable": 503,
    "interrupted": 503,
}


class ServiceFailed(APIException):
    def __init__(self, error: services.ThreadServiceError) -> None:
        super().__init__(detail=str(error), code=error.code)
        self.status_code = STATUS_OF.get(error.code, 400)
        self.default_code = error.code


def _thread(thread_id: str) -> Thread:
    thread = selectors.thread_find(thread_id)
    if thread is None:
        raise ServiceFailed(services.ThreadServiceError("not_found", "no such thread here"))
    return thread


def _call(fn, **kwargs):
    try:
        return fn(**kwargs)
    except services.ThreadServiceError as exc:
        raise ServiceFailed(exc) from exc


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


# -- this node's writes ------------------------------------------------------------------------

WRITES_TAKEN = (
    "A write answered with success (201, 200) is signed and stored on this node and accepted by "
    "it; it is not yet accepted by the thread. The thread's other replicas check it again when "
    "it reaches them, and a change this node had not seen yet (for example this member's removal "
    "while the node was cut off) can still make every replica refuse it; a refused write takes "
    "effect nowhere. The answer's `write` names the write's op: follow its state at "
    "`/api/v1/threads/{thread_id}/writes/{op}/`."
)
STATE_HELP = (
    "accepted: this node accepts it (other replicas decide alike once they have what it has); "
    "refused: the thread does not accept it, see reason; opaque: this node holds no key to "
    "check it; waiting: not decided yet."
)
LIST_CHANGES = 20  # per write in a list; the write's own endpoint gives them all


class WriteRefOutput(serializers.Serializer):
    """The write a request made, in the answers of the endpoints that write."""

    op = serializers.CharField(help_text="The write's op hash (hex): its id under writes/.")
    state = serializers.ChoiceField(writes.STATES, help_text=STATE_HELP)


def write_ref(write: writes.Write | None) -> dict | None:
    return None if write is None else represent(WriteRefOutput, write)


def _column_value(value):
    return value.hex() if isinstance(value, bytes) else value


class RowWriteOutput(serializers.Serializer):
    table = serializers.CharField()
    row = serializers.CharField(help_text="The row's primary key (bytes as hex).")
    action = serializers.ChoiceField(["insert", "update", "delete"])
    values = serializers.SerializerMethodField(
        help_text="The columns written (bytes as hex); empty for a delete."
    )

    def get_values(self, change: writes.RowWrite) -> dict:
        return {column: _column_value(v) for column, v in change.values.items()}


class WriteOutput(serializers.Serializer):
    op = serializers.CharField(help_text="The op's hash, hex: the write's id.")
    seq = serializers.IntegerField(help_text="Its place in this node's chain: newer is higher.")
    at = serializers.DateTimeField(help_text="When it was written (the op's clock stamp).")
    state = serializers.ChoiceField(writes.STATES, help_text=STATE_HELP)
    reason = serializers.CharField(
        help_text="Why it was refused (or cannot be checked), as the thread core says it."
    )
    reason_code = serializers.CharField(
        source="refusal",
        help_text="The kind of refusal: " + ", ".join(writes.REFUSAL_TEXT) + "; empty unless "
        "refused.",
    )
    reason_text = serializers.CharField(help_text="The refusal in words for a person.")
    change_count = serializers.SerializerMethodField(
        help_text="How many rows it changed; null when this node cannot open it."
    )
    changes = serializers.SerializerMethodField(
        help_text=f"The rows it changed (in a list, the first {LIST_CHANGES}); null when this "
        "node cannot open it (its master secret is locked)."
    )

    def get_change_count(self, write: writes.Write) -> int | None:
        return None if write.changes is None else len(write.changes)

    @extend_schema_field(RowWriteOutput(many=True, allow_null=True))
    def get_changes(self, write: writes.Write) -> list | None:
        if write.changes is None:
            return None
        limit = self.context.get("changes")
        return RowWriteOutput(write.changes[:limit], many=True).data


def _writes_database(thread: Thread):
    if thread.state == Thread.State.DAMAGED:
        raise ServiceFailed(
            services.ThreadServiceError("unavailable", f"thread {thread} is damaged")
        )
    if thread.state not in (Thread.State.ACTIVE, Thread.State.REMOVED, Thread.State.LEFT):
        raise ServiceFailed(
            services.ThreadServiceError("not_found", "this node has not written in this thread")
        )
    return thread_database(thread.thread)


def _whole(value: str | None, name: str, default: int | None) -> int | None:
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError:
        raise ServiceFailed(
            services.ThreadServiceError("invalid", f"{name}: a whole number")
        ) from None


class WriteListApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "state", str, enum=list(writes.STATES), description="Only writes in this state."
            ),
            OpenApiParameter("before", int, description="A page's `next`: older writes."),
            OpenApiParameter(
                "limit",
                int,
                description=f"At most this many (default {writes.PAGE}, "
                f"at most {writes.MAX_PAGE}).",
            ),
        ],
        responses=inline_serializer(
            "WritePage",
            {
                "writes": WriteOutput(many=True),
                "next": serializers.IntegerField(
                    allow_null=True, help_text="Pass as ?before= for the next (older) page."
                ),
            },
        ),
        operation_id="thread_writes_list",
        description="This node's own writes in the thread, newest first, each with its state: "
        "whether the thread accepted it, and if not, why and what it said. " + WRITES_TAKEN,
    )
    def get(self, request: Request, thread_id: str) -> Response:
        database = _writes_database(_thread(thread_id))
        state = request.query_params.get("state") or None
        if state is not None and state not in writes.STATES:
            raise ServiceFailed(
                services.ThreadServiceError("invalid", f"state: one of {', '.join(writes.STATES)}")
            )
        before = _whole(request.query_params.get("before"), "before", None)
        limit = _whole(request.query_params.get("limit"), "limit", writes.PAGE)
        page = writes.writes_list(database, state=state, before=before, limit=limit or 1)
        items = WriteOutput(page.writes, many=True, context={"changes": LIST_CHANGES}).data
        return Response({"writes": items, "next": page.next})


class WriteDetailApi(APIView):
    @extend_schema(
        responses=WriteOutput,
        operation_id="thread_writes_retrieve",
        description="One write of this node, by its op hash: its state and every row it "
        "changed. " + WRITES_TAKEN,
    )
    def get(self, request: Request, thread_id: str, op: str) -> Response:
        database = _writes_database(_thread(thread_id))
        write = writes.write_find(database, op) if len(op) == 64 else None
        if write is None:
            raise ServiceFailed(
                services.ThreadServiceError("not_found", "no write of this node with this op")
            )
        return Response(WriteOutput(write).data)
