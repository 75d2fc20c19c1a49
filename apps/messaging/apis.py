"""The messaging API (owner only): a conversation's messages, newest page first; send, edit and
delete one's own. Errors are ``{"error": code, "detail": message}`` as everywhere in the API.

Every write answers with the ``write`` it made (its op and state): a success means this node
signed, stored and accepted it, and the thread can still refuse it (``WRITES_TAKEN``)."""

from __future__ import annotations

import threading
import uuid
from typing import Any

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api_output import represent, represent_many
from apps.core.models import Thread
from apps.core.threads import writes
from apps.core.threads.apis import WRITES_TAKEN, ServiceFailed, WriteRefOutput, _call, write_ref
from apps.core.threads.registry import thread_database
from apps.core.threads.services import ThreadServiceError
from apps.messaging import attachments, selectors, services
from apps.messaging.models import MAX_TEXT

MESSAGE, RECEIPT = "messaging_message", "messaging_receipt"


def _conversation(thread_id: str) -> Thread:
    thread = selectors.conversation_find(thread_id)
    if thread is None:
        raise ServiceFailed(ThreadServiceError("not_found", "no such conversation here"))
    return thread


class ReactionOutput(serializers.Serializer):
    emoji = serializers.CharField()
    count = serializers.IntegerField()
    mine = serializers.BooleanField()


