"""The market search API (owner only, like the rest): search through every known index and this
node's own, the indexes this node asks, and this node's own index setting with its link.

Errors are ``{"error": code, "detail": words}``: 400 for a malformed query or link (what to fix),
404 for an index this node does not ask, 409 for a link asked of a node that runs no index.
Prices are integers in minor units of their currency (cents), as the listings hold them.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.threads.app_kit import AppFailed, api_call
from apps.core.threads.services import ThreadServiceError
from apps.market import search_service
from apps.market.models import MAX_NAME, KnownIndex
from apps.market.search_query import Hit, Query, QueryError, haversine_km, query_parse


class HitOutput(serializers.Serializer):
    listing = serializers.CharField(help_text="The listing's id (hex).")
    shop = serializers.CharField(help_text="The shop's thread id (hex).")
    shop_name = serializers.CharField()
    link = serializers.CharField(
        help_text="The shop's customer link, to follow it ('' if the index gave none)."
    )
    title = serializers.CharField()
    summary = serializers.CharField()
    price = serializers.IntegerField(help_text="Minor units of the currency (cents).")
    currency = serializers.CharField()
    category = serializers.CharField()
    place = serializers.CharField()
    lat = serializers.FloatField(allow_null=True)
    lon = serializers.FloatField(allow_null=True)
    distance_km = serializers.FloatField(
        allow_null=True, help_text="From the place searched near, when one was given."
    )
    updated_ms = serializers.IntegerField(help_text="When the listing was last written (ms).")
    following = serializers.BooleanField(help_text="This node is in the shop already.")


class SourceOutput(serializers.Serializer):
    name = serializers.CharField()
    peer = serializers.CharField(help_text="The index's peer id; '' for this node.")
    ok = serializers.BooleanField()
    detail = serializers.CharField(help_text="Why it did not answer; '' when it did.")


class SearchOutput(serializers.Serializer):
    hits = HitOutput(many=True)
    total = serializers.IntegerField(help_text="At least this many listings match.")
    page = serializers.IntegerField()
    page_size = serializers.IntegerField()
    sources = SourceOutput(many=True)


class KnownIndexOutput(serializers.Serializer):
    peer = serializers.CharField()
    name = serializers.CharField()
    addrs = serializers.ListField(child=serializers.CharField())
    added_at = serializers.DateTimeField()
    last_ok_at = serializers.DateTimeField(allow_null=True)
    last_error = serializers.CharField()


class IndexLinkInput(serializers.Serializer):
    link = serializers.CharField(max_length=4_000, help_text="An index's sereus:index/ link.")


class IndexPeerInput(serializers.Serializer):
    peer = serializers.CharField(max_length=100, help_text="The index's peer id.")


class IndexSettingInput(serializers.Serializer):
    enabled = serializers.BooleanField(help_text="Run a market index on this node.")
    name = serializers.CharField(max_length=MAX_NAME, required=False, allow_blank=True, default="")


class IndexSettingOutput(serializers.Serializer):
    enabled = serializers.BooleanField()
    name = serializers.CharField()
    link = serializers.CharField(
        allow_null=True, help_text="The link naming this index (null while it is off)."
    )


def hit_body(hit: Hit, q: Query, following: set[str]) -> dict[str, Any]:
    distance = None
    if q.near is not None and hit.lat is not None and hit.lon is not None:
        distance = round(haversine_km(q.near, (hit.lat, hit.lon)), 3)
    return {
        "listing": hit.listing,
        "shop": hit.shop,
        "shop_name": hit.shop_name,
        "link": hit.link,
        "title": hit.title,
        "summary": hit.summary,
        "price": hit.price,
        "currency": hit.currency,
        "category": hit.category,
        "place": hit.place,
        "lat": hit.lat,
        "lon": hit.lon,
        "distance_km": distance,
        "updated_ms": hit.updated_ms,
        "following": hit.shop in following,
    }


def _following() -> set[str]:
    from apps.core.models import Thread
    from apps.market.policy import SHOP_APP

    return set(
        Thread.objects.filter(app=SHOP_APP, state=Thread.State.ACTIVE).values_list("id", flat=True)
    )


_PARAMS = [
    OpenApiParameter("q", str, description="Words to find (title, summary, tags, place)."),
    OpenApiParameter("category", str),
    OpenApiParameter("min_price", str, description='In the currency\'s units ("12.50").'),
    OpenApiParameter("max_price", str, description="A price range needs a currency."),
    OpenApiParameter("currency", str, description="ISO 4217, like EUR."),
    OpenApiParameter("near", str, description='A place: "lat,lon" ("48.85,2.35").'),
    OpenApiParameter("radius_km", str, description="Only listings this close to near."),
    OpenApiParameter(
        "sort", str, enum=["relevance", "price_asc", "price_desc", "newest", "distance"]
    ),
    OpenApiParameter("page", int, description="1 to 20."),
    OpenApiParameter("page_size", int, description="1 to 50 (20 by default)."),
]


class SearchApi(APIView):
    @extend_schema(
        parameters=_PARAMS,
        responses=SearchOutput,
        operation_id="market_search",
        description="Listings from every market index this node knows and from the shops it "
        "is in, merged (one hit per shop and listing). An index that did not answer is listed "
        "in sources with the reason; the others still count.",
    )
    def get(self, request: Request) -> Response:
        try:
            q = query_parse(request.query_params)
        except QueryError as exc:
            raise AppFailed(ThreadServiceError("invalid", str(exc))) from exc
        result = search_service.search(q)
        following = _following()
        return Response(
            {
                "hits": [hit_body(hit, q, following) for hit in result.hits],
                "total": result.total,
                "page": q.page,
                "page_size": q.page_size,
                "sources": [
                    {"name": s.name, "peer": s.peer, "ok": s.ok, "detail": s.words}
                    for s in result.sources
                ],
            }
        )


def known_body(row: KnownIndex) -> dict[str, Any]:
    return {
        "peer": row.peer,
        "name": row.name,
        "addrs": search_service.index_addrs(row),
        "added_at": row.added_at,
        "last_ok_at": row.last_ok_at,
        "last_error": row.last_error,
    }


class IndexesApi(APIView):
    @extend_schema(responses=KnownIndexOutput(many=True), operation_id="market_indexes_list")
    def get(self, request: Request) -> Response:
        """The market indexes this node asks when it searches."""
        return Response([known_body(row) for row in search_service.known_indexes()])

    @extend_schema(
        request=IndexLinkInput,
        responses={201: KnownIndexOutput},
        operation_id="market_indexes_add",
        description="Ask the index a link names from now on (its node gave you the link).",
    )
    def post(self, request: Request) -> Response:
        data = IndexLinkInput(data=request.data)
        data.is_valid(raise_exception=True)
        row = api_call(search_service.index_add, link=data.validated_data["link"])
        return Response(known_body(row), status=status.HTTP_201_CREATED)

    @extend_schema(
        request=IndexPeerInput,
        parameters=[OpenApiParameter("peer", str, description="Or in the body.")],
        responses={204: None},
        operation_id="market_indexes_remove",
        description="Stop asking an index.",
    )
    def delete(self, request: Request) -> Response:
        peer = request.query_params.get("peer") or (
            request.data.get("peer") if hasattr(request.data, "get") else None
        )
        data = IndexPeerInput(data={"peer": peer})
        data.is_valid(raise_exception=True)
        api_call(search_service.index_remove, peer=data.validated_data["peer"])
        return Response(status=status.HTTP_204_NO_CONTENT)


def setting_body() -> dict[str, Any]:
    row = search_service.index_settings()
    link = None
    if row.enabled:
        try:
            link = search_service.index_link()
        except ThreadServiceError:
            link = None  # no address known yet: the node's p2p host is not up
    return {"enabled": row.enabled, "name": row.name, "link": link}


class IndexSettingApi(APIView):
    @extend_schema(responses=IndexSettingOutput, operation_id="market_index_get")
    def get(self, request: Request) -> Response:
        """Whether this node runs a market index, under what name, and the link naming it."""
        return Response(setting_body())

    @extend_schema(
        request=IndexSettingInput, responses=IndexSettingOutput, operation_id="market_index_put"
    )
    def put(self, request: Request) -> Response:
        """Run (or stop running) a market index: it indexes the shops that admit it (their
        owners give it a link with the indexer role) and answers other nodes' searches."""
        data = IndexSettingInput(data=request.data)
        data.is_valid(raise_exception=True)
        api_call(
            search_service.index_enable,
            enabled=data.validated_data["enabled"],
            name=data.validated_data["name"],
        )
        return Response(setting_body())
