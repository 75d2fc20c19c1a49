"""The personal ledger's page (/ledger/books/): account balances, one account's balance over
time (an SVG drawn here, with the figures as a table beside it for screen readers and anyone
who wants the numbers), the import of a bank statement in two steps (the file, then its
columns, prefilled from what the header says) and the exports.

Thin like the other pages: the services read and write, refusals come back in plain words.
Reading the page first puts new tally payments in the books. Between the two import steps the
statement's text waits in the session (a form field could not carry 5 MiB).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.core.threads.services import ThreadServiceError
from apps.ledger import bank_csv, books
from apps.ledger import books_services as services

STATEMENT = "ledger_books_statement"  # session keys
RESULT = "ledger_books_result"
DATE_WORDS = list(bank_csv.DATE_FORMATS.items())  # (code, words)
NONE = ""  # a column choice meaning "no such column"
EXPORTS = {"beancount": ("text/plain; charset=utf-8", "books.beancount"),
           "csv": ("text/csv; charset=utf-8", "books.csv")}  # fmt: skip


def _said(exc: ThreadServiceError) -> str:
    text = str(exc).strip() or "That did not work."
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


# --- forms -----------------------------------------------------------------------------------


class WhereForm(forms.Form):
    """Where a statement's rows go: the account and its currency."""

    account = forms.CharField(
        max_length=books.MAX_ACCOUNT,
        initial="Assets:Bank",
        label="Account",
        help_text="Where the rows go, like Assets:Bank or Assets:Bank:Savings.",
    )
    commodity = forms.CharField(
        max_length=40, initial="EUR", label="Currency", help_text="Like EUR, USD or CHF."
    )


class UploadForm(WhereForm):
    file = forms.FileField(label="Statement (CSV file)", help_text="Exported from your bank.")
    field_order = ["file", "account", "commodity"]


