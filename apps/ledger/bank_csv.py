"""Import of bank statements from CSV: guess the columns, read the rows, make ledger entries.

A bad line is reported (with its line number) and skipped; the rest of the file still imports.
Each row gets a key from its content, so importing the same statement twice, or a later one that
overlaps it, yields the same keys and the books can refuse the duplicates.
"""

from __future__ import annotations

import csv
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from hashlib import sha256

from apps.ledger.books import (
    MAX_AMOUNT,
    BooksError,
    Entry,
    Posting,
    account_check,
    commodity_check,
    text_tidy,
)

MAX_BYTES = 5 * 1024 * 1024
MAX_ROWS = 20_000
MAX_CELL = 1000
DATE_FORMATS = {
    "%Y-%m-%d": "year-month-day",
    "%d/%m/%Y": "day/month/year",
    "%m/%d/%Y": "month/day/year",
    "%d.%m.%Y": "day.month.year",
}
DELIMITERS = ",;\t"
_HEADER_SEARCH = 30  # banks put a few lines (account, period) above the header
_SNIFF_ROWS = 50

# Header names people's banks use, best first, compared case-insensitively.
_DATE_NAMES = (
    "date",
    "booking date",
    "transaction date",
    "posting date",
    "posted date",
    "value date",
)
_AMOUNT_NAMES = ("amount", "transaction amount", "amount (eur)", "amount (usd)", "amount (gbp)")
_DEBIT_NAMES = (
    "debit",
    "debit amount",
    "withdrawal",
    "withdrawals",
    "money out",
    "paid out",
    "out",
)
_CREDIT_NAMES = ("credit", "credit amount", "deposit", "deposits", "money in", "paid in", "in")
_DESCRIPTION_NAMES = (
    "description",
    "details",
    "memo",
    "transaction details",
    "narrative",
    "reference",
    "purpose",
    "text",
)
_PAYEE_NAMES = ("payee", "counterparty", "counterparty name", "beneficiary", "merchant", "name")


@dataclass(frozen=True)
class ColumnMap:
    """Which column holds what. Either ``amount`` (signed) or both ``debit`` and ``credit``."""

    date: str
    amount: str | None
    debit: str | None
    credit: str | None
    description: str
    payee: str | None
    date_format: str
    decimal_comma: bool
    delimiter: str | None = None  # None: detect it from the text

    def __post_init__(self) -> None:
        if bool(self.amount) == bool(self.debit and self.credit) or (
            self.amount and (self.debit or self.credit)
        ):
            raise BooksError(
                "Choose either one amount column, or a debit column and a credit column."
            )
        if self.date_format not in DATE_FORMATS:
            raise BooksError(
                "The date format must be year-month-day, day/month/year, "
                "month/day/year or day.month.year."
            )
        if not self.date or not self.description:
            raise BooksError("Choose the columns that hold the date and the description.")
        if self.delimiter is not None and self.delimiter not in DELIMITERS:
            raise BooksError("The separator between columns must be a comma, semicolon or tab.")


@dataclass(frozen=True)
class BankRow:
    key: str
    day: date
    amount: int  # milli-units, + money in, - money out
    description: str
    payee: str
    line: int


def _first_problem(text: str) -> str | None:
    """Why ``text`` cannot be a statement at all, or None."""
    if not text.strip():
        return "The file is empty."
    if "\x00" in text:
        return "This is not a CSV text file: it holds binary data."
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        return "The file is larger than 5 MiB; export a shorter period from the bank."
    return None


def _delimiter(text: str) -> str:
    sample = "\n".join(text.splitlines()[:_SNIFF_ROWS])
    try:
        found = csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        found = ""
    if found in DELIMITERS and found:
        return found
    # The sniffer gives up on preambles and ragged lines: take the separator that splits the
    # most lines into the same number of cells.
    best, best_score = ",", -1
    for candidate in DELIMITERS:
        widths: dict[int, int] = {}
        for row in csv.reader(sample.splitlines(), delimiter=candidate):
            if len(row) > 1:
                widths[len(row)] = widths.get(len(row), 0) + 1
        score = max(widths.values(), default=0)
        if score > best_score:
            best, best_score = candidate, score
    return best


