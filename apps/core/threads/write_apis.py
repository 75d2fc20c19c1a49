"""The threads API's view of this node's writes (owner only): each write's state (whether the
thread accepted it, and if not why), the rows it changed, and ``WriteRefOutput``, the reference
to a write that the apps' endpoints which write put in their answers."""

from __future__ import annotations

from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api_output import represent
from apps.core.models import Thread
from apps.core.threads import services, writes
from apps.core.threads.api_errors import ServiceFailed, _thread
from apps.core.threads.registry import thread_database

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
