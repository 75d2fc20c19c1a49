"""The personal ledger ("books"): the only writer and reader of the books thread.

The books live in a one-person thread of shape "books" (``books_policy``: only its owner
writes), made on first use and replicated to the owner's own devices. Each entry is a row of
``books_models.Entry`` whose id follows from its key (``entry_id``), so every device that syncs
the same chit or imports the same statement writes the same rows, and writing again adds
nothing. The pure work (checks, balances, exports, reading a bank's CSV) is ``books.py`` and
``bank_csv.py``; this module only connects it to the tallies and the thread.

Tally payments: every payment chit of every tally becomes one entry "chit:<chit id>" (the
partner's label is the tally's name; a payment I made is negative for me). Its day is the
chit's UTC date, so all devices write the same entry. A chit a concurrent one turned over
later (the tally sent it again under a new id) leaves the books when the tally is synced again.

Errors are ``ThreadServiceError`` in plain words (``invalid`` for input a person can fix).
"""

from __future__ import annotations

import codecs
import json
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from apps.core.models import Thread
from apps.core.thread.rowid import row_id_for
from apps.core.threads import services as threads
from apps.core.threads.app_kit import app_write
from apps.core.threads.context import thread_context
from apps.core.threads.services import ThreadServiceError
from apps.ledger import amounts, bank_csv, books, rules, selectors
from apps.ledger.books_models import Entry
from apps.ledger.books_policy import APP

log = logging.getLogger(__name__)

NAME = "My books"
TITLE = "My books"  # the beancount file's title
CHIT, CSV = "chit", "csv"
_SLICE = 500
_made = threading.Lock()  # two first requests at once make one books thread, not two


@dataclass(frozen=True)
class ImportResult:
    added: int
    duplicates: int  # rows already in the books (the same statement imported before)
    problems: list[str]  # "Line 7: ..." for each line left out


@dataclass(frozen=True)
class Balance:
    account: str
    commodity: str
    amount: int  # milli-units


def _invalid(error: Exception) -> ThreadServiceError:
    return ThreadServiceError("invalid", str(error))


def books_thread() -> Thread:
    """This node's books thread, made the first time it is needed."""
    with _made:
        found = (
            Thread.objects.filter(app=APP)
            .exclude(state=Thread.State.LEFT)
            .order_by("created_at", "id")
            .first()
        )
        return found or threads.thread_create(name=NAME, app=APP)


def entry_id(thread: Thread, key: str):
    """The row id of the entry with ``key``: mine, and the same on every device of mine."""
    return row_id_for(bytes.fromhex(thread.member_id), key.encode())


def _postings(entry: books.Entry) -> str:
    return json.dumps([[p.account, p.amount, p.commodity] for p in entry.postings])


def _entry(row: Entry) -> books.Entry:
    postings = tuple(books.Posting(a, int(m), c) for a, m, c in json.loads(row.postings))
    entry = books.Entry(row.key, row.day, row.narration, row.payee, postings)
    books.entry_check(entry)
    return entry


def _write(thread: Thread, action):
    return app_write(
        thread, action, app=APP, not_enabled="this thread does not hold the books", plain=str
    )


def _store(
    thread: Thread,
    made: Iterable[books.Entry],
    *,
    source: str,
    origin: str = "",
    replace: bool = False,
    drop: Iterable[str] = (),
) -> tuple[int, int]:
    """Write the entries whose key is new in one transaction: (added, already there). With
    ``replace``, an entry already there whose content changed (a tally renamed) is written
    again; the keys in ``drop`` are removed. Nothing is written when nothing changes."""
    wanted = {entry_id(thread, e.key): e for e in made}
    gone = [entry_id(thread, key) for key in drop]
    there = _rows_of(thread, [*wanted, *gone])
    new = [pk for pk in wanted if pk not in there]
    changed = []
    if replace:
        for pk, entry in wanted.items():
            row = there.get(pk)
            if row is not None and _differs(row, entry, source, origin):
                changed.append(pk)
    removed = [pk for pk in gone if pk in there]
    if not (new or changed or removed):
        return 0, len(wanted)

    def write() -> None:
        if removed:
            Entry.objects.filter(pk__in=removed).delete()
        Entry.objects.bulk_create([_row(pk, wanted[pk], source, origin) for pk in new])
        for pk in changed:
            _row(pk, wanted[pk], source, origin).save()

    _write(thread, write)
    return len(new), len(wanted) - len(new)