def _rows(text: str, delimiter: str) -> Iterator[tuple[int, list[str] | None]]:
    """(line number, cells) for each record; cells is None for a line csv cannot read."""
    lines = text.lstrip("\ufeff").splitlines(keepends=True)
    reader = csv.reader(lines, delimiter=delimiter, strict=False)
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error:
            if reader.line_num < start:  # no progress: stop rather than loop
                return
            yield start, None
            continue
        yield start, row


def _find(headers: list[str], names: Iterable[str]) -> str | None:
    lowered = {h.strip().lower(): h for h in reversed(headers)}
    return next((lowered[n] for n in names if n in lowered), None)


def _header_index(text: str, delimiter: str, wanted: list[str]) -> tuple[int, list[str]] | None:
    """The header row among the first lines: the first naming every column in ``wanted``, else the
    first naming its first one. A preamble line such as "Date;01.06.2024" thus does not pass for
    the header."""
    partial = None
    for count, (line, row) in enumerate(_rows(text, delimiter)):
        if count >= _HEADER_SEARCH:
            break
        lowered = {cell.strip().lower() for cell in row or []}
        names = [cell.strip() for cell in row or []]
        if all(w.strip().lower() in lowered for w in wanted):
            return line, names
        if partial is None and wanted[0].strip().lower() in lowered:
            partial = line, names
    return partial


def sniff(text: str) -> tuple[list[str], ColumnMap | None]:
    """The header names and a guessed mapping (None when the columns cannot be guessed). The
    header is the first of the first lines whose names say where the date, the amount (or debit
    and credit) and the description are; banks often put an account and a period above it."""
    if _first_problem(text):
        return [], None
    delimiter = _delimiter(text)
    fallback: list[str] | None = None
    for count, (line, row) in enumerate(_rows(text, delimiter)):
        if count >= _HEADER_SEARCH:
            break
        if not row or not any(cell.strip() for cell in row):
            continue
        headers = [cell.strip() for cell in row]
        if fallback is None or (_find(headers, _DATE_NAMES) and not _find(fallback, _DATE_NAMES)):
            fallback = headers
        mapping = _guess_mapping(text, delimiter, line, headers)
        if mapping is not None:
            return headers, mapping
    return fallback or [], None


def _guess_mapping(text: str, delimiter: str, line: int, headers: list[str]) -> ColumnMap | None:
    date_col = _find(headers, _DATE_NAMES)
    amount = _find(headers, _AMOUNT_NAMES)
    debit, credit = _find(headers, _DEBIT_NAMES), _find(headers, _CREDIT_NAMES)
    payee = _find(headers, _PAYEE_NAMES)
    description = _find(headers, _DESCRIPTION_NAMES) or payee
    if date_col is None or description is None or (amount is None and not (debit and credit)):
        return None
    if amount:
        debit = credit = None
    samples = _samples(text, delimiter, line, headers)
    money = [v for col in (amount, debit, credit) if col for v in samples.get(col, [])]
    return ColumnMap(
        date=date_col,
        amount=amount,
        debit=debit,
        credit=credit,
        description=description,
        payee=payee if payee != description else None,
        date_format=_guess_date_format(samples.get(date_col, [])),
        decimal_comma=_guess_decimal_comma(money, delimiter),
        delimiter=delimiter,
    )


def _samples(
    text: str, delimiter: str, header_line: int, headers: list[str]
) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {h: [] for h in headers}
    for count, (line, row) in enumerate(_rows(text, delimiter)):
        if count > _HEADER_SEARCH + _SNIFF_ROWS:
            break
        if line <= header_line or not row:
            continue
        for name, cell in zip(headers, row, strict=False):
            if cell.strip():
                values[name].append(cell.strip())
    return values


