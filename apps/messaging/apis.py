"""The messaging API (owner only): a conversation's messages, newest page first; send, edit and
delete one's own. Errors are ``{"error": code, "detail": message}`` as everywhere in the API."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.models import Thread
from apps.core.threads.apis import ServiceFailed, _call
from apps.core.threads.services import ThreadServiceError
from apps.messaging import attachments, selectors, services
from apps.messaging.models import MAX_TEXT


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


def _view(thread: Thread, message_id: str) -> dict:
    found = selectors.message(thread, message_id)
    if found is None:
        raise ServiceFailed(ThreadServiceError("not_found", "no such message"))
    return MessageOutput(found).data


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
        return Response(MessageOutput(page, many=True).data)

    @extend_schema(
        request=MessageInput, responses={201: MessageOutput}, operation_id="messages_send"
    )
    def post(self, request: Request, thread_id: str) -> Response:
        thread = _conversation(thread_id)
        payload = request.data
        if hasattr(payload, "getlist"):  # multipart: files repeat under one name
            payload = {**payload.dict(), "files": request.FILES.getlist("files")}
        data = MessageInput(data=payload)
        data.is_valid(raise_exception=True)
        message = _call(services.message_send, thread=thread, **data.validated_data)
        return Response(_view(thread, message.id.hex), status=status.HTTP_201_CREATED)


class MessageDetailApi(APIView):
    @extend_schema(request=MessageEditInput, responses=MessageOutput, operation_id="messages_edit")
    def patch(self, request: Request, thread_id: str, message_id: str) -> Response:
        thread = _conversation(thread_id)
        data = MessageEditInput(data=request.data)
        data.is_valid(raise_exception=True)
        message = _call(
            services.message_edit,
            thread=thread,
            message_id=message_id,
            text=data.validated_data["text"],
        )
        return Response(_view(thread, message.id.hex))

    @extend_schema(responses={204: None}, operation_id="messages_delete")
    def delete(self, request: Request, thread_id: str, message_id: str) -> Response:
        _call(services.message_delete, thread=_conversation(thread_id), message_id=message_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ReceiptInput(serializers.Serializer):
    up_to = serializers.CharField(
        max_length=128, help_text="The cursor of the newest message read."
    )


class ReceiptOutput(serializers.Serializer):
    written = serializers.BooleanField(help_text="False when it was not newer than before.")


class ReceiptApi(APIView):
    @extend_schema(request=ReceiptInput, responses=ReceiptOutput, operation_id="messages_read")
    def put(self, request: Request, thread_id: str) -> Response:
        """Say how far this member has read (receipts only move forward)."""
        thread = _conversation(thread_id)
        data = ReceiptInput(data=request.data)
        data.is_valid(raise_exception=True)
        written = _call(services.receipt_mark, thread=thread, up_to=data.validated_data["up_to"])
        return Response({"written": written})


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
