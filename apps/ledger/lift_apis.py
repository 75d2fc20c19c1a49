"""The lift API: start a lift (this node referees it), follow it, and this node's lift settings.
Errors as the rest of the API: 400 for what cannot be lifted (in words), 404 for an unknown lift."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.threads.app_kit import AppFailed
from apps.core.threads.services import ThreadServiceError
from apps.ledger import amounts, lifts
from apps.ledger.apis import AmountField
from apps.ledger.models import Lift


def _failed(error: lifts.LiftError | amounts.AmountError) -> AppFailed:
    return AppFailed(ThreadServiceError("invalid", str(error)))


class LiftInput(serializers.Serializer):
    amount = AmountField(help_text='How much to clear on every tally, as text ("20").')
    route = serializers.ListField(
        child=serializers.CharField(max_length=64),
        required=False,
        allow_null=True,
        default=None,
        help_text="Optional: [the tally where you owe, the tally where you are owed].",
    )


class LiftOutput(serializers.Serializer):
    id = serializers.CharField()
    amount = serializers.IntegerField(help_text="Milli-units.")
    amount_text = serializers.CharField()
    unit = serializers.CharField()
    state = serializers.ChoiceField(Lift.State.values)
    state_text = serializers.CharField()
    reason = serializers.CharField()
    first = serializers.CharField(help_text="The tally it starts in.")
    last = serializers.CharField(help_text="The tally it comes back by.")
    created_at = serializers.DateTimeField()
    decided_at = serializers.DateTimeField(allow_null=True)


class LiftSettingsBody(serializers.Serializer):
    enabled = serializers.BooleanField(help_text="Carry other people's lifts through my tallies.")
    most = AmountField(
        required=False, allow_null=True, default=None, help_text="The most one lift may clear."
    )


def lift_body(lift: Lift) -> dict[str, Any]:
    unit = amounts.unit_parse(lift.unit)
    return {
        "id": lift.id,
        "amount": lift.amount,
        "amount_text": amounts.format_amount(lift.amount, unit),
        "unit": lift.unit,
        "state": lift.state,
        "state_text": Lift.State(lift.state).label,
        "reason": lift.reason,
        "first": lift.first,
        "last": lift.last,
        "created_at": lift.created_at,
        "decided_at": lift.decided_at,
    }


class LiftsApi(APIView):
    @extend_schema(responses=LiftOutput(many=True), operation_id="lifts_list")
    def get(self, request: Request) -> Response:
        """The lifts this node started, newest first."""
        return Response([lift_body(x) for x in Lift.objects.order_by("-created_at")[:200]])

    @extend_schema(
        request=LiftInput,
        responses={201: LiftOutput},
        operation_id="lifts_create",
        description="Start a lift: the amount is cleared on every tally around a cycle that "
        "starts where you owe and comes back where you are owed. Your node referees it.",
    )
    def post(self, request: Request) -> Response:
        data = LiftInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            amount = amounts.parse_amount(data.validated_data["amount"])
            made = lifts.lift_start(amount=amount, route=data.validated_data["route"])
        except (lifts.LiftError, amounts.AmountError) as exc:
            raise _failed(exc) from exc
        return Response(lift_body(made), status=status.HTTP_201_CREATED)


class LiftApi(APIView):
    @extend_schema(responses=LiftOutput, operation_id="lifts_get")
    def get(self, request: Request, lift_id: str) -> Response:
        """A lift this node started: looking for a way around, cleared, or called off (why)."""
        found = Lift.objects.filter(pk=str(lift_id)[:32].lower()).first()
        if found is None:
            raise AppFailed(ThreadServiceError("not_found", "there is no such lift here"))
        return Response(lift_body(found))


class LiftSettingsApi(APIView):
    @extend_schema(responses=LiftSettingsBody, operation_id="lift_settings_get")
    def get(self, request: Request) -> Response:
        """Whether this node carries lifts, and the most one may clear (null: no cap)."""
        row = lifts.settings()
        most = amounts.format_amount(row.most) if row.most is not None else None
        return Response({"enabled": row.enabled, "most": most})

    @extend_schema(
        request=LiftSettingsBody, responses=LiftSettingsBody, operation_id="lift_settings_put"
    )
    def put(self, request: Request) -> Response:
        data = LiftSettingsBody(data=request.data)
        data.is_valid(raise_exception=True)
        most = data.validated_data["most"]
        try:
            parsed = amounts.parse_amount(most) if most not in (None, "") else None
            lifts.settings_save(enabled=data.validated_data["enabled"], most=parsed)
        except (lifts.LiftError, amounts.AmountError) as exc:
            raise _failed(exc) from exc
        return self.get(request)
