"""The personal ledger's API (owner only, like the rest): account balances, a balance over
time, the exports (beancount, CSV) and the import of a bank statement. Reading syncs the
tallies' payments into the books first, so what it answers includes the latest chits.

Amounts are milli-units (integers) with their text beside them. Errors are ``{"error": code,
"detail": message}``: 400 for input a person can fix (a bad format, an account name, a file that
is not a statement, columns that cannot be recognised: the message says which are needed).
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.threads.app_kit import AppFailed, api_call
from apps.core.threads.services import ThreadServiceError
from apps.ledger import bank_csv, books
from apps.ledger import books_services as services

FORMATS = {
    "beancount": ("text/plain; charset=utf-8", "books.beancount"),
    "csv": ("text/csv; charset=utf-8", "books.csv"),
}
# People's words for a date format, and the codes bank_csv uses.
DATE_FORMATS = {words: code for code, words in bank_csv.DATE_FORMATS.items()}
SEPARATORS = {"comma": ",", "semicolon": ";", "tab": "\t", ",": ",", ";": ";", "\t": "\t"}


def _failed(message: str) -> AppFailed:
    return AppFailed(ThreadServiceError("invalid", message))


class NoFormatNegotiation(APIView):
    """JSON always: ``?format=`` names the export here, not a renderer (DRF would answer 404
    for a format it has no renderer for)."""

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        renderer = self.get_renderers()[0]
        return renderer, renderer.media_type


class AmountOutput(serializers.Serializer):
    commodity = serializers.CharField(help_text='"EUR", "CHIP", ...')
    amount = serializers.IntegerField(help_text="Milli-units.")
    amount_text = serializers.CharField()


class AccountOutput(serializers.Serializer):
    account = serializers.CharField(help_text='Like "Assets:Tallies:Bob".')
    balances = AmountOutput(many=True)


class BooksOutput(serializers.Serializer):
    accounts = AccountOutput(many=True)
    entries = serializers.IntegerField(help_text="How many entries the books hold.")


class PointOutput(serializers.Serializer):
    day = serializers.DateField()
    balance = serializers.IntegerField(help_text="Milli-units, at the end of that day.")
    balance_text = serializers.CharField()


class MappingInput(serializers.Serializer):
    date = serializers.CharField(max_length=200, help_text="The date column's header.")
    amount = serializers.CharField(
        max_length=200, required=False, allow_blank=True, default="",
        help_text="A signed amount column; or give debit and credit.",
    )  # fmt: skip
    debit = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    credit = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    description = serializers.CharField(max_length=200)
    payee = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    date_format = serializers.ChoiceField(
        sorted(DATE_FORMATS), required=False, default="year-month-day"
    )
    decimal_comma = serializers.BooleanField(
        required=False, default=False, help_text="Amounts like 1.234,56."
    )
    separator = serializers.ChoiceField(
        ["comma", "semicolon", "tab"], required=False, allow_null=True, default=None,
        help_text="Between columns; detected when left out.",
    )  # fmt: skip


class ImportInput(serializers.Serializer):
    text = serializers.CharField(
        required=False, trim_whitespace=False, help_text="The statement (or send a file)."
    )
    file = serializers.FileField(required=False, help_text="The statement as a CSV file.")
    mapping = MappingInput(
        required=False, allow_null=True, default=None,
        help_text="Which column holds what; guessed from the header when left out.",
    )  # fmt: skip
    account = serializers.CharField(max_length=200, help_text='Where it goes: "Assets:Bank".')
    commodity = serializers.CharField(max_length=40, help_text='Its currency: "EUR".')


class ImportOutput(serializers.Serializer):
    added = serializers.IntegerField()
    duplicates = serializers.IntegerField(help_text="Rows the books held already.")
    problems = serializers.ListField(
        child=serializers.CharField(), help_text='Lines left out: "Line 7: ..."'
    )


def _mapping(given: dict[str, Any]) -> bank_csv.ColumnMap:
    try:
        return bank_csv.ColumnMap(
            date=given["date"],
            amount=given["amount"] or None,
            debit=given["debit"] or None,
            credit=given["credit"] or None,
            description=given["description"],
            payee=given["payee"] or None,
            date_format=DATE_FORMATS[given["date_format"]],
            decimal_comma=given["decimal_comma"],
            delimiter=SEPARATORS[given["separator"]] if given["separator"] else None,
        )
    except books.BooksError as exc:
        raise _failed(str(exc)) from exc


def _import_data(request: Request) -> dict[str, Any]:
    """The request's fields; a multipart form carries its mapping as JSON text."""
    payload = request.data
    if not hasattr(payload, "getlist"):
        return payload
    fields = {k: v for k, v in payload.dict().items() if k != "file"}
    if request.FILES.get("file") is not None:
        fields["file"] = request.FILES["file"]
    if isinstance(fields.get("mapping"), str):
        try:
            fields["mapping"] = json.loads(fields["mapping"]) if fields["mapping"] else None
        except ValueError as exc:
            raise _failed('The mapping must be JSON, like {"date": "Date", ...}.') from exc
    return fields