def _guess_date_format(values: list[str]) -> str:
    # Day-first wins a tie between day/month/year and month/day/year: most banks outside the US
    # write it, and the mapping can be changed before importing.
    best, best_count = "%Y-%m-%d", -1
    for fmt in ("%Y-%m-%d", "%d/%m/%Y", "%d.%m.%Y", "%m/%d/%Y"):
        count = sum(1 for v in values if _date_or_none(v, fmt))
        if count > best_count:
            best, best_count = fmt, count
    return best


def _guess_decimal_comma(values: list[str], delimiter: str) -> bool:
    for value in values:
        digits = re.sub(r"[^\d.,]", "", value)
        if "," in digits and "." in digits:
            return digits.rfind(",") > digits.rfind(".")
        if re.search(r",\d{1,2}$", digits):
            return True
        if re.search(r"\.\d{1,2}$", digits):
            return False
    return delimiter == ";"  # a semicolon separator usually means the comma is the decimal mark


def _date_or_none(value: str, fmt: str) -> date | None:
    try:
        return datetime.strptime(value.strip(), fmt).date()
    except ValueError:
        return None


_SPACES = re.compile(r"[\s\u00a0\u202f'\u2019]")
_CODE = re.compile(r"^[A-Za-z]{3}\s*|\s*[A-Za-z]{3}$")


def parse_bank_amount(text: str, *, decimal_comma: bool) -> int:
    """A bank's amount as milli-units: "1,234.56", "-12.50", "(12.50)", "12.50-", "€ 3",
    "1.234,56" (decimal comma). Raises ValueError with a sentence for a person."""
    raw = text.strip()
    value = _CODE.sub("", raw)
    value = "".join(ch for ch in value if unicodedata.category(ch) != "Sc")
    value = _SPACES.sub("", value)
    negative = False
    if value.startswith("(") and value.endswith(")"):
        negative, value = True, value[1:-1]
    if value.endswith("-"):
        negative, value = not negative, value[:-1]
    if value[:1] in "+-" and value:
        negative, value = (value[0] == "-") != negative, value[1:]
    point, group = (",", ".") if decimal_comma else (".", ",")
    whole, _, fraction = value.partition(point)
    if group in whole and not re.fullmatch(rf"\d{{1,3}}(?:\{group}\d{{3}})+", whole):
        raise ValueError(f'"{raw}" is not an amount (its thousands separators are misplaced).')
    whole = whole.replace(group, "")
    if (
        not re.fullmatch(r"\d*", whole)
        or not re.fullmatch(r"\d*", fraction)
        or not whole + fraction
    ):
        raise ValueError(f'"{raw}" is not an amount.')
    if len(fraction) > 3:
        raise ValueError(f'"{raw}" has more than 3 decimals.')
    milli = int(whole or "0") * 1000 + int((fraction + "000")[:3])
    if milli > MAX_AMOUNT:
        raise ValueError(f'"{raw}" is too large an amount.')
    return -milli if negative else milli


def _row_key(account: str, day: date, amount: int, description: str, n: int) -> str:
    normal = re.sub(r"\s+", " ", description).strip().casefold()
    blob = json.dumps([account, day.isoformat(), amount, normal, n], ensure_ascii=False)
    return "csv:" + sha256(blob.encode("utf-8")).hexdigest()[:32]


