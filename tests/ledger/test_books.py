"""The books: checks, beancount export read back by beancount itself, balances, CSV export."""

from __future__ import annotations

import csv
import io
import random
from datetime import date, timedelta
from decimal import Decimal

import pytest
from beancount import loader
from beancount.core import data

from apps.ledger.books import (
    BooksError,
    Entry,
    Posting,
    account_check,
    account_from_label,
    balances,
    balances_over_time,
    beancount_export,
    csv_export,
    entry_check,
    tally_entry,
)

START = date(2024, 3, 1)


def _entry(key: str, day: date, *postings: tuple[str, int, str], **kw: str) -> Entry:
    return Entry(
        key=key,
        day=day,
        narration=kw.get("narration", "note"),
        payee=kw.get("payee", ""),
        postings=tuple(Posting(a, n, c) for a, n, c in postings),
    )


def _books() -> list[Entry]:
    """About twenty entries over several accounts and three commodities, some on the same day."""
    rng = random.Random(7)
    entries = []
    partners = ["Bob's tally", "café Lumière", "Ωmega", "Dana"]
    for i in range(14):
        amount = rng.choice([1, -1]) * rng.randint(1, 500_000)
        entries.append(
            tally_entry(
                f"chit:{i:04x}",
                START + timedelta(days=i // 2),
                f'payment "{i}" \\ for things',
                partners[i % 4],
                amount,
                "CHIP" if i % 3 else "EUR",
            )
        )
    for i in range(6):
        day = START + timedelta(days=i)
        entries.append(
            _entry(
                f"csv:{i:032x}",
                day,
                ("Assets:Bank:Checking", -12_345 * (i + 1), "EUR"),
                ("Expenses:Food", 10_000 * (i + 1), "EUR"),
                ("Expenses:Fees", 2_345 * (i + 1), "EUR"),
                ("Assets:Cash", 5, "USD"),
                ("Equity:Opening", -5, "USD"),
                payee="Shop",
            )
        )
    return entries


def _sums_in_beancount(text: str) -> dict[str, dict[str, Decimal]]:
    loaded, errors, _ = loader.load_string(text)
    assert errors == []
    sums: dict[str, dict[str, Decimal]] = {}
    for item in loaded:
        if isinstance(item, data.Transaction):
            for posting in item.postings:
                per = sums.setdefault(posting.account, {})
                cur = posting.units.currency
                per[cur] = per.get(cur, Decimal(0)) + posting.units.number
    return sums


def test_export_loads_in_beancount_and_its_balances_match_ours() -> None:
    entries = _books()
    text = beancount_export(entries, opened={"Assets:Bank:Checking": date(2020, 1, 1)})
    ours = balances(entries)
    theirs = _sums_in_beancount(text)
    assert {a: {c: Decimal(n).scaleb(-3) for c, n in per.items()} for a, per in ours.items()} == (
        theirs
    )
    assert "Assets:Tallies:Bobs-tally" in ours
    assert "2020-01-01 open Assets:Bank:Checking" in text
    loaded, _, options = loader.load_string(text)
    assert options["title"] == "Personal ledger"
    keys = [e.meta["sereus-key"] for e in loaded if isinstance(e, data.Transaction)]
    assert keys == sorted(keys, key=lambda k: (next(x.day for x in entries if x.key == k), k))
    assert len(keys) == 20


def test_export_is_deterministic_whatever_the_order_and_drops_exact_duplicates() -> None:
    entries = _books()
    shuffled = list(reversed(entries)) + entries[:3]
    assert beancount_export(shuffled) == beancount_export(entries)
    assert csv_export(shuffled) == csv_export(entries)


def test_two_different_entries_with_one_key_are_refused() -> None:
    first = _entry("chit:01", START, ("Assets:A", 1, "EUR"), ("Income:B", -1, "EUR"))
    other = _entry("chit:01", START, ("Assets:A", 2, "EUR"), ("Income:B", -2, "EUR"))
    with pytest.raises(BooksError, match="same key"):
        beancount_export([first, other])


def test_hostile_text_is_escaped_and_control_characters_refused() -> None:
    hostile = 'x" \\" 2024-01-01 open Assets:Evil\\'
    entry = _entry(
        "chit:aa",
        START,
        ("Assets:A", 1500, "EUR"),
        ("Income:B", -1500, "EUR"),
        narration=hostile,
        payee='"\\',
    )
    text = beancount_export([entry], title='My "books" \\')
    loaded, errors, options = loader.load_string(text)
    assert errors == []
    assert options["title"] == 'My "books" \\'
    (txn,) = [e for e in loaded if isinstance(e, data.Transaction)]
    assert (txn.narration, txn.payee) == (hostile, '"\\')
    assert not any(isinstance(e, data.Open) and e.account == "Assets:Evil" for e in loaded)
    for bad in ("two\nlines", "tab\there", "bidi \u202e txt", "x" * 501):
        with pytest.raises(BooksError):
            entry_check(
                _entry("chit:aa", START, ("Assets:A", 1, "E"), ("Income:B", -1, "E"), narration=bad)
            )


def test_tally_entry_tidies_outside_text_and_follows_the_sign() -> None:
    got = tally_entry("chit:ff", START, "line\none", "Bob\t", 2500, "CHIP")
    assert got.narration == "line one"
    assert got.payee == "Bob"
    assert got.postings == (
        Posting("Assets:Tallies:Bob", 2500, "CHIP"),
        Posting("Income:Tallies", -2500, "CHIP"),
    )
    paid = tally_entry("chit:fe", START, "", "Bob", -700, "CHIP")
    assert paid.postings[1] == Posting("Expenses:Tallies", 700, "CHIP")
    given = tally_entry(
        "chit:fd",
        START,
        "",
        "Bob",
        -1,
        "CHIP",
        tally_account="liabilities:x",
        counter_account="expenses:gifts",
    )
    assert [p.account for p in given.postings] == ["Liabilities:X", "Expenses:Gifts"]
    with pytest.raises(BooksError):
        tally_entry("chit:fc", START, "", "Bob", 0, "CHIP")


def test_entry_check_refuses_what_beancount_would() -> None:
    ok = (("Assets:A", 1, "EUR"), ("Income:B", -1, "EUR"))
    entry_check(_entry("csv:1", START, *ok))
    bad_cases = [
        _entry("csv:1", START, ("Assets:A", 1, "EUR"), ("Income:B", -2, "EUR")),  # unbalanced
        _entry("csv:1", START, ("Assets:A", 1, "EUR"), ("Income:B", -1, "USD")),  # per commodity
        _entry("csv:1", START, ("Assets:A", 0, "EUR")),  # one posting
        _entry("csv:1", START, *[("Assets:A", 0, "EUR")] * 51),
        _entry("csv:1", START, ("Assets:a", 1, "EUR"), ("Income:B", -1, "EUR")),
        _entry("csv:1", START, ("Assets:A", 1, "eur"), ("Income:B", -1, "eur")),
        _entry("no key", START, *ok),
    ]
    for entry in bad_cases:
        with pytest.raises(BooksError):
            entry_check(entry)


def test_account_names() -> None:
    assert account_check(" assets : bank:checking ") == "Assets:Bank:Checking"
    assert account_check("Expenses:2024-Trip") == "Expenses:2024-Trip"
    with pytest.raises(BooksError, match="starts with Assets, Liabilities"):
        account_check("Money:Bank")
    for bad in ("Assets", "Assets::Bank", "Assets:Bank Account", "Assets:-x", "Assets:Café"):
        with pytest.raises(BooksError):
            account_check(bad)
    assert account_from_label("Assets", "Bob's tally") == "Assets:Bobs-tally"
    assert account_from_label("Assets:Tallies", "café") == "Assets:Tallies:Cafe"
    assert account_from_label("income", "  ") == "Income:Account"
    alice, bob = account_from_label("Assets", "Алиса"), account_from_label("Assets", "Боб")
    assert alice != bob
    assert alice.startswith("Assets:Account-")
    assert account_check(account_from_label("Assets", "--Straße / Ærø!!")) == "Assets:Strasse-AEro"


def test_balances_over_time_is_a_running_balance_per_changed_day() -> None:
    a, b = "Assets:Bank", "Income:Pay"
    entries = [
        _entry("csv:1", START, (a, 100, "EUR"), (b, -100, "EUR")),
        _entry("csv:2", START, (a, 50, "EUR"), (b, -50, "EUR")),
        _entry("csv:3", START + timedelta(days=2), (a, 5, "USD"), (b, -5, "USD")),
        _entry("csv:4", START + timedelta(days=3), (a, -30, "EUR"), (b, 30, "EUR")),
        _entry("csv:5", START + timedelta(days=4), (a, 10, "EUR"), (a, -10, "EUR")),
    ]
    assert balances_over_time(entries, a, "EUR") == [(START, 150), (START + timedelta(days=3), 120)]
    assert balances(entries)[a] == {"EUR": 120, "USD": 5}


def test_csv_export_quotes_and_defuses_formulas() -> None:
    entry = _entry(
        "chit:01",
        START,
        ("Assets:A", -1250, "EUR"),
        ("Income:B", 1250, "EUR"),
        narration='=HYPERLINK("http://x"), "quoted"',
        payee="@bob; -1",
    )
    text = csv_export([entry])
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["date", "key", "payee", "narration", "account", "amount", "commodity"]
    assert rows[1] == [
        "2024-03-01",
        "chit:01",
        "'@bob; -1",
        '\'=HYPERLINK("http://x"), "quoted"',
        "Assets:A",
        "-1.250",
        "EUR",
    ]
    assert rows[2][5] == "1.250"
    assert len(rows) == 3