class BooksApi(NoFormatNegotiation):
    @extend_schema(responses=BooksOutput, operation_id="ledger_get")
    def get(self, request: Request) -> Response:
        """Every account of my books with its balance in each commodity."""
        api_call(services.sync_all)
        rows = api_call(services.account_balances)
        accounts: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            accounts.setdefault(row.account, []).append(
                {
                    "commodity": row.commodity,
                    "amount": row.amount,
                    "amount_text": services.amount_words(row.amount, row.commodity),
                }
            )
        body = [{"account": name, "balances": per} for name, per in accounts.items()]
        return Response({"accounts": body, "entries": len(api_call(services.entries))})


class HistoryApi(NoFormatNegotiation):
    @extend_schema(
        parameters=[
            OpenApiParameter("account", str, required=True, description='"Assets:Bank".'),
            OpenApiParameter("commodity", str, required=True, description='"EUR".'),
        ],
        responses=PointOutput(many=True),
        operation_id="ledger_history",
    )
    def get(self, request: Request) -> Response:
        """One account's balance over time in one commodity: a point per day it changed."""
        account = request.query_params.get("account", "")
        commodity = request.query_params.get("commodity", "")
        if not account or not commodity:
            raise _failed(
                "Say which account and commodity, like ?account=Assets:Bank&commodity=EUR."
            )
        api_call(services.sync_all)
        points = api_call(services.balance_history, account=account, commodity=commodity)
        return Response(
            [
                {
                    "day": day,
                    "balance": value,
                    "balance_text": services.amount_words(value, commodity),
                }
                for day, value in points
            ]
        )


class ExportApi(NoFormatNegotiation):
    @extend_schema(
        parameters=[
            OpenApiParameter("format", str, enum=sorted(FORMATS), description="beancount or csv.")
        ],
        responses={
            (200, "text/plain"): OpenApiResponse(OpenApiTypes.STR, description="beancount"),
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV"),
        },
        operation_id="ledger_export",
    )
    def get(self, request: Request) -> HttpResponse:
        """The books as a file: beancount (``bean-check`` accepts it) or CSV, one row per
        posting."""
        chosen = request.query_params.get("format", "beancount")
        if chosen not in FORMATS:
            raise _failed(
                f'"{chosen[:40]}" is not a format I can export: ask for beancount or csv.'
            )
        api_call(services.sync_all)
        make = services.export_beancount if chosen == "beancount" else services.export_csv
        media, name = FORMATS[chosen]
        response = HttpResponse(api_call(make), content_type=media)
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response


class ImportApi(NoFormatNegotiation):
    parser_classes = [JSONParser, MultiPartParser]

    @extend_schema(
        request={"application/json": ImportInput, "multipart/form-data": ImportInput},
        responses=ImportOutput,
        operation_id="ledger_import",
        description="Import a bank statement (CSV) into an account. Rows the books hold "
        "already count as duplicates, so importing a statement twice adds nothing; a line "
        "that cannot be read is a problem, and the other lines still import.",
    )
    def post(self, request: Request) -> Response:
        data = ImportInput(data=_import_data(request))
        data.is_valid(raise_exception=True)
        given = data.validated_data
        if given.get("file") is not None:
            text = api_call(
                services.statement_text, data=given["file"].read(bank_csv.MAX_BYTES + 1)
            )
        elif given.get("text") is not None:
            text = given["text"]
        else:
            raise _failed("Send the statement: a file, or its text.")
        if given["mapping"] is not None:
            mapping = _mapping(given["mapping"])
        else:
            mapping = api_call(services.mapping_guess, text=text)
        result = api_call(
            services.import_csv,
            text=text,
            mapping=mapping,
            account=given["account"],
            commodity=given["commodity"],
        )
        return Response(
            {"added": result.added, "duplicates": result.duplicates, "problems": result.problems}
        )
