"""The deal API (owner only, like the rest): my deals, a deal as this member sees it (its state,
each step with who wrote it, when, and which of the other side's devices hold it; what I may do
now; the chat and the ratings), its steps, the escrow release, messages, ratings and the
escrow agent's and shipper's invites.

Errors are ``{"error": code, "detail": message}``: 404 for an unknown deal, 400 for bad input,
403 when this member's role may not do it, 409 when the deal's rules refuse it (a buyer marking
it shipped says who may)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.models import Thread
from apps.core.threads.app_kit import AppFailed, api_call, api_thread
from apps.core.threads.services import ThreadServiceError
from apps.market import deal_selectors, deal_services, display
from apps.market.api_serializers import (
    DealInviteInput,
    DealInviteOutput,
    DealMessageInput,
    DealOutput,
    DealRatingInput,
    DealStepInput,
)
from apps.market.auction import money
from apps.market.deal import ESCROW
from apps.market.policy import DEAL_APP


def deal_thread(thread_id: str) -> Thread:
    thread = api_thread(thread_id)
    if thread.app != DEAL_APP:
        raise AppFailed(ThreadServiceError("not_found", "this thread is not a deal"))
    return thread


def _view(thread: Thread) -> deal_selectors.DealView:
    found = deal_selectors.deal(thread)
    if found is None:
        raise AppFailed(
            ThreadServiceError("not_found", "this deal's terms have not arrived here yet")
        )
    return found


def deal_body(view: deal_selectors.DealView, *, full: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "thread": view.id,
        "title": view.title,
        "state": view.state.state,
        "role": view.my_side or "",
        "price": view.price,
        "price_text": money(view.price, view.currency),
        "currency": view.currency,
        "quantity": view.quantity,
        "shop": view.shop,
        "listing": view.listing,
        "actions": list(view.actions),
    }
    if not full:
        return body
    delivery = display.steps_delivery(view.thread, view)
    ids = display.step_ids(view.thread, len(view.steps))
    body["steps"] = [
        {
            "id": pk,
            "step": s.step,
            "by": s.by,
            "role": s.side,
            "at": s.at,
            "fields": s.fields,
            "delivery": display.delivery_body(holders),
        }
        for pk, s, holders in zip(ids, view.steps, delivery, strict=True)
    ]
    body["messages"] = [
        {"id": m.id, "text": m.text, "by": m.by, "mine": m.mine, "at": m.at} for m in view.messages
    ]
    body["ratings"] = [
        {
            "side": r.side, "by": r.by, "mine": r.mine, "overall": r.overall,
            "as_described": r.as_described, "communication": r.communication,
            "shipping": r.shipping, "comment": r.comment,
        }
        for r in view.ratings
    ]  # fmt: skip
    return body


def _answer(thread: Thread, code: int = status.HTTP_200_OK) -> Response:
    return Response(deal_body(_view(thread)), status=code)


class DealsApi(APIView):
    @extend_schema(responses=DealOutput(many=True), operation_id="deals_list")
    def get(self, request: Request) -> Response:
        """My deals, the newest first (without their steps and chat)."""
        return Response([deal_body(v, full=False) for v in deal_selectors.my_deals()])


class DealApi(APIView):
    @extend_schema(responses=DealOutput, operation_id="deal_get")
    def get(self, request: Request, thread_id: str) -> Response:
        """The deal as you see it: state, steps (who, when, delivered), what you may do now,
        the chat and the ratings."""
        return _answer(deal_thread(thread_id))


class StepsApi(APIView):
    parser_classes = [JSONParser]

    @extend_schema(
        request=DealStepInput,
        responses={201: DealOutput},
        operation_id="deal_steps_create",
        description="Take a step: paid {reference?}, shipped {carrier, tracking}, received, "
        "completed, cancelled {reason?}, disputed {reason}, resolved {outcome, split_amount?} "
        "(the escrow agent). Each only by its role, in its order.",
    )
    def post(self, request: Request, thread_id: str) -> Response:
        thread = deal_thread(thread_id)
        data = DealStepInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        step = fields.pop("step")
        fields = {k: v for k, v in fields.items() if v not in ("", None)}
        api_call(deal_services.step_write, thread=thread, step=step, **fields)
        return _answer(thread, status.HTTP_201_CREATED)


class ReleaseApi(APIView):
    @extend_schema(
        request=None,
        responses={201: DealOutput},
        operation_id="deal_release",
        description="Sign the release of the escrowed payment as the deal stands: it counts "
        "with two of the buyer, the seller and the escrow agent.",
    )
    def post(self, request: Request, thread_id: str) -> Response:
        thread = deal_thread(thread_id)
        api_call(deal_services.release_sign, thread=thread)
        return _answer(thread, status.HTTP_201_CREATED)


class MessagesApi(APIView):
    parser_classes = [JSONParser]

    @extend_schema(
        request=DealMessageInput, responses={201: DealOutput}, operation_id="deal_messages_create"
    )
    def post(self, request: Request, thread_id: str) -> Response:
        """Say something in the deal's chat."""
        thread = deal_thread(thread_id)
        data = DealMessageInput(data=request.data)
        data.is_valid(raise_exception=True)
        api_call(deal_services.message_send, thread=thread, text=data.validated_data["text"])
        return _answer(thread, status.HTTP_201_CREATED)


class RatingApi(APIView):
    parser_classes = [JSONParser]

    @extend_schema(
        request=DealRatingInput,
        responses={201: DealOutput},
        operation_id="deal_rating_create",
        description="Rate the other side once the deal is completed or resolved (1 to 5 stars), "
        "once. The buyer's rating is copied into the seller's shop, where anyone following it "
        "can check it.",
    )
    def post(self, request: Request, thread_id: str) -> Response:
        thread = deal_thread(thread_id)
        data = DealRatingInput(data=request.data)
        data.is_valid(raise_exception=True)
        api_call(deal_services.deal_rate, thread=thread, **data.validated_data)
        return _answer(thread, status.HTTP_201_CREATED)


class InvitesApi(APIView):
    parser_classes = [JSONParser]

    @extend_schema(
        request=DealInviteInput,
        responses={201: DealInviteOutput},
        operation_id="deal_invites_create",
        description="A single-use link for the escrow agent or a shipper (who writes only "
        "shipping updates).",
    )
    def post(self, request: Request, thread_id: str) -> Response:
        thread = deal_thread(thread_id)
        _view(thread)
        data = DealInviteInput(data=request.data)
        data.is_valid(raise_exception=True)
        role = data.validated_data["role"]
        make = deal_services.escrow_invite if role == ESCROW else deal_services.shipper_invite
        link = api_call(make, thread=thread)
        return Response({"role": role, "link": link}, status=status.HTTP_201_CREATED)
