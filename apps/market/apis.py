"""The shop API (owner only, like the rest): my shops, a shop with its score and share links,
listings (read, write, photos), offers and their acceptance, bids (with a maximum the node
bids up to for you), the end of an auction. Amounts are integers in minor units of the
listing's currency (cents for EUR) and answered as text too (``price_text``).

Errors are ``{"error": code, "detail": message}``: 404 for an unknown shop or listing, 400 for
bad input (the detail says what is wrong), 403 when the role may not do it (a customer editing
a listing), 409 when a rule of the shop refuses it (a bid below the increment, after the end)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.models import Thread
from apps.core.threads.app_kit import AppFailed, api_call, api_thread
from apps.core.threads.services import ThreadServiceError
from apps.market import api_bodies as bodies
from apps.market import listing_selectors, proxy, selectors, services, trade_services
from apps.market.api_serializers import (
    BidInput,
    ListingInput,
    ListingOutput,
    ListingPatch,
    OfferInput,
    ShopInput,
    ShopOutput,
    WrittenOutput,
)
from apps.market.policy import CUSTOMER, INDEXER, SHOP_APP


def shop_thread(thread_id: str) -> Thread:
    thread = api_thread(thread_id)
    if thread.app != SHOP_APP:
        raise AppFailed(ThreadServiceError("not_found", "this thread is not a shop"))
    return thread


def _listing(thread: Thread, listing: str) -> listing_selectors.ListingView:
    found = listing_selectors.listing(thread, listing)
    if found is None:
        raise AppFailed(ThreadServiceError("not_found", "there is no such listing in this shop"))
    return found


def _listing_answer(thread: Thread, listing: str, code: int = 200) -> Response:
    return Response(bodies.listing_body(thread, _listing(thread, listing)), status=code)


class ShopsApi(APIView):
    @extend_schema(responses=ShopOutput(many=True), operation_id="shops_list")
    def get(self, request: Request) -> Response:
        """The shops this node runs or staffs."""
        found = [(t, selectors.shop(t)) for t in selectors.my_shops()]
        return Response([bodies.shop_body(t, s) for t, s in found if s is not None])

    @extend_schema(
        request=ShopInput,
        responses={201: ShopOutput},
        operation_id="shops_create",
        description="Open a shop: you own it; its customers' link is in the answer.",
    )
    def post(self, request: Request) -> Response:
        data = ShopInput(data=request.data)
        data.is_valid(raise_exception=True)
        thread = api_call(services.shop_create, **data.validated_data)
        return Response(
            bodies.shop_body(thread, selectors.shop(thread)), status=status.HTTP_201_CREATED
        )


class ShopApi(APIView):
    @extend_schema(responses=ShopOutput, operation_id="shop_get")
    def get(self, request: Request, thread_id: str) -> Response:
        """The shop, the seller's score from the signed ratings, and for its owner the links
        customers and indexes join with."""
        thread = shop_thread(thread_id)
        shop = selectors.shop(thread)
        if shop is None:
            raise AppFailed(
                ThreadServiceError("not_found", "this shop's details have not arrived here yet")
            )
        body = bodies.shop_body(thread, shop)
        if bodies.runs_shop(thread):
            body["links"] = bodies.shop_links(thread, (CUSTOMER, INDEXER))
        return Response(body)


STATUS_PARAM = OpenApiParameter(
    "status", str, description="Only listings in this status (draft, active, sold, withdrawn)."
)


class ListingsApi(APIView):
    @extend_schema(
        responses=ListingOutput(many=True), parameters=[STATUS_PARAM], operation_id="listings_list"
    )
    def get(self, request: Request, thread_id: str) -> Response:
        """The shop's listings (customers see what the shop shows them)."""
        thread = shop_thread(thread_id)
        wanted = request.query_params.get("status") or None
        found = listing_selectors.listings(thread, status=wanted)
        return Response([bodies.listing_body(thread, item, brief=True) for item in found])

    @extend_schema(
        request=ListingInput,
        responses={201: ListingOutput},
        operation_id="listings_create",
        description="List an item (the shop's owner and staff).",
    )
    def post(self, request: Request, thread_id: str) -> Response:
        thread = shop_thread(thread_id)
        data = ListingInput(data=request.data)
        data.is_valid(raise_exception=True)
        made = api_call(services.listing_save, thread=thread, **bodies.listing_fields(data))
        return _listing_answer(thread, made, status.HTTP_201_CREATED)


