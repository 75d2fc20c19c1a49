"""The personal ledger's books: entries, their checks, balances and the exports (beancount, CSV).

Pure logic: no Django, no database, no clock. Amounts are integers in milli-units (1.000 = 1000)
so sums are exact; they become ``Decimal`` text with three decimals only when written out.
Commodities are plain strings ("EUR", "CHIP") so this module does not depend on the amounts one.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from hashlib import sha256

ROOTS = ("Assets", "Liabilities", "Income", "Expenses", "Equity")
MAX_POSTINGS = 50
MAX_TEXT = 500  # narration and payee
MAX_ACCOUNT = 200
# A trillion units: far above any personal amount, and it keeps every figure a plain number in
# spreadsheets and beancount alike.
MAX_AMOUNT = 10**15

_COMPONENT = re.compile(r"[A-Z0-9][A-Za-z0-9-]*")
# beancount's own rule for commodity names (lexer.l), limited to 24 characters like beancount 2.
_COMMODITY = re.compile(r"[A-Z](?:[A-Z0-9'._-]{0,22}[A-Z0-9])?")
_KEY = re.compile(r"[a-z]+:[A-Za-z0-9._-]{1,128}")
# Letters NFKD does not split into a base letter and a mark.
_FOLD = str.maketrans({"ß": "ss", "æ": "ae", "Æ": "AE", "ø": "o", "Ø": "O", "œ": "oe", "Œ": "OE"})
_FOLD.update(str.maketrans({"đ": "d", "Đ": "D", "ł": "l", "Ł": "L", "þ": "th", "Þ": "Th"}))
_LABEL_COMPONENT = 60
# Characters refused in entry text: control characters, line and paragraph separators, and the
# bidirectional overrides that can make a line display as something else ("Trojan Source").
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


def _is_control(ch: str) -> bool:
    return ch in _BIDI or unicodedata.category(ch) in ("Cc", "Zl", "Zp")


class BooksError(ValueError):
    """Something about an entry or an account that a person can fix; the message says what."""


@dataclass(frozen=True)
class Posting:
    account: str
    amount: int  # milli-units
    commodity: str


@dataclass(frozen=True)
class Entry:
    key: str  # stable id: "chit:<hex>" for a tally payment, "csv:<hash>" for a bank row
    day: date
    narration: str
    payee: str
    postings: tuple[Posting, ...]


def account_check(name: str) -> str:
    """Return ``name`` normalised ("assets : bank" -> "Assets:Bank") or raise BooksError."""
    parts = [part.strip() for part in str(name).strip().split(":")]
    roots = {root.lower(): root for root in ROOTS}
    if not parts or parts[0].lower() not in roots:
        raise BooksError(
            "An account's name starts with Assets, Liabilities, Income, Expenses or Equity, "
            "like Assets:Bank."
        )
    if len(parts) < 2:
        raise BooksError(
            f"An account's name needs at least one part after {roots[parts[0].lower()]}, "
            "like Assets:Bank."
        )
    rest = [part[:1].upper() + part[1:] for part in parts[1:]]
    for part in rest:
        if not part:
            raise BooksError("An account's name has an empty part between two colons.")
        if not _COMPONENT.fullmatch(part):
            raise BooksError(
                f'The part "{part}" of an account\'s name may hold only letters without accents, '
                "digits and dashes, and starts with a capital letter or a digit."
            )
    normal = ":".join([roots[parts[0].lower()], *rest])
    if len(normal) > MAX_ACCOUNT:
        raise BooksError(f"An account's name is at most {MAX_ACCOUNT} characters long.")
    return normal


def account_from_label(root: str, label: str) -> str:
    """Turn a person's label into an account under ``root`` ("Assets:Tallies", "Bob's tally" ->
    "Assets:Tallies:Bobs-tally"). ``root`` is a root name or a whole account; only a bad root
    (a programming error) raises. A label with nothing usable becomes "Account" (empty label) or
    "Account-<6 hex>" from its hash, so that two partners with non-Latin names stay apart."""
    base = root.strip()
    base = next((r for r in ROOTS if r.lower() == base.lower()), None) or account_check(base)
    return f"{base}:{_label_component(label)}"


def _label_component(label: str) -> str:
    text = unicodedata.normalize("NFKD", str(label).translate(_FOLD))
    text = text.encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"['`\u2019]", "", text)  # "Bob's" reads better as "Bobs" than "Bob-s"
    text = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")
    text = text[:_LABEL_COMPONENT].rstrip("-")
    if not text:
        if not str(label).strip():
            return "Account"
        return "Account-" + sha256(str(label).strip().encode()).hexdigest()[:6]
    return text[0].upper() + text[1:]


def commodity_check(commodity: str) -> str:
    """Return ``commodity`` if beancount accepts it as a commodity's name, else raise."""
    if not isinstance(commodity, str) or not _COMMODITY.fullmatch(commodity):
        raise BooksError(
            f'"{commodity}" is not a usable commodity name: capital letters and digits, '
            "starting with a letter, at most 24 characters, like EUR or CHIP."
        )
    return commodity


