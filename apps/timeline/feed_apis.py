"""The feed API (owner only, like the rest): a page of a named feed, the named feeds' rules, and
feed recipes out and in. Errors are ``{"error": code, "detail": message}``: 404 for an unknown
feed, 400 in plain words for rules, recipes and page links that do not hold up (nothing is
stored then)."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.timeline import feed, recipes
from apps.timeline.apis import PostOutput
from apps.timeline.ranking import RulesError
from apps.timeline.text import slugify


class FeedFailed(APIException):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(detail=message, code=code)
        self.status_code = status.HTTP_404_NOT_FOUND if code == "not_found" else 400
        self.default_code = code


class FeedPostOutput(PostOutput):
    thread = serializers.CharField(help_text="The timeline's id.")
    thread_name = serializers.CharField(help_text="The timeline's name on this node.")
    attachments = None  # a feed lists posts; a post's own URL gives its files


class FeedPageOutput(serializers.Serializer):
    feed = serializers.CharField(help_text="The feed's name.")
    posts = FeedPostOutput(many=True)
    before = serializers.CharField(
        allow_null=True, help_text="Pass as ?before= for the next page; null: nothing older."
    )


class RulesOutput(serializers.Serializer):
    """One named feed (``recipes.rules_to_data``); every field but ``name`` may be left out."""

    name = serializers.CharField()
    order = serializers.ChoiceField(["ranked", "newest"])
    timelines = serializers.ListField(child=serializers.CharField(), help_text="[]: all.")
    timeline_weights = serializers.DictField(child=serializers.FloatField())
    author_weights = serializers.DictField(
        child=serializers.FloatField(), help_text="Member key -> weight, -5 to 5."
    )
    keywords = serializers.DictField(child=serializers.FloatField())
    tags = serializers.DictField(child=serializers.FloatField())
    mute_words = serializers.ListField(child=serializers.CharField())
    hide_replies_to_unfollowed = serializers.BooleanField()
    dedupe_reposts = serializers.BooleanField()
    half_life_hours = serializers.FloatField()


class RulesInput(RulesOutput):
    """One named feed as given: only ``name`` is required (the rest take their defaults)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, found in self.fields.items():
            found.required = name == "name"


class RecipeInput(serializers.Serializer):
    file = serializers.FileField(help_text="A recipe file (at most 64 KiB).")
    name = serializers.CharField(required=False, help_text="The new feed's name (else the file's).")


_WHEN = serializers.DateTimeField()  # the schema's own formatting of times
_TEXTS = (
    "id", "author", "author_name", "kind", "text", "html", "title", "slug", "quoted_text",
    "quoted_title", "quoted_author", "cursor", "thread",
)  # fmt: skip


def _post_body(post: Any, names: dict[str, str]) -> dict[str, Any]:
    """``FeedPostOutput`` of a post, built directly: a serializer per post cost more than the
    rest of a feed page (the test checks the two agree)."""
    body: dict[str, Any] = {name: str(getattr(post, name)) for name in _TEXTS}
    body.update(
        key=str(post.key),
        thread_name=str(names.get(post.thread, "")),
        created_at=_WHEN.to_representation(post.created_at),
        edited_at=_WHEN.to_representation(post.edited_at) if post.edited_at else None,
        repost_of=str(post.repost_of) if post.repost_of is not None else None,
        quote_of=str(post.quote_of) if post.quote_of is not None else None,
        public=bool(post.public),
        deleted=bool(post.deleted),
        tags=[str(tag) for tag in post.tags],
        mine=bool(post.mine),
        replies=int(post.replies),
        reactions={str(k): int(v) for k, v in post.reactions.items()},
    )
    return body


def _rules(name: str) -> Any:
    try:
        return feed.feed_rules(name)
    except feed.FeedError as exc:
        raise FeedFailed(exc.code, str(exc)) from None


class FeedApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("feed", str, description="The feed's name (default: the first)."),
            OpenApiParameter("before", str, description="The page link of the page before."),
            OpenApiParameter("limit", int, description="Posts a page, 1 to 100 (30)."),
        ],
        responses=FeedPageOutput,
        operation_id="feed_list",
        description="The posts of every timeline this node follows (and its own), merged and "
        "ranked by the named feed's rules on this node. Pages: pass the answer's `before`.",
    )
    def get(self, request: Request) -> Response:
        name = request.query_params.get("feed") or feed.feeds()[0].name
        try:
            limit = int(request.query_params.get("limit", feed.PAGE))
        except ValueError:
            raise FeedFailed("invalid", "The number of posts a page must be a number.") from None
        if not 1 <= limit <= feed.MAX_LIMIT:
            raise FeedFailed("invalid", f"A page holds 1 to {feed.MAX_LIMIT} posts.")
        try:
            page = feed.feed_page(name, before=request.query_params.get("before"), limit=limit)
        except feed.FeedError as exc:
            raise FeedFailed(exc.code, str(exc)) from None
        return Response(
            {
                "feed": _rules(name).name,
                "posts": [_post_body(p, page.names) for p in page.posts],
                "before": page.before,
            }
        )


class RulesApi(APIView):
    parser_classes = [JSONParser]

    @extend_schema(responses=RulesOutput(many=True), operation_id="feed_rules_get")
    def get(self, request: Request) -> Response:
        """This node's named feeds, in order (the first is the feed's default)."""
        return Response(recipes.feeds_to_data(feed.feeds()))

    @extend_schema(
        request=RulesInput(many=True),
        responses=RulesOutput(many=True),
        operation_id="feed_rules_put",
        description="Replace the named feeds: 1 to 20, each with its own name. Refused as a "
        "whole, in words, if any rule does not hold up.",
    )
    def put(self, request: Request) -> Response:
        try:
            saved = feed.feeds_save(recipes.feeds_from_data(request.data))
        except RulesError as exc:
            raise FeedFailed("invalid", str(exc)) from None
        return Response(recipes.feeds_to_data(saved))


class RecipeExportApi(APIView):
    @extend_schema(
        responses={(200, "application/json"): bytes},
        operation_id="feed_recipe_export",
        description="The feed as a recipe file to share. It leaves out the timelines and "
        "people it names: those are this node's follows.",
    )
    def get(self, request: Request, name: str) -> HttpResponse:
        try:
            raw = recipes.recipe_export(_rules(name))
        except RulesError as exc:
            raise FeedFailed("invalid", str(exc)) from None
        response = HttpResponse(raw, content_type="application/json; charset=utf-8")
        filename = f"{slugify(name) or 'feed'}.sereus-feed.json"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response


class RecipeImportApi(APIView):
    parser_classes = [MultiPartParser, JSONParser]

    @extend_schema(
        request={"multipart/form-data": RecipeInput},
        responses={201: RulesOutput},
        operation_id="feed_recipe_import",
        description="Add the feed a recipe file describes (named `name` if given) after the "
        "others. Anything that is not a recipe is refused in words, and nothing is stored.",
    )
    def post(self, request: Request) -> Response:
        upload = request.FILES.get("file")
        if upload is None:
            raise FeedFailed("invalid", "Choose a feed recipe file to upload.")
        if upload.size is not None and upload.size > recipes.RECIPE_LIMIT:
            raise FeedFailed("invalid", "This file is too big to be a feed recipe.")
        name = request.data.get("name") or None
        current = feed.feeds()
        try:
            new = recipes.recipe_import(upload.read(recipes.RECIPE_LIMIT + 1), name)
            if any(f.name.casefold() == new.name.casefold() for f in current):
                raise RulesError(
                    f'You have a feed called "{new.name}" already; give this one another name.'
                )
            feed.feeds_save([*current, new])
        except RulesError as exc:
            raise FeedFailed("invalid", str(exc)) from None
        return Response(recipes.rules_to_data(new), status=status.HTTP_201_CREATED)
