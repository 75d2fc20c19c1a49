"""Bank statements: sniffing three dialects, bad lines, stable keys, files that are not CSV."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest
from beancount import loader

from apps.ledger.bank_csv import (
    MAX_CELL,
    ColumnMap,
    bank_entries,
    parse_bank_amount,
    read_statement,
    sniff,
)
from apps.ledger.books import BooksError, beancount_export

ACCOUNT = "Assets:Bank:Checking"

COMMA = """Date,Description,Payee,Amount
2024-05-02,Card payment,Corner Bakery,-3.50
2024-05-02,Card payment,Corner Bakery,-3.50
2024-05-03,"Salary, May",ACME Ltd,"2,450.00"
2024-05-04,Refund,Shop,(12.50)
2024-05-06,Rent,Landlord,"-1,100.00"
"""

SEMICOLON = """Kontoauszug;Girokonto
Booking date;01.05.2024 - 31.05.2024

Booking date;Details;Counterparty;Debit;Credit
02.05.2024;Card payment;Corner Bakery;3,50;
02.05.2024;Card payment;Corner Bakery;3,50;
03.05.2024;Salary, May;ACME Ltd;;2.450,00
04.05.2024;Refund;Shop;12,50;
06.05.2024;Rent;Landlord;1.100,00;
"""

TAB = (
    "Transaction Date\tMemo\tAmount\n"
    "05/02/2024\tCard payment\t$-3.50\n"
    "05/02/2024\tCard payment\t$-3.50\n"
    "05/03/2024\tSalary, May\t$2,450.00\n"
    "05/04/2024\tRefund\t-12.50 USD\n"
    "05/30/2024\tRent\t-1,100.00\n"
)

EXPECTED = [
    (date(2024, 5, 2), -3500),
    (date(2024, 5, 2), -3500),
    (date(2024, 5, 3), 2_450_000),
    (date(2024, 5, 4), -12_500),
]


@pytest.mark.parametrize(
    ("text", "date_format", "decimal_comma", "last_day"),
    [
        (COMMA, "%Y-%m-%d", False, date(2024, 5, 6)),
        (SEMICOLON, "%d.%m.%Y", True, date(2024, 5, 6)),
        (TAB, "%m/%d/%Y", False, date(2024, 5, 30)),
    ],
)
def test_three_dialects_are_sniffed_and_read(
    text: str, date_format: str, decimal_comma: bool, last_day: date
) -> None:
    headers, mapping = sniff(text)
    assert mapping is not None
    assert mapping.date in headers
    assert (mapping.date_format, mapping.decimal_comma) == (date_format, decimal_comma)
    rows, problems = read_statement(text, mapping, account=ACCOUNT)
    assert problems == []
    assert [(r.day, r.amount) for r in rows] == [*EXPECTED, (last_day, -1_100_000)]
    assert rows[2].description == "Salary, May"
    assert len({r.key for r in rows}) == 5  # the two identical coffees both import


def test_semicolon_dialect_maps_debit_credit_and_payee() -> None:
    headers, mapping = sniff(SEMICOLON)
    assert headers == ["Booking date", "Details", "Counterparty", "Debit", "Credit"]
    assert mapping == ColumnMap(
        date="Booking date",
        amount=None,
        debit="Debit",
        credit="Credit",
        description="Details",
        payee="Counterparty",
        date_format="%d.%m.%Y",
        decimal_comma=True,
        delimiter=";",
    )
    rows, _ = read_statement(SEMICOLON, mapping, account=ACCOUNT)
    assert rows[0].payee == "Corner Bakery"
    assert rows[0].line == 5


def test_same_file_twice_and_overlapping_statements_give_the_same_keys() -> None:
    _, mapping = sniff(COMMA)
    assert mapping is not None
    first, _ = read_statement(COMMA, mapping, account=ACCOUNT)
    again, _ = read_statement(COMMA, mapping, account=ACCOUNT)
    assert [r.key for r in first] == [r.key for r in again]
    later = (
        "Date,Description,Payee,Amount\n"
        + "\n".join(COMMA.splitlines()[1:4])  # the 2nd to the 3rd of May again
        + "\n2024-05-09,Books,Shop,-20.00\n"
    )
    overlap, _ = read_statement(later, mapping, account=ACCOUNT)
    assert [r.key for r in overlap[:3]] == [r.key for r in first[:3]]
    assert overlap[3].key not in {r.key for r in first}
    other_account, _ = read_statement(COMMA, mapping, account="Assets:Bank:Savings")
    assert not {r.key for r in other_account} & {r.key for r in first}


def test_bad_lines_are_reported_and_the_others_kept() -> None:
    text = (
        "Date,Description,Amount\n"
        "2024-02-01,Fine,1.00\n"
        "31/02/2024,Bad date,1.00\n"
        "2024-02-31,Not a day,1.00\n"
        ",No date,1.00\n"
        "2024-02-02,No amount,\n"
        "2024-02-03,Words,twelve\n"
        "2024-02-04,Too precise,1.2345\n"
        f"2024-02-05,{'x' * (MAX_CELL + 1)},1.00\n"
        '2024-02-06,European by mistake,"12,50"\n'
        "\n"
        "2024-02-07,Also fine,-2.5\n"
    )
    _, mapping = sniff(text)
    assert mapping is not None
    rows, problems = read_statement(text, mapping, account=ACCOUNT)
    assert [(r.description, r.amount, r.line) for r in rows] == [
        ("Fine", 1000, 2),
        ("Also fine", -2500, 12),
    ]
    assert problems[0] == (
        'Line 3: the date "31/02/2024" is not a date in the format year-month-day.'
    )
    assert [p.split(":")[0] for p in problems] == [f"Line {n}" for n in range(3, 11)]
    assert "more than 3 decimals" in problems[5]
    assert f"longer than {MAX_CELL} characters" in problems[6]


@pytest.mark.parametrize(
    "text",
    ["", "   \n\n", "PK\x03\x04\x00\x00binary\x00", "Dear bank,\nplease send my statement.\n"],
)
def test_not_a_statement_gives_one_plain_problem_and_no_rows(text: str) -> None:
    assert sniff(text)[1] is None
    mapping = ColumnMap("Date", "Amount", None, None, "Description", None, "%Y-%m-%d", False)
    rows, problems = read_statement(text, mapping, account=ACCOUNT)
    assert rows == []
    assert len(problems) == 1
    assert "Traceback" not in problems[0]
    assert problems[0].endswith(".")


def test_missing_column_and_size_limits_are_said_plainly() -> None:
    mapping = ColumnMap("Date", "Amount", None, None, "Memo", None, "%Y-%m-%d", False)
    rows, problems = read_statement("Date,Amount\n2024-01-01,1\n", mapping, account=ACCOUNT)
    assert rows == []
    assert problems == ['The file has no column named "Memo"; its columns are "Date", "Amount".']
    huge = "Date,Memo,Amount\n" + "2024-01-01,x,1\n" * 20_001
    assert "more than 20,000 rows" in read_statement(huge, mapping, account=ACCOUNT)[1][0]
    too_big = "Date,Memo,Amount\n" + "x" * (5 * 1024 * 1024)
    assert "larger than 5 MiB" in read_statement(too_big, mapping, account=ACCOUNT)[1][0]


@pytest.mark.parametrize(
    ("text", "decimal_comma", "milli"),
    [
        ("1,234.56", False, 1_234_560),
        ("-12.50", False, -12_500),
        ("(12.50)", False, -12_500),
        ("12.50-", False, -12_500),
        ("€ 1.234,56", True, 1_234_560),
        ("-1 234,5", True, -1_234_500),
        ("CHF 1'000.05", False, 1_000_050),
        ("+0.001", False, 1),
        ("7", True, 7000),
    ],
)
def test_amounts(text: str, decimal_comma: bool, milli: int) -> None:
    assert parse_bank_amount(text, decimal_comma=decimal_comma) == milli


@pytest.mark.parametrize("text", ["", "-", "1.2.3", "12,50", "1,23,456.00", "1.0001", "abc"])
def test_not_amounts(text: str) -> None:
    with pytest.raises(ValueError, match=r"amount|decimals"):
        parse_bank_amount(text, decimal_comma=False)


def test_column_map_wants_amount_or_debit_and_credit() -> None:
    base = ColumnMap("D", "A", None, None, "M", None, "%Y-%m-%d", False)
    for bad in (
        {"amount": None},
        {"debit": "Out"},
        {"amount": None, "debit": "Out"},
        {"date_format": "%Y/%m/%d"},
    ):
        with pytest.raises(BooksError):
            replace(base, **bad)
    replace(base, amount=None, debit="Out", credit="In")


def test_bank_entries_balance_and_export_to_beancount() -> None:
    _, mapping = sniff(COMMA)
    assert mapping is not None
    rows, _ = read_statement(COMMA, mapping, account=ACCOUNT)
    entries = bank_entries(rows, account=ACCOUNT, commodity="EUR")
    assert entries[2].postings[1].account == "Income:Uncategorized"
    assert entries[0].postings[1].account == "Expenses:Uncategorized"
    assert entries[0].payee == "Corner Bakery"
    _, errors, _ = loader.load_string(beancount_export(entries))
    assert errors == []
