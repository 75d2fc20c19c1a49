"""The personal ledger's page in a real browser (Debian's Chromium through Playwright), at a
phone's width and a desktop's: a tally's payments are in the books already; a bank statement
is imported in two steps (the file, then its columns as the header named them), the result
says what was added and which line was left out, the chart shows the bank account's balance
with its figures as a table, and importing the same file again adds nothing. Every page is
checked as a person sees it (no template syntax, no hex ids, every field labelled, nothing
wider than the screen, nothing blocked by the CSP). Screenshots: /tmp/sereus-books/."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest

from tests.browser.test_pwa_browser import NEEDS_CHROMIUM
from tests.browser.test_undelivered_browser import (  # noqa: F401 - fixtures
    DESKTOP,
    PHONE,
    _context,
    chromium,
    django_beside_playwright,
    session_cookie,
)
from tests.core.threads.conftest import node, thread_databases_allowed  # noqa: F401
from tests.ledger.test_books_app import STATEMENT, tally  # noqa: F401 - fixtures
from tests.ledger.test_services import no_worker  # noqa: F401

pytestmark = [pytest.mark.browser, NEEDS_CHROMIUM]

SHOTS = Path(tempfile.gettempdir()) / "sereus-books"
HEX_ID = re.compile(r"\b[0-9a-f]{8,}\b")


def click(page, locator) -> None:
    with page.expect_navigation():
        locator.click()


def looks_right(page, errors: list[str], width: int) -> None:
    text = page.locator("main").inner_text()
    for syntax in ("{{", "{%", "{#"):
        assert syntax not in text, text
    assert not HEX_ID.search(text), HEX_ID.search(text)
    for label in page.locator("main label").all():
        assert label.text_content().strip(), "an empty label"
    for field in page.locator("main input:not([type=hidden]), main select").all():
        field_id = field.get_attribute("id")
        assert field_id
        assert page.locator(f"label[for='{field_id}']").count() == 1, field_id
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width
    assert not [e for e in errors if "Content Security Policy" in e], errors


def upload(page) -> None:
    page.get_by_label("Statement (CSV file)").set_input_files(
        {"name": "march.csv", "mimeType": "text/csv", "buffer": STATEMENT.encode()}
    )
    page.get_by_label("Account", exact=True).fill("Assets:Bank")
    page.get_by_label("Currency").fill("EUR")
    click(page, page.get_by_role("button", name="Next: the columns"))


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_books_page(chromium, live_server, session_cookie, tally, size: str) -> None:  # noqa: F811
    SHOTS.mkdir(exist_ok=True)
    viewport = PHONE if size == "phone" else DESKTOP
    width = viewport["width"]
    context = _context(chromium, live_server, session_cookie, viewport)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    page.goto(f"{live_server.url}/ledger/books/")
    accounts = page.locator("table.books-accounts")
    assert accounts.get_by_text("Assets:Tallies:Bob-and-me").is_visible()
    assert accounts.get_by_text("-50.000 CHIP").is_visible()
    assert page.locator("svg.books-chart").is_visible()
    looks_right(page, errors, width)
    page.screenshot(path=str(SHOTS / f"books-tally-{size}.png"), full_page=True)

    upload(page)
    assert page.get_by_label("Date", exact=True).input_value() == "Booking date"
    assert page.get_by_label("Amount", exact=True).input_value() == "Amount"
    assert page.get_by_label("Amounts use a decimal comma (1.234,56)").is_checked()
    looks_right(page, errors, width)
    page.screenshot(path=str(SHOTS / f"books-columns-{size}.png"), full_page=True)
    click(page, page.get_by_role("button", name="Import", exact=True))
    result = page.locator(".books-result")
    assert result.get_by_text("added 3, already there 0, problems: 1.").is_visible()
    assert result.get_by_text('Line 6: "not money" is not an amount.').is_visible()

    # The chart of the bank account, with its figures in a table.
    page.get_by_label("Account shown").select_option("Assets:Bank|EUR")
    click(page, page.get_by_role("button", name="Show"))
    chart = page.locator("#chart")
    caption = chart.locator(".books-figure p").inner_text()
    assert caption.endswith("lowest -850.00 EUR, highest 1,247.30 EUR, now 1,247.30 EUR."), caption
    chart.get_by_text("The figures").click()
    rows = chart.locator("table tbody tr").all_inner_texts()
    assert [r.split("\t")[-1] for r in rows] == ["-850.00 EUR", "1,247.30 EUR"]
    looks_right(page, errors, width)
    page.screenshot(path=str(SHOTS / f"books-{size}.png"), full_page=True)

    upload(page)  # the same file again
    click(page, page.get_by_role("button", name="Import", exact=True))
    assert page.locator(".books-result").get_by_text("added 0, already there 3").is_visible()
    context.close()