class ColumnsForm(WhereForm):
    """Which column holds what; the choices are the statement's own header names."""

    date = forms.ChoiceField(label="Date")
    amount = forms.ChoiceField(
        label="Amount", required=False, help_text="Or leave it at none and choose debit and credit."
    )
    debit = forms.ChoiceField(label="Debit (money out)", required=False)
    credit = forms.ChoiceField(label="Credit (money in)", required=False)
    description = forms.ChoiceField(label="Description")
    payee = forms.ChoiceField(label="Payee", required=False)
    date_format = forms.ChoiceField(label="Dates are written", choices=DATE_WORDS)
    decimal_comma = forms.BooleanField(
        label="Amounts use a decimal comma (1.234,56)", required=False
    )

    def __init__(self, *args: Any, headers: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        named = [(h, h) for h in dict.fromkeys(headers) if h]
        for name in ("date", "description"):
            self.fields[name].choices = named
        for name in ("amount", "debit", "credit", "payee"):
            self.fields[name].choices = [(NONE, "None"), *named]

    def mapping(self, delimiter: str | None) -> bank_csv.ColumnMap | None:
        """The mapping, or None with the form's error saying what is wrong."""
        given = self.cleaned_data
        try:
            return bank_csv.ColumnMap(
                date=given["date"],
                amount=given["amount"] or None,
                debit=given["debit"] or None,
                credit=given["credit"] or None,
                description=given["description"],
                payee=given["payee"] or None,
                date_format=given["date_format"],
                decimal_comma=given["decimal_comma"],
                delimiter=delimiter,
            )
        except books.BooksError as exc:
            self.add_error(None, str(exc))
            return None


def _initial(mapping: bank_csv.ColumnMap | None, where: dict[str, str]) -> dict[str, Any]:
    if mapping is None:
        return dict(where)
    return {
        **where,
        "date": mapping.date,
        "amount": mapping.amount or NONE,
        "debit": mapping.debit or NONE,
        "credit": mapping.credit or NONE,
        "description": mapping.description,
        "payee": mapping.payee or NONE,
        "date_format": mapping.date_format,
        "decimal_comma": mapping.decimal_comma,
    }


# --- the chart -------------------------------------------------------------------------------

# Sized for a card: text of 16 stays readable when a phone draws the 420 units in ~330 px.
WIDTH, HEIGHT = 420, 230
LEFT, RIGHT, TOP, BOTTOM = 6, 6, 30, 52  # room for the labels above and below
FONT = 16
_EMPTY = SafeString("")


@dataclass(frozen=True)
class Chart:
    account: str
    commodity: str
    points: list[tuple[date, int, str]]  # day, balance, its text
    svg: SafeString
    summary: str  # the chart in one sentence


def _day_words(day: date) -> str:
    return f"{day.day} {day:%B %Y}"


def chart(account: str, commodity: str, points: list[tuple[date, int]]) -> Chart:
    """A step line of the balance (it holds from one change to the next), the zero line, the
    top and bottom of the scale and the first and last day written on it."""
    texts = [(day, value, services.amount_words(value, commodity)) for day, value in points]
    if not points:
        return Chart(account, commodity, [], _EMPTY, f"{account} has no {commodity} yet.")
    first, last = points[0][0], points[-1][0]
    span = max((last - first).days, 1)
    low = min(0, *(v for _, v in points))
    high = max(0, *(v for _, v in points))
    height = max(high - low, 1)

    def x(day: date) -> float:
        return LEFT + (day - first).days / span * (WIDTH - LEFT - RIGHT)

    def y(value: int) -> float:
        return TOP + (high - value) / height * (HEIGHT - TOP - BOTTOM)

    line: list[tuple[float, float]] = [(x(first), y(0))]
    for day, value in points:
        line += [(x(day), line[-1][1]), (x(day), y(value))]
    if span == 1 and first == last:  # one day only: draw it across
        line.append((WIDTH - RIGHT, line[-1][1]))
    path = " ".join(f"{a:.1f},{b:.1f}" for a, b in line)
    lowest = min(points, key=lambda p: p[1])
    highest = max(points, key=lambda p: p[1])
    if len(points) == 1:
        summary = f"{account} in {commodity} on {_day_words(first)}: {texts[-1][2]}."
    else:
        summary = (
            f"{account} in {commodity} from {_day_words(first)} to {_day_words(last)}: "
            f"lowest {services.amount_words(lowest[1], commodity)}, "
            f"highest {services.amount_words(highest[1], commodity)}, "
            f"now {texts[-1][2]}."
        )
    labels = [
        (LEFT, TOP - 10, "start", services.amount_words(high, commodity)),
        (LEFT, HEIGHT - BOTTOM + 20, "start", services.amount_words(low, commodity)),
        (LEFT, HEIGHT - 4, "start", _day_words(first)),
    ]
    if last != first:
        labels.append((WIDTH - RIGHT, HEIGHT - 4, "end", _day_words(last)))
    svg = format_html(
        '<svg class="books-chart" viewBox="0 0 {} {}" width="100%" role="img" '
        'aria-labelledby="chart-title chart-desc" focusable="false">'
        '<title id="chart-title">Balance of {} over time</title><desc id="chart-desc">{}</desc>'
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="currentColor" '
        'stroke-opacity="0.35" stroke-dasharray="4 4"/>'
        '<polyline points="{}" fill="none" stroke="currentColor" stroke-width="2.5" '
        'stroke-linejoin="round"/>{}</svg>',
        WIDTH,
        HEIGHT,
        account,
        summary,
        LEFT,
        f"{y(0):.1f}",
        WIDTH - RIGHT,
        f"{y(0):.1f}",
        path,
        format_html_join(
            "",
            '<text x="{}" y="{}" text-anchor="{}" font-size="{}" fill="currentColor">{}</text>',
            [(x_, y_, anchor, FONT, text) for x_, y_, anchor, text in labels],
        ),
    )
    return Chart(account, commodity, texts, svg, summary)


# --- pages -----------------------------------------------------------------------------------


def _page_url(account: str = "", commodity: str = "", anchor: str = "") -> str:
    query = urlencode({"account": account, "commodity": commodity}) if account else ""
    return reverse("ledger_books:books") + (f"?{query}" if query else "") + anchor


def _context(request: HttpRequest) -> dict[str, Any]:
    problem, rows = "", []
    try:
        services.sync_all()
        rows = services.account_balances()
    except ThreadServiceError as exc:  # no books to write (the master secret is locked)
        problem = _said(exc)
    accounts = [
        {
            "account": row.account,
            "commodity": row.commodity,
            "text": services.amount_words(row.amount, row.commodity),
            "url": _page_url(row.account, row.commodity, "#chart"),
        }
        for row in rows
    ]
    pairs = [(row.account, row.commodity) for row in rows]
    if "|" in request.GET.get("chart", ""):  # the chart's own form: "account|commodity"
        wanted = tuple(request.GET["chart"].split("|", 1))
    else:
        wanted = (request.GET.get("account", ""), request.GET.get("commodity", ""))
    if wanted not in pairs:
        # The first asset account by default: a bank or a tally is what people follow.
        wanted = next((p for p in pairs if p[0].startswith("Assets:")), pairs[0] if pairs else None)
    shown = chart(*wanted, services.balance_history(*wanted)) if wanted else None
    return {
        "accounts": accounts,
        "choices": [
            {"value": f"{a}|{c}", "label": f"{a} ({c})", "chosen": (a, c) == wanted}
            for a, c in pairs
        ],
        "chart": shown,
        "problem": problem,
        "result": request.session.pop(RESULT, None),
        "statement": request.session.get(STATEMENT),
    }


@require_GET
def books_page(request: HttpRequest) -> HttpResponse:
    context = _context(request)
    context["form"] = UploadForm()
    return render(request, "ledger/books.html", context)


@require_POST
def books_upload(request: HttpRequest) -> HttpResponse:
    """Step 1: the file, kept in the session; then its columns."""
    form = UploadForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            text = services.statement_text(form.cleaned_data["file"].read(bank_csv.MAX_BYTES + 1))
            headers, _mapping = bank_csv.sniff(text)
            if not headers:
                raise ThreadServiceError("invalid", "The file is empty or is not a CSV text file.")
        except ThreadServiceError as exc:
            form.add_error("file", _said(exc))
        else:
            request.session[STATEMENT] = {
                "text": text,
                "name": form.cleaned_data["file"].name[:200],
                "account": form.cleaned_data["account"],
                "commodity": form.cleaned_data["commodity"],
            }
            return redirect(reverse("ledger_books:columns"))
    context = _context(request)
    context["form"] = form
    return render(request, "ledger/books.html", context, status=400)


@require_http_methods(["GET", "POST"])
def books_columns(request: HttpRequest) -> HttpResponse:
    """Step 2: the columns, prefilled from the header; importing says what it did."""
    statement = request.session.get(STATEMENT)
    if not statement:
        return redirect(_page_url(anchor="#import"))
    text = statement["text"]
    headers, guess = bank_csv.sniff(text)
    where = {"account": statement["account"], "commodity": statement["commodity"]}
    if request.method == "POST":
        if "cancel" in request.POST:
            request.session.pop(STATEMENT, None)
            return redirect(_page_url(anchor="#import"))
        form = ColumnsForm(request.POST, headers=headers)
        mapping = form.mapping(guess.delimiter if guess else None) if form.is_valid() else None
        if mapping is not None:
            try:
                done = services.import_csv(
                    text, mapping, form.cleaned_data["account"], form.cleaned_data["commodity"]
                )
            except ThreadServiceError as exc:
                form.add_error(None, _said(exc))
            else:
                request.session.pop(STATEMENT, None)
                request.session[RESULT] = {
                    "added": done.added,
                    "duplicates": done.duplicates,
                    "problems": done.problems,
                    "name": statement["name"],
                }
                return redirect(_page_url(anchor="#import"))
    else:
        form = ColumnsForm(initial=_initial(guess, where), headers=headers)
    return render(
        request,
        "ledger/books_columns.html",
        {"form": form, "statement": statement, "headers": headers, "guessed": guess is not None},
        status=400 if form.errors else 200,
    )


@require_GET
def books_export(request: HttpRequest, kind: str) -> HttpResponse:
    if kind not in EXPORTS:
        raise Http404("the books export as beancount or csv")
    # The books as they are if syncing fails: a tally unreadable now is no reason to refuse.
    with contextlib.suppress(ThreadServiceError):
        services.sync_all()
    make = services.export_beancount if kind == "beancount" else services.export_csv
    media, name = EXPORTS[kind]
    response = HttpResponse(make(), content_type=media)
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def books_of_thread(request: HttpRequest, thread_id: str) -> HttpResponse:
    """The books thread opens on this page (Home and Threads list it like any thread)."""
    return redirect(reverse("ledger_books:books"))
