"""The tally API (owner only, like the rest). Amounts are given as text or numbers in the tally's
unit ("12.50") and answered both ways: ``amount`` in milli-units (an integer) and
``amount_text``. Balances are this node's party's: positive when the partner owes it.

Errors are ``{"error": code, "detail": message}``: 404 for an unknown tally, chit or invoice,
400 for bad input (an amount that is not one says why), 409 when the tally is not open or a rule
of the tally refuses the chit (a payment past the credit the partner gives says how much is
available)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.models import Thread
from apps.core.threads.app_kit import AppFailed, api_call
from apps.core.threads.services import ThreadServiceError
from apps.ledger import rules, selectors, services
from apps.ledger.amounts import format_amount
from apps.ledger.models import MAX_COMMENT, MAX_MEMO, MAX_REFERENCE, NotSent

AMOUNT_HELP = 'In the tally\'s unit, as text ("12.50") or a number; at most three decimals.'


def _tally(thread_id: str) -> Thread:
    thread = selectors.thread_find(thread_id)
    if thread is None:
        raise AppFailed(ThreadServiceError("not_found", "there is no such tally here"))
    return thread


def _state(thread: Thread) -> selectors.TallyState:
    state = selectors.tally(thread)
    if state is None:
        raise AppFailed(
            ThreadServiceError("not_found", "this tally's contract has not arrived here yet")
        )
    return state


class AmountField(serializers.CharField):
    """An amount as text or a JSON number (kept as text: parsed exactly, never as a float)."""

    def to_internal_value(self, data: Any) -> str:
        if isinstance(data, bool) or not isinstance(data, str | int | float):
            raise serializers.ValidationError('An amount is text like "12.50" or a number.')
        return super().to_internal_value(str(data))


class TallyInput(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    unit = serializers.CharField(
        max_length=40, help_text='"CHIP", an ISO 4217 code ("EUR") or a commodity ("hours").'
    )
    my_limit = AmountField(help_text="The credit you give your partner. " + AMOUNT_HELP)
    partner_limit = AmountField(help_text="The credit you ask of your partner. " + AMOUNT_HELP)
    comment = serializers.CharField(
        max_length=MAX_COMMENT, required=False, allow_blank=True, default=""
    )


class ProposedOutput(serializers.Serializer):
    thread = serializers.CharField(help_text="The tally's thread id.")
    invite = serializers.CharField(help_text="The link your partner joins with (single use).")


class TallyOutput(serializers.Serializer):
    thread = serializers.CharField()
    name = serializers.CharField()
    state = serializers.ChoiceField(selectors.STATES)
    unit = serializers.CharField()
    unit_name = serializers.CharField()
    balance = serializers.IntegerField(help_text="Milli-units; + your partner owes you.")
    balance_text = serializers.CharField()
    my_limit = serializers.IntegerField(help_text="The credit you give (milli-units).")
    partner_limit = serializers.IntegerField(help_text="The credit your partner gives you.")
    available = serializers.IntegerField(help_text="What you can pay now (milli-units).")
    receivable = serializers.IntegerField(help_text="What your partner can pay you now.")
    comment = serializers.CharField()
    role = serializers.ChoiceField(["owner", "partner"])
    i_signed = serializers.BooleanField()
    partner_signed = serializers.BooleanField()
    chits = serializers.IntegerField(help_text="Chits in the chain.")
    held = serializers.IntegerField(help_text="Held for lifts in progress (milli-units).")


def tally_body(state: selectors.TallyState) -> dict[str, Any]:
    return {
        "thread": state.thread.id,
        "name": state.thread.name,
        "state": state.state,
        "unit": state.unit.code,
        "unit_name": state.unit.name,
        "balance": state.balance,
        "balance_text": format_amount(state.balance, state.unit, sign=True),
        "my_limit": state.my_limit,
        "partner_limit": state.partner_limit,
        "available": state.available,
        "receivable": state.receivable,
        "comment": state.comment,
        "role": "owner" if state.i_am_owner else "partner",
        "i_signed": state.i_signed,
        "partner_signed": state.partner_signed,
        "chits": state.tip.seq,
        "held": state.tip.owner_reserved + state.tip.partner_reserved,
    }


NEW_CHIT_KINDS = (rules.PAYMENT, rules.INVOICE, rules.LIMIT)  # what a person writes


class ChitInput(serializers.Serializer):
    kind = serializers.ChoiceField(list(NEW_CHIT_KINDS))
    amount = AmountField(help_text="A payment or request: how much. A limit: the credit you give.")
    memo = serializers.CharField(max_length=MAX_MEMO, required=False, allow_blank=True, default="")
    reference = serializers.CharField(
        max_length=MAX_REFERENCE, required=False, allow_blank=True, default=""
    )
    invoice = serializers.CharField(
        max_length=64, required=False, allow_null=True, default=None,
        help_text="A payment: the id of the request it pays.",
    )  # fmt: skip


class ChitOutput(serializers.Serializer):
    id = serializers.CharField()
    kind = serializers.ChoiceField(list(rules.KINDS))
    amount = serializers.IntegerField(help_text="Milli-units.")
    amount_text = serializers.CharField()
    memo = serializers.CharField()
    reference = serializers.CharField()
    invoice = serializers.CharField(allow_null=True)
    seq = serializers.IntegerField(help_text="Its place in the chain (0: a request).")
    balance = serializers.IntegerField(help_text="Your balance after it (chain chits).")
    mine = serializers.BooleanField()
    at = serializers.DateTimeField(allow_null=True)
    paid_by = serializers.CharField(allow_null=True, help_text="A request: the payment.")
    state = serializers.ChoiceField(
        ["counted", "not_sent"],
        help_text="not_sent: one of yours that a chit of the other side came before, and that "
        "no longer fit when your node sent it again (``reason`` says why).",
    )
    reason = serializers.CharField(allow_blank=True)


def chit_body(chit: selectors.ChitView, state: selectors.TallyState) -> dict[str, Any]:
    return {
        "id": chit.id,
        "kind": chit.kind,
        "amount": chit.amount,
        "amount_text": format_amount(chit.amount, state.unit),
        "memo": chit.memo,
        "reference": chit.reference,
        "invoice": chit.invoice,
        "seq": chit.seq,
        "balance": chit.balance,
        "mine": chit.mine,
        "at": chit.at,
        "paid_by": chit.paid_by,
        "state": "counted",
        "reason": "",
    }


def not_sent_body(row: NotSent, state: selectors.TallyState) -> dict[str, Any]:
    return {
        "id": row.chit, "kind": row.kind, "amount": row.amount,
        "amount_text": format_amount(row.amount, state.unit), "memo": row.memo,
        "reference": "", "invoice": None, "seq": 0, "balance": state.balance, "mine": True,
        "at": row.written_at, "paid_by": None, "state": "not_sent", "reason": row.reason,
    }  # fmt: skip


class TalliesApi(APIView):
    @extend_schema(responses=TallyOutput(many=True), operation_id="tallies_list")
    def get(self, request: Request) -> Response:
        """My tallies (those whose contract is here), by name."""
        found = [selectors.tally(t) for t in selectors.tallies()]
        return Response([tally_body(s) for s in found if s is not None])

    @extend_schema(
        request=TallyInput,
        responses={201: ProposedOutput},
        operation_id="tallies_create",
        description="Propose a tally: you are its owner. Give the invite to your partner; "
        "no chit counts until both of you have signed.",
    )
    def post(self, request: Request) -> Response:
        data = TallyInput(data=request.data)
        data.is_valid(raise_exception=True)
        made = api_call(services.tally_create, **data.validated_data)
        return Response(
            {"thread": made.thread.id, "invite": made.invite}, status=status.HTTP_201_CREATED
        )


class TallyApi(APIView):
    @extend_schema(responses=TallyOutput, operation_id="tally_get")
    def get(self, request: Request, thread_id: str) -> Response:
        """The tally from your side: state, balance, limits, what you can pay and receive."""
        return Response(tally_body(_state(_tally(thread_id))))


class SignApi(APIView):
    @extend_schema(
        request=None,
        responses=TallyOutput,
        operation_id="tally_sign",
        description="Sign the tally's contract (the partner names themself in it too).",
    )
    def post(self, request: Request, thread_id: str) -> Response:
        thread = _tally(thread_id)
        api_call(services.tally_sign, thread=thread)
        return Response(tally_body(_state(thread)))


class CloseApi(APIView):
    @extend_schema(
        request=None,
        responses=TallyOutput,
        operation_id="tally_close",
        description="Ask to close the tally: no new credit; it closes when the balance is zero.",
    )
    def post(self, request: Request, thread_id: str) -> Response:
        thread = _tally(thread_id)
        api_call(services.tally_close, thread=thread)
        return Response(tally_body(_state(thread)))


class ChitsApi(APIView):
    @extend_schema(responses=ChitOutput(many=True), operation_id="chits_list")
    def get(self, request: Request, thread_id: str) -> Response:
        """The chain, newest first, then the payment requests, then yours that did not go
        through (``state`` not_sent, with the reason)."""
        thread = _tally(thread_id)
        state = _state(thread)
        found = [chit_body(c, state) for c in selectors.chits(thread, state)]
        found += [not_sent_body(r, state) for r in selectors.not_sent(thread)]
        return Response(found)

    @extend_schema(
        request=ChitInput,
        responses={201: ChitOutput},
        operation_id="chits_create",
        description="Pay, ask for payment (an invoice) or set the credit you give (a limit).",
    )
    def post(self, request: Request, thread_id: str) -> Response:
        thread = _tally(thread_id)
        data = ChitInput(data=request.data)
        data.is_valid(raise_exception=True)
        made = api_call(services.chit_create, thread=thread, **data.validated_data)
        state = _state(thread)
        (view,) = [c for c in selectors.chits(thread, state) if c.id == made.id.hex]
        return Response(chit_body(view, state), status=status.HTTP_201_CREATED)