class AttachmentOutput(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    mime = serializers.CharField()
    size = serializers.IntegerField()
    complete = serializers.BooleanField(help_text="All its chunks are on this node.")
    percent = serializers.IntegerField(help_text="How much of it is on this node.")
    damaged = serializers.CharField(allow_null=True, help_text="Why it cannot be opened.")


class MessageOutput(serializers.Serializer):
    id = serializers.CharField()
    text = serializers.CharField(help_text="As written (Markdown).")
    html = serializers.CharField(help_text="The text rendered and sanitized.")
    reply_to = serializers.CharField(allow_null=True)
    author = serializers.CharField(help_text="The author's member key, hex (from the signed op).")
    author_name = serializers.CharField()
    mine = serializers.BooleanField()
    created_at = serializers.DateTimeField(help_text="The stamp of the op that posted it.")
    edited_at = serializers.DateTimeField(allow_null=True)
    cursor = serializers.CharField(help_text="Pass as ?before= for the page of older messages.")
    reactions = ReactionOutput(many=True)
    attachments = AttachmentOutput(many=True)
    read_by = serializers.ListField(
        child=serializers.CharField(), help_text="Names of the other members who have read it."
    )


class MessageWrittenOutput(MessageOutput):
    write = WriteRefOutput(
        allow_null=True,
        help_text="The write this request made (or, if it wrote nothing, the "
        "one that made the message as it is).",
    )


class MessageInput(serializers.Serializer):
    text = serializers.CharField(max_length=MAX_TEXT, required=False, allow_blank=True, default="")
    reply_to = serializers.UUIDField(required=False, allow_null=True)
    id = serializers.UUIDField(
        required=False, help_text="Chosen by the client: sending it again does not post twice."
    )
    files = serializers.ListField(
        child=serializers.FileField(),
        required=False,
        max_length=services.MAX_FILES,
        help_text="Attachments (multipart/form-data).",
    )


class MessageEditInput(serializers.Serializer):
    text = serializers.CharField(max_length=MAX_TEXT)


_inputs = threading.local()


def _checked(input_class: type[serializers.Serializer], data: Any) -> dict:
    """``input_class(data=data)``'s validated data, or its ``ValidationError``, as
    ``is_valid(raise_exception=True)`` gives them; from one serializer of each class per thread.

    A serializer deep-copies and binds its declared fields when it is made: 0.35 ms of the
    0.52 ms a message's input took to check. Checking keeps nothing in its fields, only in the
    serializer's own ``initial_data``/``_validated_data``/``_errors``, dropped after each use."""
    made = vars(_inputs)
    serializer = made.get(input_class)
    if serializer is None:
        serializer = made[input_class] = input_class()
    serializer.initial_data = data
    try:
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data
    finally:  # nothing of this request kept (an upload's files) nor seen by the next
        for name in ("initial_data", "_validated_data", "_errors", "_data"):
            vars(serializer).pop(name, None)


def _view(thread: Thread, message_id: str, *, fresh: bool = False) -> dict:
    found = selectors.message(thread, message_id, fresh=fresh)
    if found is None:
        raise ServiceFailed(ThreadServiceError("not_found", "no such message"))
    return represent(MessageOutput, found)


def _head(thread: Thread) -> int:
    """Where this node's chain stands before a request writes (what it writes comes after)."""
    if thread.state != Thread.State.ACTIVE:
        return 0  # nothing will be written (the service refuses, or writes nothing)
    return writes.writes_head(thread_database(thread.thread))


def _written(
    thread: Thread, head: int, table: str, pk: str | None = None, *, first: bool = False
) -> dict | None:
    """The write a request made to the row (see ``writes.write_of_row``), as ``{op, state}``."""
    if thread.state != Thread.State.ACTIVE:
        return None
    database = thread_database(thread.thread)
    return write_ref(writes.write_of_row(database, table=table, pk=pk, after=head, first=first))


class MessageListApi(APIView):
    parser_classes = [JSONParser, MultiPartParser]

    @extend_schema(
        parameters=[
            OpenApiParameter("before", str, description="A message's cursor: older messages."),
            OpenApiParameter("q", str, description="Full-text search (words, the last a prefix)."),
        ],
        responses=MessageOutput(many=True),
        operation_id="messages_list",
    )
    def get(self, request: Request, thread_id: str) -> Response:
        thread = _conversation(thread_id)
        before = request.query_params.get("before") or None
        query = request.query_params.get("q", "").strip()
        if len(query) > 200:
            raise ServiceFailed(ThreadServiceError("invalid", "q: at most 200 characters"))
        try:
            if query:
                page = selectors.search(thread, query)
            else:
                page = selectors.messages(thread, before=before)
        except ValueError:
            raise ServiceFailed(ThreadServiceError("invalid", "before: not a cursor")) from None
        attachments.fetch_missing(thread, page)  # a client listing them will want them
        return Response(represent_many(MessageOutput, page))

    @extend_schema(
        request=MessageInput,
        responses={201: MessageWrittenOutput},
        operation_id="messages_send",
        description="Post a message. " + WRITES_TAKEN,
    )
    def post(self, request: Request, thread_id: str) -> Response:
        thread = _conversation(thread_id)
        payload = request.data
        if hasattr(payload, "getlist"):  # multipart: files repeat under one name
            payload = {**payload.dict(), "files": request.FILES.getlist("files")}
        head = _head(thread)
        fields = _checked(MessageInput, payload)
        message = _call(services.message_send, thread=thread, **fields)
        # Without a client's id it is a new message (a resend with one may return an old one,
        # reactions and all): nothing to read of reactions, nor of attachments without files.
        fresh = fields.get("id") is None and not fields.get("files")
        body = _view(thread, message.id.hex, fresh=fresh)
        body["write"] = _written(thread, head, MESSAGE, message.id.hex, first=True)
        return Response(body, status=status.HTTP_201_CREATED)


class DeletedOutput(serializers.Serializer):
    write = WriteRefOutput(allow_null=True, help_text="The write that deleted it.")


class MessageDetailApi(APIView):
    @extend_schema(
        request=MessageEditInput,
        responses=MessageWrittenOutput,
        operation_id="messages_edit",
        description="Edit one's own message. " + WRITES_TAKEN,
    )
    def patch(self, request: Request, thread_id: str, message_id: str) -> Response:
        thread = _conversation(thread_id)
        text = _checked(MessageEditInput, request.data)["text"]
        head = _head(thread)
        message = _call(services.message_edit, thread=thread, message_id=message_id, text=text)
        body = _view(thread, message.id.hex)
        body["write"] = _written(thread, head, MESSAGE, message.id.hex)
        return Response(body)

    @extend_schema(
        responses={200: DeletedOutput},
        operation_id="messages_delete",
        description="Delete one's own message (and one's reactions to it). " + WRITES_TAKEN,
    )
    def delete(self, request: Request, thread_id: str, message_id: str) -> Response:
        thread = _conversation(thread_id)
        head = _head(thread)
        _call(services.message_delete, thread=thread, message_id=message_id)
        pk = uuid.UUID(message_id).hex  # valid: the service found the message
        return Response({"write": _written(thread, head, MESSAGE, pk)})


class ReceiptInput(serializers.Serializer):
    up_to = serializers.CharField(
        max_length=128, help_text="The cursor of the newest message read."
    )


class ReceiptOutput(serializers.Serializer):
    written = serializers.BooleanField(help_text="False when it was not newer than before.")
    write = WriteRefOutput(allow_null=True, help_text="The write it made; null if none.")


class ReceiptApi(APIView):
    @extend_schema(
        request=ReceiptInput,
        responses=ReceiptOutput,
        operation_id="messages_read",
        description="Say how far this member has read (receipts only move forward). "
        + WRITES_TAKEN,
    )
    def put(self, request: Request, thread_id: str) -> Response:
        thread = _conversation(thread_id)
        up_to = _checked(ReceiptInput, request.data)["up_to"]
        head = _head(thread)
        written = _call(services.receipt_mark, thread=thread, up_to=up_to)
        write = _written(thread, head, RECEIPT) if written else None
        return Response({"written": written, "write": write})


class AttachmentApi(APIView):
    @extend_schema(
        responses={(200, "application/octet-stream"): bytes},
        operation_id="attachments_download",
        description="The file; 503 while its chunks are still being fetched from members.",
    )
    def get(self, request: Request, thread_id: str, attachment_id: str) -> HttpResponse:
        thread = _conversation(thread_id)
        found = selectors.attachment(thread, attachment_id)
        if found is None:
            raise ServiceFailed(ThreadServiceError("not_found", "no such attachment"))
        return attachments.download(thread, found)