def _text_check(what: str, text: str) -> None:
    if not isinstance(text, str):
        raise BooksError(f"The {what} must be text.")
    if len(text) > MAX_TEXT:
        raise BooksError(f"The {what} is at most {MAX_TEXT} characters long.")
    if any(_is_control(ch) for ch in text):
        raise BooksError(f"The {what} may not hold line breaks, tabs or other control characters.")


def text_tidy(text: str, limit: int = MAX_TEXT) -> str:
    """Make outside text fit an entry: control characters become spaces, runs of spaces one,
    and text over ``limit`` ends with an ellipsis."""
    cleaned = "".join(" " if _is_control(ch) else ch for ch in str(text))
    cleaned = re.sub(r"\s+", " ", cleaned).strip()
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1].rstrip() + "…"


def entry_check(entry: Entry) -> None:
    """Raise BooksError unless ``entry`` can go in the books as it is."""
    if not isinstance(entry.key, str) or not _KEY.fullmatch(entry.key):
        raise BooksError(
            f'The entry key "{entry.key}" is not a key like "chit:1f2e" or "csv:9a0b".'
        )
    if not isinstance(entry.day, date):
        raise BooksError("An entry needs a date.")
    _text_check("narration", entry.narration)
    _text_check("payee", entry.payee)
    if not 2 <= len(entry.postings) <= MAX_POSTINGS:
        raise BooksError(f"An entry has between 2 and {MAX_POSTINGS} postings.")
    totals: dict[str, int] = {}
    for posting in entry.postings:
        if account_check(posting.account) != posting.account:
            raise BooksError(f'The account "{posting.account}" is not written in its usual form.')
        commodity_check(posting.commodity)
        if not isinstance(posting.amount, int) or isinstance(posting.amount, bool):
            raise BooksError("An amount must be a whole number of thousandths.")
        if abs(posting.amount) > MAX_AMOUNT:
            raise BooksError("An amount is too large for the books.")
        totals[posting.commodity] = totals.get(posting.commodity, 0) + posting.amount
    unbalanced = sorted(c for c, total in totals.items() if total)
    if unbalanced:
        raise BooksError(
            f"The entry does not balance in {', '.join(unbalanced)}: "
            "its amounts in each commodity must add up to zero."
        )


def tally_entry(
    key: str,
    day: date,
    narration: str,
    partner_label: str,
    amount_milli: int,
    commodity: str,
    *,
    tally_account: str | None = None,
    counter_account: str | None = None,
) -> Entry:
    """The entry for one payment on a tally.

    A tally is an asset, Assets:Tallies:<partner>: what the partner owes me. A positive amount is
    a payment I received: the tally goes up and Income:Tallies is credited. A negative amount is
    a payment I made: the tally goes down (below zero once I owe the partner) and
    Expenses:Tallies is debited. One account per tally, whoever owes, keeps its balance
    readable as "what they owe me" and avoids moving it between Assets and Liabilities.
    The partner's label and the narration are tidied (they come from other people)."""
    if not isinstance(amount_milli, int) or isinstance(amount_milli, bool) or amount_milli == 0:
        raise BooksError("A payment on a tally needs an amount other than zero.")
    tally = account_check(tally_account) if tally_account else None
    tally = tally or account_from_label("Assets:Tallies", partner_label)
    if counter_account:
        counter = account_check(counter_account)
    else:
        counter = "Income:Tallies" if amount_milli > 0 else "Expenses:Tallies"
    entry = Entry(
        key=key,
        day=day,
        narration=text_tidy(narration),
        payee=text_tidy(partner_label),
        postings=(
            Posting(tally, amount_milli, commodity),
            Posting(counter, -amount_milli, commodity),
        ),
    )
    entry_check(entry)
    return entry