def _rows_of(thread: Thread, pks: list) -> dict:
    """The rows with these ids that exist, read in slices (SQLite limits a query's
    parameters, and a statement can hold thousands of rows)."""
    found = {}
    with thread_context(thread.thread):
        for start in range(0, len(pks), _SLICE):
            for row in Entry.objects.filter(pk__in=pks[start : start + _SLICE]):
                found[row.id] = row
    return found


def _row(pk, entry: books.Entry, source: str, origin: str) -> Entry:
    return Entry(
        id=pk,
        key=entry.key,
        day=entry.day,
        narration=entry.narration,
        payee=entry.payee,
        postings=_postings(entry),
        source=source,
        origin=origin,
    )


def _differs(row: Entry, entry: books.Entry, source: str, origin: str) -> bool:
    mine = (row.day, row.narration, row.payee, row.postings, row.source, row.origin)
    return mine != (entry.day, entry.narration, entry.payee, _postings(entry), source, origin)


# --- tallies ---------------------------------------------------------------------------------


def _chit_day(at: datetime | None) -> date:
    return (at or datetime.now(UTC)).astimezone(UTC).date()


def tally_entries(tally: Thread) -> list[books.Entry]:
    """The books' entries for what moved one tally's balance (payments, and lifts clearing it
    around a cycle), as this node holds it now: each is the change of my balance it made."""
    state = selectors.tally(tally)
    if state is None:
        return []
    commodity = amounts.beancount_commodity(state.unit)
    chain = sorted(
        (c for c in selectors.chits(tally, state) if c.kind in rules.CHAIN), key=lambda c: c.seq
    )
    made, before = [], 0
    for chit in chain:
        moved, before = chit.balance - before, chit.balance
        if chit.kind not in (rules.PAYMENT, rules.LIFT) or not moved:
            continue
        default = "Payment" if chit.kind == rules.PAYMENT else "Lift around a cycle of tallies"
        made.append(
            books.tally_entry(
                f"chit:{chit.id}",
                _chit_day(chit.at),
                chit.memo or default,
                tally.name,
                moved,
                commodity,
            )
        )
    return made


def sync_chits(thread: Thread) -> int:
    """Put the payments of the tally ``thread`` in the books; how many entries were added.
    Syncing again adds nothing."""
    made = tally_entries(thread)
    keys = {entry.key for entry in made}
    book = books_thread()
    with thread_context(book.thread):
        held = set(Entry.objects.filter(origin=thread.id).values_list("key", flat=True))
    added, _ = _store(
        book, made, source=CHIT, origin=thread.id, replace=True, drop=sorted(held - keys)
    )
    return added


def sync_all() -> int:
    """Sync every tally of this node; how many entries were added. A tally that cannot be read
    (its database damaged) is left for the next time, not a reason to stop the others."""
    added = 0
    for tally in selectors.tallies():
        try:
            added += sync_chits(tally)
        except ThreadServiceError as exc:
            log.warning("books: tally %s not synced: %s", tally.id, exc)
    return added


# --- bank statements --------------------------------------------------------------------------


def commodity_of(text: str) -> str:
    """What a person typed as the statement's currency ("eur", "CHIP", "hours") as the
    books' commodity ("EUR", "CHIP", "HOURS")."""
    try:
        return amounts.beancount_commodity(amounts.unit_parse(text))
    except amounts.AmountError:
        pass
    try:
        return books.commodity_check(str(text).strip().upper())
    except books.BooksError as exc:
        raise _invalid(exc) from exc


