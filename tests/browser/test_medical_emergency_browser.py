"""The emergency link in a real browser (Debian's Chromium through Playwright): the patient makes
a link on the record's "Emergency access" page (desktop) and copies it; a paramedic's phone,
with no session on the node, opens it: the page reads the key from after '#' (it never reaches
the node in a URL), a wrong passcode says how many tries are left, the right one shows the
allergies, medications and problems, and the IPS downloads as FHIR JSON; the patient's page then
lists both tries. Every page is checked as a person sees it; screenshots in
/tmp/sereus-emergency/."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from apps.medical import services
from tests.browser.test_pwa_browser import NEEDS_CHROMIUM
from tests.browser.test_undelivered_browser import (  # noqa: F401 - fixtures
    DESKTOP,
    PHONE,
    _context,
    _looks_right,
    chromium,
    django_beside_playwright,
    session_cookie,
)
from tests.core.threads.conftest import node, thread_databases_allowed  # noqa: F401
from tests.medical import samples

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    NEEDS_CHROMIUM,
]

SHOTS = Path(tempfile.gettempdir()) / "sereus-emergency"
ALLERGY = "Penicillin"


def click(page, locator) -> None:
    with page.expect_navigation():
        locator.click()


def test_a_paramedic_opens_the_emergency_summary(
    chromium,  # noqa: F811
    live_server,
    session_cookie,  # noqa: F811
) -> None:
    SHOTS.mkdir(exist_ok=True)
    record = services.record_create(name="Alice Martin", birth_date="1980-04-02")
    services.resource_write(record, "AllergyIntolerance", samples.allergy(display=ALLERGY))
    services.resource_write(record, "MedicationStatement", samples.medication())
    services.resource_write(record, "Condition", samples.condition())

    patient = _context(chromium, live_server, session_cookie, DESKTOP).new_page()
    errors: list[str] = []
    patient.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    patient.goto(f"{live_server.url}/node/threads/{record.id}/record/emergency/")
    _looks_right(patient, errors, DESKTOP["width"])
    patient.get_by_label("Passcode", exact=True).fill("731 904")
    patient.get_by_label("The link works for").select_option(label="1 day")
    click(patient, patient.get_by_role("button", name="Make the link"))
    link = patient.locator("#share-link").input_value()
    assert link.startswith(f"{live_server.url}/e/")
    assert "#" in link
    assert patient.locator("#new-passcode").inner_text() == "731904"
    assert patient.locator(".share-qr svg").count() == 1
    _looks_right(patient, errors, DESKTOP["width"])
    patient.screenshot(path=str(SHOTS / "patient-new-link.png"), full_page=True)

    # The paramedic's phone: no session, the node's private pages out of sight.
    phone = chromium.new_context(viewport=PHONE, service_workers="block", accept_downloads=True)
    page = phone.new_page()
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(link)
    _looks_right(page, errors, PHONE["width"])
    assert page.locator("a[href^='/node/']").count() == 0
    assert ALLERGY not in page.content()
    page.get_by_label("Passcode").fill("000000")
    click(page, page.get_by_role("button", name="Show the summary"))
    assert "Wrong passcode: 4 tries left." in page.locator("main").inner_text()
    page.screenshot(path=str(SHOTS / "phone-wrong.png"), full_page=True)
    page.get_by_label("Passcode").fill("731904")
    click(page, page.get_by_role("button", name="Show the summary"))
    text = page.locator("main").inner_text()
    for words in ("Alice Martin", ALLERGY, "Metformin", "Diabetes mellitus type 2"):
        assert words in text, text
    _looks_right(page, errors, PHONE["width"])
    page.screenshot(path=str(SHOTS / "phone-summary.png"), full_page=True)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the IPS (FHIR JSON)").click()
    bundle = json.loads(Path(download.value.path()).read_text())
    assert (bundle["resourceType"], bundle["type"]) == ("Bundle", "document")
    key = link.partition("#")[2]
    assert not [url for url in seen if key in url], "the key went to the node in a URL"

    patient.goto(f"{live_server.url}/node/threads/{record.id}/record/emergency/")
    listed = patient.locator("#links").inner_text()
    assert "1 of 5 wrong passcodes" in listed
    patient.get_by_text("3 tries to open it").click()
    opens = patient.locator("#links").inner_text()
    assert opens.count("opened") == 2
    assert "refused" in opens
    _looks_right(patient, errors, DESKTOP["width"])
    patient.screenshot(path=str(SHOTS / "patient-tries.png"), full_page=True)
    click(patient, patient.get_by_role("button", name="Revoke"))
    assert "no longer opens" in patient.locator("main").inner_text()
    page.goto(link.partition("#")[0])  # the same URL with its '#' would not load again
    assert "revoked" in page.locator("main").inner_text()
