"""The timeline API (owner only, like the rest): a timeline's posts, a post with its replies,
writing, editing and deleting one's own, reactions, a post's history, and the timeline as an
Atom feed for its members. A new timeline is ``POST /api/v1/threads/ {"name", "app":
"timeline"}`` (the core's). Errors are ``{"error": code, "detail": message}``: 404 for an
unknown timeline or post, 400 for bad input, 403 when the timeline's policy does not let this
member do it (a follower posting, someone else's post), 409 for a deleted post."""

from __future__ import annotations

import uuid
from typing import Any

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.models import Thread
from apps.core.threads.app_kit import AppFailed, api_call
from apps.core.threads.services import ThreadServiceError
from apps.timeline import selectors, services
from apps.timeline.models import MAX_LONG, MAX_TITLE, REF
from apps.timeline.post import POST_KINDS, PostView

_call = api_call


def _timeline(thread_id: str) -> Thread:
    thread = selectors.thread_find(thread_id)
    if thread is None:
        raise AppFailed(ThreadServiceError("not_found", "no such timeline here"))
    return thread


class PostFileOutput(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    mime = serializers.CharField()
    size = serializers.IntegerField()
    damaged = serializers.CharField(allow_null=True)


class PostReplyOutput(serializers.Serializer):
    id = serializers.CharField()
    post = serializers.CharField(help_text="The post whose conversation it is in.")
    reply_to = serializers.CharField(allow_null=True, help_text="The reply it answers, if any.")
    author = serializers.CharField(help_text="The author's member key (from the signed op).")
    author_name = serializers.CharField()
    text = serializers.CharField()
    html = serializers.CharField()
    created_at = serializers.DateTimeField()
    edited_at = serializers.DateTimeField(allow_null=True)
    deleted = serializers.BooleanField()
    mine = serializers.BooleanField()
    reactions = serializers.DictField(child=serializers.IntegerField())


class PostOutput(serializers.Serializer):
    id = serializers.CharField()
    key = serializers.CharField(help_text="<timeline id>/<post id>: what a repost names.")
    author = serializers.CharField(help_text="The author's member key (from the signed op).")
    author_name = serializers.CharField()
    kind = serializers.ChoiceField(list(POST_KINDS))
    text = serializers.CharField(help_text="As written (Markdown).")
    html = serializers.CharField(help_text="Rendered and sanitized.")
    title = serializers.CharField()
    slug = serializers.CharField()
    created_at = serializers.DateTimeField()
    edited_at = serializers.DateTimeField(allow_null=True)
    repost_of = serializers.CharField(allow_null=True)
    quote_of = serializers.CharField(allow_null=True)
    quoted_text = serializers.CharField()
    quoted_title = serializers.CharField()
    quoted_author = serializers.CharField()
    public = serializers.BooleanField()
    deleted = serializers.BooleanField()
    tags = serializers.ListField(child=serializers.CharField())
    mine = serializers.BooleanField()
    replies = serializers.IntegerField(help_text="How many replies it has.")
    reactions = serializers.DictField(child=serializers.IntegerField())
    cursor = serializers.CharField(help_text="Pass as ?before= for older posts.")
    attachments = PostFileOutput(many=True)


class PostDetailOutput(PostOutput):
    conversation = PostReplyOutput(many=True, help_text="Its replies, oldest first.")


class PostVersionOutput(serializers.Serializer):
    at = serializers.DateTimeField()
    text = serializers.CharField()
    title = serializers.CharField()
    deleted = serializers.BooleanField()


class PostInput(serializers.Serializer):
    text = serializers.CharField(max_length=MAX_LONG, required=False, allow_blank=True, default="")
    title = serializers.CharField(
        max_length=MAX_TITLE, required=False, allow_blank=True, default="",
        help_text="A title makes a long post (a blog post).",
    )  # fmt: skip
    reply_to = serializers.CharField(
        required=False, allow_null=True, default=None,
        help_text="A post or reply id: this is then a reply in that post's conversation.",
    )  # fmt: skip
    repost_of = serializers.CharField(max_length=REF, required=False, allow_null=True, default=None)
    quote_of = serializers.CharField(max_length=REF, required=False, allow_null=True, default=None)
    public = serializers.BooleanField(required=False, default=False)
    files = serializers.ListField(child=serializers.FileField(), required=False, default=list)
    cover = serializers.BooleanField(
        required=False, default=False, help_text="The first file (an image) is the cover."
    )


class EditInput(serializers.Serializer):
    text = serializers.CharField(max_length=MAX_LONG, allow_blank=True)
    title = serializers.CharField(max_length=MAX_TITLE, required=False)
    public = serializers.BooleanField(required=False)


def _post_body(thread: Thread, post: PostView) -> dict[str, Any]:
    files = selectors.attachments(thread, [post.id]).get(post.id, [])
    body = dict(PostOutput({**post.__dict__, "key": post.key, "attachments": files}).data)
    return body


def _detail(thread: Thread, post_id: str) -> dict[str, Any]:
    post = selectors.post(thread, post_id)
    if post is None:
        raise AppFailed(ThreadServiceError("not_found", "no such post in this timeline"))
    body = _post_body(thread, post)
    body["conversation"] = PostReplyOutput(selectors.replies(thread, post.id), many=True).data
    return body


def _post_of_reply(thread: Thread, reply_id: str) -> str | None:
    from apps.core.threads.context import thread_context
    from apps.timeline.models import Reply

    try:
        pk = uuid.UUID(hex=str(reply_id))
    except ValueError:
        return None  # not an id at all: no such reply
    with thread_context(thread.thread):
        found = Reply.objects.filter(pk=pk).values_list("post", flat=True).first()
    return found.hex if found else None


def _is_post(thread: Thread, pk: str) -> bool:
    return selectors.post(thread, pk) is not None


class PostsApi(APIView):
    parser_classes = [JSONParser, MultiPartParser]

    @extend_schema(
        parameters=[OpenApiParameter("before", str, description="A post's cursor: older posts.")],
        responses=PostOutput(many=True),
        operation_id="posts_list",
    )
    def get(self, request: Request, thread_id: str) -> Response:
        """The timeline's posts, newest first, a page at a time."""
        thread = _timeline(thread_id)
        before = request.query_params.get("before")
        try:
            found = selectors.posts(thread, before=before)
        except ValueError:
            raise AppFailed(
                ThreadServiceError("invalid", "before is not a post's cursor")
            ) from None
        return Response([_post_body(thread, post) for post in found])

    @extend_schema(
        request={"application/json": PostInput, "multipart/form-data": PostInput},
        responses={201: PostDetailOutput},
        operation_id="posts_create",
        description="Post (owner and co-authors), or reply (``reply_to``: followers too). A "
        "title makes a long post; ``repost_of``/``quote_of`` name a post of a timeline this "
        "node follows (``<timeline id>/<post id>``); ``public`` puts it on the owner's blog.",
    )
    def post(self, request: Request, thread_id: str) -> Response:
        thread = _timeline(thread_id)
        payload = request.data
        if hasattr(payload, "getlist"):  # multipart: files repeat under one name
            payload = {**payload.dict(), "files": request.FILES.getlist("files")}
        data = PostInput(data=payload)
        data.is_valid(raise_exception=True)
        given = data.validated_data
        if given["reply_to"]:
            target = str(given["reply_to"])
            post_id, reply_to = (target, None) if _is_post(thread, target) else (None, target)
            if post_id is None:
                post_id = _post_of_reply(thread, target)
                if post_id is None:
                    raise AppFailed(ThreadServiceError("not_found", "no such post or reply here"))
            _call(
                services.reply_create,
                thread=thread,
                post_id=post_id,
                text_=given["text"],
                reply_to=reply_to,
            )
            return Response(_detail(thread, post_id), status=status.HTTP_201_CREATED)
        post = _call(
            services.post_create,
            thread=thread,
            text_=given["text"],
            title=given["title"],
            repost_of=given["repost_of"],
            quote_of=given["quote_of"],
            public=given["public"],
            files=given["files"],
            cover=given["cover"],
        )
        return Response(_detail(thread, post.id.hex), status=status.HTTP_201_CREATED)


class PostApi(APIView):
    @extend_schema(responses=PostDetailOutput, operation_id="posts_get")
    def get(self, request: Request, thread_id: str, post_id: str) -> Response:
        """A post with its conversation."""
        return Response(_detail(_timeline(thread_id), post_id))

    @extend_schema(
        request=EditInput,
        responses=PostDetailOutput,
        operation_id="posts_edit",
        description="Edit one's own post or reply (its history keeps every version).",
    )
    def patch(self, request: Request, thread_id: str, post_id: str) -> Response:
        thread = _timeline(thread_id)
        data = EditInput(data=request.data)
        data.is_valid(raise_exception=True)
        given = data.validated_data
        if _is_post(thread, post_id):
            _call(
                services.post_edit,
                thread=thread,
                post_id=post_id,
                text_=given["text"],
                title=given.get("title"),
                public=given.get("public"),
            )
            return Response(_detail(thread, post_id))
        parent = _post_of_reply(thread, post_id)
        if parent is None:
            raise AppFailed(ThreadServiceError("not_found", "no such post or reply here"))
        _call(services.reply_edit, thread=thread, reply_id=post_id, text_=given["text"])
        return Response(_detail(thread, parent))

    @extend_schema(
        request=None,
        responses={204: None},
        operation_id="posts_delete",
        description="Delete one's own post or reply: a tombstone every node applies; a "
        "post's files are freed on every node.",
    )
    def delete(self, request: Request, thread_id: str, post_id: str) -> Response:
        thread = _timeline(thread_id)
        if _is_post(thread, post_id):
            _call(services.post_delete, thread=thread, post_id=post_id)
        elif _post_of_reply(thread, post_id) is not None:
            _call(services.reply_delete, thread=thread, reply_id=post_id)
        else:
            raise AppFailed(ThreadServiceError("not_found", "no such post or reply here"))
        return Response(status=status.HTTP_204_NO_CONTENT)


class HistoryApi(APIView):
    @extend_schema(responses=PostVersionOutput(many=True), operation_id="posts_history")
    def get(self, request: Request, thread_id: str, post_id: str) -> Response:
        """Every version of a post, oldest first, read back from its author's signed ops."""
        thread = _timeline(thread_id)
        if selectors.post(thread, post_id) is None:
            raise AppFailed(ThreadServiceError("not_found", "no such post in this timeline"))
        return Response(PostVersionOutput(selectors.history(thread, post_id), many=True).data)


class ReactionApi(APIView):
    @extend_schema(request=None, responses={204: None}, operation_id="posts_react")
    def put(self, request: Request, thread_id: str, post_id: str, emoji: str) -> Response:
        """Put this member's reaction on a post or reply (once per emoji)."""
        _call(services.reaction_set, thread=_timeline(thread_id), target=post_id, emoji=emoji)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={204: None}, operation_id="posts_unreact")
    def delete(self, request: Request, thread_id: str, post_id: str, emoji: str) -> Response:
        thread = _timeline(thread_id)
        _call(services.reaction_set, thread=thread, target=post_id, emoji=emoji, on=False)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AtomApi(APIView):
    @extend_schema(responses={(200, "application/atom+xml"): str}, operation_id="timeline_atom")
    def get(self, request: Request, thread_id: str) -> HttpResponse:
        """The timeline's newest posts as an Atom feed (RFC 4287), for its members' readers."""
        from apps.timeline import blog

        thread = _timeline(thread_id)
        posts = [p for p in selectors.posts(thread, limit=50) if not p.deleted]
        base = request.build_absolute_uri(f"/node/threads/{thread.id}/timeline/")
        body = blog.atom_feed(posts, base_url=base, title=thread.name, author=thread.name)
        return HttpResponse(body, content_type="application/atom+xml; charset=utf-8")