def amount_text(milli: int) -> str:
    """Milli-units as exact decimal text with three decimals: -12500 -> "-12.500"."""
    return f"{Decimal(milli).scaleb(-3):.3f}"


def _ordered(entries: Iterable[Entry]) -> list[Entry]:
    """Entries checked, exact duplicates dropped, sorted by (day, key)."""
    by_key: dict[str, Entry] = {}
    for entry in entries:
        entry_check(entry)
        seen = by_key.get(entry.key)
        if seen is not None and seen != entry:
            raise BooksError(f'Two different entries have the same key "{entry.key}".')
        by_key[entry.key] = entry
    return sorted(by_key.values(), key=lambda e: (e.day, e.key))


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def beancount_export(
    entries: Iterable[Entry],
    *,
    opened: Mapping[str, date] | None = None,
    title: str = "Personal ledger",
) -> str:
    """The books as beancount text that beancount's loader reads without errors.

    ``opened`` gives accounts' opening days; an account opens on the earlier of that day and its
    first use, so an open never comes after a posting. Accounts in ``opened`` that are never used
    are opened too. Output is deterministic for the same entries, in any order."""
    _text_check("title", title)
    ordered = _ordered(entries)
    first_use: dict[str, date] = {}
    commodities: dict[str, date] = {}
    for entry in ordered:
        for posting in entry.postings:
            first_use.setdefault(posting.account, entry.day)
            commodities.setdefault(posting.commodity, entry.day)
    for account, day in (opened or {}).items():
        name = account_check(account)
        first_use[name] = min(day, first_use.get(name, day))

    lines = [f"option {_quoted('title')} {_quoted(title)}", ""]
    for commodity, day in sorted(commodities.items()):
        lines.append(f"{day.isoformat()} commodity {commodity}")
    for account, day in sorted(first_use.items(), key=lambda item: (item[1], item[0])):
        lines.append(f"{day.isoformat()} open {account}")
    for entry in ordered:
        head = f"{entry.day.isoformat()} *"
        if entry.payee:
            head += f" {_quoted(entry.payee)}"
        lines += ["", f"{head} {_quoted(entry.narration)}", f"  sereus-key: {_quoted(entry.key)}"]
        for posting in entry.postings:
            lines.append(f"  {posting.account}  {amount_text(posting.amount)} {posting.commodity}")
    return "\n".join(lines) + "\n"


def balances(entries: Iterable[Entry]) -> dict[str, dict[str, int]]:
    """Account -> commodity -> balance in milli-units, for the accounts the postings name (no
    parent totals). An account whose postings add up to zero is kept, with 0."""
    result: dict[str, dict[str, int]] = {}
    for entry in _ordered(entries):
        for posting in entry.postings:
            per = result.setdefault(posting.account, {})
            per[posting.commodity] = per.get(posting.commodity, 0) + posting.amount
    return result


def balances_over_time(
    entries: Iterable[Entry], account: str, commodity: str
) -> list[tuple[date, int]]:
    """The running balance of one account in one commodity: a point for each day on which it
    changed (days whose postings cancel out are left out)."""
    account = account_check(account)
    changes: dict[date, int] = {}
    for entry in _ordered(entries):
        for posting in entry.postings:
            if posting.account == account and posting.commodity == commodity:
                changes[entry.day] = changes.get(entry.day, 0) + posting.amount
    points: list[tuple[date, int]] = []
    running = 0
    for day in sorted(changes):
        if changes[day]:
            running += changes[day]
            points.append((day, running))
    return points


CSV_HEADER = ("date", "key", "payee", "narration", "account", "amount", "commodity")
# A spreadsheet runs a cell starting with one of these as a formula (tab and CR too, per OWASP).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(text: str) -> str:
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_export(entries: Iterable[Entry]) -> str:
    """One CSV row per posting (header first), sorted like the beancount export. Text cells that a
    spreadsheet would run as a formula get a leading apostrophe; amounts stay plain numbers."""
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_MINIMAL)
    writer.writerow(CSV_HEADER)
    for entry in _ordered(entries):
        for posting in entry.postings:
            writer.writerow(
                [
                    entry.day.isoformat(),
                    _cell(entry.key),
                    _cell(entry.payee),
                    _cell(entry.narration),
                    _cell(posting.account),
                    amount_text(posting.amount),
                    _cell(posting.commodity),
                ]
            )
    return out.getvalue()