class ListingApi(APIView):
    @extend_schema(
        responses=ListingOutput,
        operation_id="listing_get",
        description=f"A listing with its photos, the offers you may see and an auction's "
        f"newest {listing_selectors.BIDS_SHOWN} bids, best first (``auction.bids`` counts "
        "them all).",
    )
    def get(self, request: Request, thread_id: str, listing: str) -> Response:
        """A listing with its photos, its auction (best bid, end, its newest bids) and, for the
        shop, its offers; each offer and bid says which of the other side's devices hold it."""
        thread = shop_thread(thread_id)
        return _listing_answer(thread, listing)

    @extend_schema(
        request=ListingPatch,
        responses=ListingOutput,
        operation_id="listing_update",
        description="Change a listing: only what is given. Its terms (price, currency, "
        "quantity, shipping, auction) cannot change once it has a bid.",
    )
    def patch(self, request: Request, thread_id: str, listing: str) -> Response:
        thread = shop_thread(thread_id)
        _listing(thread, listing)
        data = ListingPatch(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        fields = bodies.listing_fields(data)
        api_call(services.listing_save, thread=thread, listing=listing, **fields)
        return _listing_answer(thread, listing)


class PhotoInput(serializers.Serializer):
    photo = serializers.FileField(help_text="An image (JPEG, PNG, WebP, GIF).")


class PhotosApi(APIView):
    parser_classes = [MultiPartParser]

    @extend_schema(
        request={"multipart/form-data": PhotoInput},
        responses={201: ListingOutput},
        operation_id="listing_photos_add",
        description="Add a photo to a listing (multipart, field ``photo``).",
    )
    def post(self, request: Request, thread_id: str, listing: str) -> Response:
        thread = shop_thread(thread_id)
        _listing(thread, listing)
        data = PhotoInput(data=request.data)
        data.is_valid(raise_exception=True)
        api_call(
            services.photo_add, thread=thread, listing=listing, upload=data.validated_data["photo"]
        )
        return _listing_answer(thread, listing, status.HTTP_201_CREATED)


class OffersApi(APIView):
    parser_classes = [JSONParser]

    @extend_schema(
        request=OfferInput,
        responses={201: WrittenOutput},
        operation_id="listing_offers_create",
        description="Offer a price (for the whole quantity, minor units) on a listing.",
    )
    def post(self, request: Request, thread_id: str, listing: str) -> Response:
        thread = shop_thread(thread_id)
        _listing(thread, listing)
        data = OfferInput(data=request.data)
        data.is_valid(raise_exception=True)
        made = api_call(
            trade_services.offer_make, thread=thread, listing=listing, **data.validated_data
        )
        return Response(bodies.written(thread, listing, offer=made), status=201)


class AcceptApi(APIView):
    @extend_schema(
        request=None,
        responses={201: WrittenOutput},
        operation_id="listing_offer_accept",
        description="Accept an offer (the shop): opens the deal with the buyer.",
    )
    def post(self, request: Request, thread_id: str, listing: str, offer: str) -> Response:
        thread = shop_thread(thread_id)
        _listing(thread, listing)
        made = api_call(trade_services.offer_accept, thread=thread, listing=listing, offer=offer)
        return Response(bodies.written(thread, listing, accept=made), status=201)


class BidsApi(APIView):
    parser_classes = [JSONParser]

    @extend_schema(
        request=BidInput,
        responses={201: WrittenOutput},
        operation_id="listing_bids_create",
        description="Bid in a listing's auction. With ``maximum``, your node bids for you, "
        "just enough, up to it, whenever someone outbids you (it never leaves your node); "
        "``amount`` may then be left out. The answer: the bid's id and the listing, with its "
        f"newest {listing_selectors.BIDS_SHOWN} bids (``auction.bids`` counts them all).",
    )
    def post(self, request: Request, thread_id: str, listing: str) -> Response:
        thread = shop_thread(thread_id)
        _listing(thread, listing)
        data = BidInput(data=request.data)
        data.is_valid(raise_exception=True)
        amount, maximum = data.validated_data.get("amount"), data.validated_data.get("maximum")
        made: str | None = None
        if amount is not None:
            made = api_call(trade_services.bid_make, thread=thread, listing=listing, amount=amount)
        if maximum is not None:
            proxied = api_call(proxy.proxy_set, thread=thread, listing=listing, maximum=maximum)
            made = proxied or made
        return Response(bodies.written(thread, listing, bid=made), status=201)


class CloseApi(APIView):
    @extend_schema(
        request=None,
        responses=ListingOutput,
        operation_id="listing_close",
        description="End the auction (the shop, once its end has passed); if someone won, "
        "the deal with the winner opens.",
    )
    def post(self, request: Request, thread_id: str, listing: str) -> Response:
        thread = shop_thread(thread_id)
        _listing(thread, listing)
        api_call(proxy.auction_close, thread=thread, listing=listing)
        bodies.winner_deal(thread, listing)
        return _listing_answer(thread, listing)
