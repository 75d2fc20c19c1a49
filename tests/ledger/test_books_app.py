"""The personal ledger in its thread: a tally's payments become entries keyed by chit (syncing
again adds nothing), a statement imported twice adds nothing the second time, the beancount
export loads in beancount and its balance equals the tally's, a file that is not a statement
is refused in words with nothing stored, and the API round trip."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from beancount import loader
from beancount.core import data
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.core.models import Thread
from apps.core.threads.context import thread_context
from apps.core.threads.services import ThreadServiceError
from apps.ledger import bank_csv, selectors, services
from apps.ledger import books_services as books
from apps.ledger.books_models import Entry
from apps.ledger.books_policy import APP
from apps.ledger.policy import PARTNER
from tests.ledger.test_services import Partner, no_worker  # noqa: F401
from tests.support.members import member_join

pytestmark = pytest.mark.django_db(transaction=True)

STATEMENT = """Account;DE00 1234
Booking date;Description;Payee;Amount
02.03.2024;Rent March;Landlord;-850,00
05.03.2024;Salary;ACME;2.100,50
05.03.2024;Coffee;Café;-3,20
07.03.2024;Coffee;Café;not money
"""
TALLY = "Assets:Tallies:Bob-and-me"


@pytest.fixture
def tally(node, tmp_path):
    """An open tally with Bob: I paid 60 ("groceries"), Bob paid me 10."""
    thread = services.tally_create(
        name="Bob and me", unit="CHIP", my_limit="100", partner_limit="100"
    ).thread
    bob = member_join(thread, tmp_path, "Bob", PARTNER, Partner)
    bob.receive()
    bob.sign()
    bob.send()
    services.duties(thread=thread)
    services.chit_create(thread=thread, kind="payment", amount="60", memo="groceries")
    bob.receive()
    tip = selectors.tally(thread).tip
    bob.pay(10_000, prev=tip.pk, state=tip)
    bob.send()
    return thread, bob


def _rows() -> list[Entry]:
    book = books.books_thread()
    with thread_context(book.thread):
        return list(Entry.objects.order_by("key"))


def _beancount_sums(text: str) -> dict[tuple[str, str], Decimal]:
    loaded, errors, _options = loader.load_string(text)
    assert errors == []
    sums: dict[tuple[str, str], Decimal] = {}
    for entry in loaded:
        if isinstance(entry, data.Transaction):
            for posting in entry.postings:
                key = (posting.account, posting.units.currency)
                sums[key] = sums.get(key, Decimal(0)) + posting.units.number
    return sums


def test_a_tallys_payments_become_entries_once_and_export_to_beancount(tally, tmp_path):
    thread, _bob = tally
    assert books.sync_chits(thread) == 2
    assert books.sync_chits(thread) == 0  # again: nothing new
    assert books.sync_all() == 0
    (book,) = Thread.objects.filter(app=APP)  # made on first use, one only
    assert book.name == "My books"
    state = selectors.tally(thread)
    chits = {f"chit:{c.id}" for c in selectors.chits(thread, state)}
    rows = _rows()
    assert {r.key for r in rows} == chits
    assert {(r.source, r.origin) for r in rows} == {("chit", thread.id)}
    assert sorted(r.narration for r in rows) == ["Payment", "groceries"]
    assert {r.payee for r in rows} == {"Bob and me"}
    # One row per key, whoever writes it: the id follows from the key.
    assert {r.id for r in rows} == {books.entry_id(book, k) for k in chits}

    exported = books.export_beancount()
    sums = _beancount_sums(exported)
    assert sums[(TALLY, "CHIP")] == Decimal(state.balance) / 1000 == Decimal("-50")
    # The tool itself, as a person would run it on the file.
    ledger_file = tmp_path / "books.beancount"
    ledger_file.write_text(exported)
    checked = subprocess.run(
        [str(Path(sys.executable).with_name("bean-check")), str(ledger_file)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    balances = {(b.account, b.commodity): b.amount for b in books.account_balances()}
    assert balances[(TALLY, "CHIP")] == state.balance
    assert balances[("Expenses:Tallies", "CHIP")] == 60_000
    history = books.balance_history(TALLY, "CHIP")
    assert history[-1][1] == state.balance
    lines = books.export_csv().splitlines()
    assert lines[0] == "date,key,payee,narration,account,amount,commodity"
    assert len(lines) == 1 + 4  # two postings per entry


def test_a_statement_imported_twice_adds_nothing_the_second_time(node):
    mapping = books.mapping_guess(STATEMENT)
    assert (mapping.date, mapping.amount, mapping.decimal_comma) == ("Booking date", "Amount", True)
    first = books.import_csv(STATEMENT, mapping, "assets:bank", "eur")
    assert (first.added, first.duplicates) == (3, 0)
    assert first.problems == ['Line 6: "not money" is not an amount.']
    again = books.import_csv(STATEMENT, mapping, "Assets:Bank", "EUR")
    assert (again.added, again.duplicates, len(again.problems)) == (0, 3, 1)
    assert len(_rows()) == 3
    balances = {(b.account, b.commodity): b.amount for b in books.account_balances()}
    assert balances[("Assets:Bank", "EUR")] == -850_000 + 2_100_500 - 3_200
    assert books.amount_words(balances[("Assets:Bank", "EUR")], "EUR") == "1,247.30 EUR"


def test_a_file_that_is_not_a_statement_is_refused_in_words_and_nothing_stored(node):
    with pytest.raises(ThreadServiceError, match="not a CSV text file"):
        books.statement_text(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(ThreadServiceError, match=r'could not be recognised.*"Name"'):
        books.mapping_guess("Name,Colour\nAnn,red\n")
    mapping = books.mapping_guess(STATEMENT)
    with pytest.raises(ThreadServiceError, match="no column named"):
        books.import_csv("Name,Colour\nAnn,red\n", mapping, "Assets:Bank", "EUR")
    with pytest.raises(ThreadServiceError, match="starts with Assets"):
        books.import_csv(STATEMENT, mapping, "Bank", "EUR")
    assert not Thread.objects.filter(app=APP).exists()  # not even the books thread


def test_a_payment_the_tally_turned_over_leaves_the_books(tally):
    thread, bob = tally
    books.sync_chits(thread)
    start = selectors.tally(thread).tip
    # Bob pays at once on the same tip a moment earlier: mine is refused everywhere and my
    # node sends it again under a new id; the books follow, never counting it twice.
    bob.pay(7_000, prev=start.pk, state=start)
    services.chit_create(thread=thread, kind="payment", amount="5", memo="rent")
    assert books.sync_chits(thread) == 1
    bob.send()
    services.duties(thread=thread)
    books.sync_chits(thread)
    state = selectors.tally(thread)
    balances = {(b.account, b.commodity): b.amount for b in books.account_balances()}
    assert balances[(TALLY, "CHIP")] == state.balance == -50_000 + 7_000 - 5_000
    assert len(_rows()) == 4


def test_the_api_round_trip(browser, tally):
    api = browser
    _thread, _bob = tally
    got = api.get("/api/v1/ledger/")
    assert got.status_code == 200, got.content
    accounts = {a["account"]: a["balances"] for a in got.json()["accounts"]}
    assert accounts[TALLY] == [
        {"commodity": "CHIP", "amount": -50_000, "amount_text": "-50.000 CHIP"}
    ]
    assert got.json()["entries"] == 2

    upload = SimpleUploadedFile("march.csv", STATEMENT.encode("cp1252"), "text/csv")
    made = api.post(
        "/api/v1/ledger/import/", {"file": upload, "account": "Assets:Bank", "commodity": "EUR"}
    )
    assert made.status_code == 200, made.content
    assert (made.json()["added"], made.json()["duplicates"]) == (3, 0)
    mapping = {"date": "Booking date", "amount": "Amount", "description": "Description",
               "date_format": "day.month.year", "decimal_comma": True}  # fmt: skip
    body = {"text": STATEMENT, "mapping": mapping, "account": "Assets:Bank", "commodity": "EUR"}
    again = api.post("/api/v1/ledger/import/", json.dumps(body), content_type="application/json")
    assert again.status_code == 200, again.content
    assert (again.json()["added"], again.json()["duplicates"]) == (0, 3)
    assert again.json()["problems"] == ['Line 6: "not money" is not an amount.']
    bad = {**body, "text": "just words\n"}
    del bad["mapping"]
    refused = api.post("/api/v1/ledger/import/", json.dumps(bad), content_type="application/json")
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid"
    assert "columns" in refused.json()["detail"]

    exported = api.get("/api/v1/ledger/export/?format=beancount")
    assert exported.status_code == 200
    assert exported["Content-Type"].startswith("text/plain")
    assert "attachment" in exported["Content-Disposition"]
    sums = _beancount_sums(exported.content.decode())
    assert sums[(TALLY, "CHIP")] == Decimal("-50")
    assert sums[("Assets:Bank", "EUR")] == Decimal("1247.30")
    as_csv = api.get("/api/v1/ledger/export/?format=csv")
    assert as_csv.status_code == 200
    assert as_csv["Content-Type"].startswith("text/csv")
    assert len(as_csv.content.decode().splitlines()) == 1 + 2 * 5
    wrong = api.get("/api/v1/ledger/export/?format=xlsx")
    assert wrong.status_code == 400
    assert "beancount or csv" in wrong.json()["detail"]
    history = api.get(f"/api/v1/ledger/history/?account={TALLY}&commodity=CHIP")
    assert history.status_code == 200
    assert [p["balance"] for p in history.json()][-1] == -50_000


def test_bank_csv_mapping_words_match_bank_csv():
    from apps.ledger.books_apis import DATE_FORMATS

    assert set(DATE_FORMATS.values()) == set(bank_csv.DATE_FORMATS)


def test_the_page_imports_in_two_steps_and_draws_the_balance(browser, node):
    page = browser
    empty = page.get("/ledger/books/")
    assert empty.status_code == 200
    assert "Nothing in your books yet" in empty.content.decode()
    not_csv = SimpleUploadedFile("photo.png", b"\x89PNG\x00\x00", "image/png")
    refused = page.post(
        "/ledger/books/import/", {"file": not_csv, "account": "Assets:Bank", "commodity": "EUR"}
    )
    assert refused.status_code == 400
    assert "not a CSV text file" in refused.content.decode()

    upload = SimpleUploadedFile("march.csv", STATEMENT.encode(), "text/csv")
    step1 = page.post(
        "/ledger/books/import/", {"file": upload, "account": "Assets:Bank", "commodity": "EUR"}
    )
    assert step1.status_code == 302
    assert step1["Location"] == "/ledger/books/import/columns/"
    step2 = page.get(step1["Location"])
    form = step2.context["form"]
    assert (form["date"].value(), form["amount"].value()) == ("Booking date", "Amount")
    assert (form["date_format"].value(), form["decimal_comma"].value()) == ("%d.%m.%Y", True)
    chosen = {name: form[name].value() for name in form.fields}
    both = page.post(step1["Location"], {**chosen, "amount": "", "debit": ""})
    assert both.status_code == 400  # neither one amount nor debit and credit
    assert "either one amount column" in both.content.decode()
    done = page.post(step1["Location"], chosen)
    assert done.status_code == 302
    shown = page.get(done["Location"]).content.decode()
    assert "added 3, already there 0, problems: 1." in shown
    assert "Line 6: &quot;not money&quot; is not an amount." in shown
    assert "1,247.30 EUR" in shown
    assert '<svg class="books-chart"' in shown
    assert "lowest -850.00 EUR, highest 1,247.30 EUR, now 1,247.30 EUR" in shown
    assert page.get("/ledger/books/import/columns/").status_code == 302  # nothing waiting
    download = page.get("/ledger/books/export/csv/")
    assert download.status_code == 200
    assert "Assets:Bank,1247.300" not in download.content.decode()  # one row per posting
    assert "Assets:Bank,-850.000,EUR" in download.content.decode()
    assert page.get("/ledger/books/export/xlsx/").status_code == 404