def import_csv(
    text: str, mapping: bank_csv.ColumnMap, account: str, commodity: str
) -> ImportResult:
    """Import a bank statement into ``account`` (like "Assets:Bank"). Rows already in the books
    count as duplicates; lines that cannot be read are problems, and the rest still imports. A
    file that is not a statement at all raises, and nothing is stored."""
    try:
        account = books.account_check(account)
    except books.BooksError as exc:
        raise _invalid(exc) from exc
    symbol = commodity_of(commodity)
    rows, problems = bank_csv.read_statement(text, mapping, account=account)
    if not rows and problems:
        raise ThreadServiceError("invalid", problems[0])
    made = bank_csv.bank_entries(rows, account=account, commodity=symbol)
    added, duplicates = _store(books_thread(), made, source=CSV) if made else (0, 0)
    return ImportResult(added, duplicates, problems)


# --- reading ---------------------------------------------------------------------------------


def entries() -> list[books.Entry]:
    """Every entry of the books (a row that does not read as an entry is left out, logged)."""
    book = books_thread()
    with thread_context(book.thread):
        rows = list(Entry.objects.all())
    found = []
    for row in rows:
        try:
            found.append(_entry(row))
        except (ValueError, TypeError) as exc:  # BooksError is a ValueError
            log.warning("books: entry %s left out: %s", row.key, exc)
    return found


def export_beancount() -> str:
    return books.beancount_export(entries(), title=TITLE)


def export_csv() -> str:
    return books.csv_export(entries())


def account_balances() -> list[Balance]:
    """Every account's balance in each commodity, by account name."""
    found = books.balances(entries())
    return [
        Balance(account, commodity, amount)
        for account, per in sorted(found.items())
        for commodity, amount in sorted(per.items())
    ]


def balance_history(account: str, commodity: str) -> list[tuple[date, int]]:
    """The running balance of one account in one commodity, a point per day it changed."""
    try:
        return books.balances_over_time(entries(), account, commodity)
    except books.BooksError as exc:
        raise _invalid(exc) from exc


# --- statement files ----------------------------------------------------------------------------


def statement_text(data: bytes) -> str:
    """An uploaded statement's text: UTF-8 (with or without a byte order mark), UTF-16 with
    one, else Windows-1252, which many banks still export."""
    if len(data) > bank_csv.MAX_BYTES:
        raise ThreadServiceError(
            "invalid", "The file is larger than 5 MiB; export a shorter period from the bank."
        )
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    if b"\x00" in data:
        raise ThreadServiceError("invalid", "This is not a CSV text file: it holds binary data.")
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")  # every byte is a character


def mapping_guess(text: str) -> bank_csv.ColumnMap:
    """The columns of a statement as its header names them, or an error saying which columns
    are needed (and which the file has)."""
    headers, mapping = bank_csv.sniff(text)
    if mapping is not None:
        return mapping
    if not headers:
        raise ThreadServiceError("invalid", "The file is empty or is not a CSV text file.")
    names = ", ".join(f'"{h}"' for h in headers if h)
    raise ThreadServiceError(
        "invalid",
        "The columns could not be recognised: choose the columns that hold the date, the "
        f"amount (or the debit and the credit) and the description. The file's columns are "
        f"{names}.",
    )


def amount_words(milli: int, commodity: str) -> str:
    """An amount as a page shows it: "-1,234.50 EUR" (a currency's decimals), "3.5 HOURS"."""
    try:
        unit = amounts.unit_parse(commodity)
    except amounts.AmountError:
        unit = None
    if unit is not None and unit.kind != amounts.KIND_COMMODITY:
        return amounts.format_amount(milli, unit)
    text = amounts.format_amount(milli)
    return f"{text.rstrip('0').rstrip('.') if '.' in text else text} {commodity}"