def read_statement(
    text: str, mapping: ColumnMap, *, account: str
) -> tuple[list[BankRow], list[str]]:
    """The statement's rows and the problems found, in plain words with line numbers. A bad line
    is reported and skipped; a file that cannot be read at all gives no rows and one problem."""
    account = account_check(account)
    problem = _first_problem(text)
    if problem:
        return [], [problem]
    delimiter = mapping.delimiter or _delimiter(text)
    needed = [mapping.date, mapping.description, mapping.amount, mapping.debit, mapping.credit]
    needed = [c for c in [*needed, mapping.payee] if c]
    found = _header_index(text, delimiter, needed)
    if found is None:
        return [], [
            f'The file has no column named "{mapping.date}" in its first lines; '
            "it may not be a bank statement in CSV."
        ]
    header_line, headers = found
    columns = {h.lower(): i for i, h in reversed(list(enumerate(headers)))}
    missing = [c for c in needed if c.strip().lower() not in columns]
    if missing:
        names = ", ".join(f'"{h}"' for h in headers if h)
        return [], [f'The file has no column named "{missing[0]}"; its columns are {names}.']

    def cell(row: list[str], name: str | None) -> str:
        index = columns[name.strip().lower()] if name else len(row)
        return row[index].strip() if index < len(row) else ""

    rows: list[BankRow] = []
    problems: list[str] = []
    seen: dict[tuple[date, int, str], int] = {}
    count = 0
    for line, row in _rows(text, delimiter):
        if line <= header_line:
            continue
        if row is None:
            problems.append(f"Line {line}: this line is not valid CSV.")
            continue
        if not any(c.strip() for c in row):
            continue
        count += 1
        if count > MAX_ROWS:
            return [], [
                f"The statement has more than {MAX_ROWS:,} rows; "
                "export a shorter period from the bank."
            ]
        if any(len(c) > MAX_CELL for c in row):
            problems.append(f"Line {line}: a cell is longer than {MAX_CELL} characters.")
            continue
        try:
            result = _read_row(row, cell, mapping)
        except ValueError as error:
            problems.append(f"Line {line}: {error}")
            continue
        day, amount, description, payee = result
        normal = re.sub(r"\s+", " ", description).strip().casefold()
        n = seen.get((day, amount, normal), 0)
        seen[(day, amount, normal)] = n + 1
        key = _row_key(account, day, amount, description, n)
        rows.append(BankRow(key, day, amount, description, payee, line))
    return rows, problems


_Cell = Callable[[list[str], str | None], str]


def _read_row(row: list[str], cell: _Cell, mapping: ColumnMap) -> tuple[date, int, str, str]:
    raw_date = cell(row, mapping.date)
    if not raw_date:
        raise ValueError("the date is empty.")
    day = _date_or_none(raw_date, mapping.date_format)
    if day is None:
        words = DATE_FORMATS[mapping.date_format]
        raise ValueError(f'the date "{raw_date}" is not a date in the format {words}.')
    if mapping.amount:
        raw = cell(row, mapping.amount)
        if not raw:
            raise ValueError("the amount is empty.")
        amount = parse_bank_amount(raw, decimal_comma=mapping.decimal_comma)
    else:
        debit, credit = cell(row, mapping.debit), cell(row, mapping.credit)
        if not debit and not credit:
            raise ValueError("neither the debit nor the credit column has an amount.")
        out = parse_bank_amount(debit, decimal_comma=mapping.decimal_comma) if debit else 0
        into = parse_bank_amount(credit, decimal_comma=mapping.decimal_comma) if credit else 0
        # Some banks write debits as negative numbers, others as positive: out is out either way.
        amount = abs(into) - abs(out)
    description = text_tidy(cell(row, mapping.description), MAX_CELL)
    payee = text_tidy(cell(row, mapping.payee), MAX_CELL) if mapping.payee else ""
    return day, amount, description, payee


def bank_entries(
    rows: Iterable[BankRow],
    *,
    account: str,
    commodity: str,
    counter_in: str = "Income:Uncategorized",
    counter_out: str = "Expenses:Uncategorized",
) -> list[Entry]:
    """One entry per row: the bank account and the uncategorised counter account by sign."""
    account = account_check(account)
    commodity = commodity_check(commodity)
    counter_in, counter_out = account_check(counter_in), account_check(counter_out)
    entries = []
    for row in rows:
        counter = counter_in if row.amount >= 0 else counter_out
        entries.append(
            Entry(
                key=row.key,
                day=row.day,
                narration=text_tidy(row.description),
                payee=text_tidy(row.payee),
                postings=(
                    Posting(account, row.amount, commodity),
                    Posting(counter, -row.amount, commodity),
                ),
            )
        )
    return entries
