"""The record's "Import and export" page through the test client: a Bundle file uploaded is
imported and the page says, once, how many entries went in and which were refused and why (by
their place in the file); a file that is not a Bundle is refused in words with nothing stored;
the downloads (the whole record, the patient summary, the grants, one entry) are FHIR JSON
attachments. No page shows a hex id or template syntax; a thread that is not a record has no
such page."""

from __future__ import annotations

import io
import json

import pytest
from django.test import Client
from django.urls import reverse

from apps.core.threads import services as threads
from apps.medical import bundles, selectors, services
from apps.medical.policy import PROVIDER
from tests.checklist.conftest import browser, owner_user  # noqa: F401
from tests.core.threads.conftest import node, thread_databases_allowed  # noqa: F401
from tests.market.support import templates_copied  # noqa: F401
from tests.medical import samples
from tests.medical.test_bundles import no_duties  # noqa: F401
from tests.medical.test_pages import patients_record, readable

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("templates_copied", "node", "no_duties"),
]


@pytest.fixture
def client(browser) -> Client:  # noqa: F811
    return browser


@pytest.fixture
def record():
    return services.record_create(name="Ada Lovelace", birth_date="1985-12-10", gender="female")


def upload(data: bytes, name: str = "clinic-export.json") -> io.BytesIO:
    out = io.BytesIO(data)
    out.name = name
    return out


def _stored(record) -> int:
    return sum(len(selectors.entries(record, t)) for t in samples.BUILDERS if t != "Patient")


def test_a_bundle_uploaded_is_imported_and_the_page_says_what_was_refused_and_why(client, record):
    page = client.get(reverse("medical:io", args=[record.id]))
    assert page.status_code == 200
    text = readable(page.content)
    assert "Import a FHIR Bundle" in text
    assert "Download the record (FHIR Bundle)" in text
    assert "Import & export" in text  # the record's navigation, this page among them

    data = samples.bundle(20, bad=5, seed=11)
    sent = client.post(
        reverse("medical:io", args=[record.id]),
        {"bundle": upload(json.dumps(data).encode()), "sensitive": ""},
    )
    assert sent.status_code == 302
    assert sent["Location"].endswith("#report")
    text = readable(client.get(sent["Location"]).content)
    assert "Imported 20 of 25 entries; 5 were refused." in text
    assert "clinic-export.json : 25 entries in the file; imported 20 (20 new" in text
    assert "refused 5." in text
    for place in samples.bad_entries(data):
        assert f" {place + 1} " in text
    assert "This record does not keep Appointment." in text
    assert "This record does not keep Observaton." in text
    assert "recordedDate" in text  # the bad date, where it is
    assert "The entry holds no resource" in text
    assert _stored(record) == 20

    # The report is shown once: reloading neither imports again nor shows it again.
    again = readable(client.get(reverse("medical:io", args=[record.id])).content)
    assert "What the import did" not in again
    assert _stored(record) == 20


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"{ not json", "This file is not valid JSON (line 1)."),
        (
            json.dumps(samples.allergy()).encode(),
            "This file is an AllergyIntolerance, not a Bundle.",
        ),
        (b"", "The file is empty."),
    ],
)
def test_a_file_that_is_not_a_bundle_is_refused_in_words(client, record, data, words):
    sent = client.post(reverse("medical:io", args=[record.id]), {"bundle": upload(data)})
    assert sent.status_code == 400
    assert words in readable(sent.content)
    assert _stored(record) == 0


def test_no_file_chosen_is_said(client, record):
    sent = client.post(reverse("medical:io", args=[record.id]), {})
    assert sent.status_code == 400
    assert "Choose a Bundle file to import." in readable(sent.content)


def _attachment(client: Client, url: str) -> dict:
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/fhir+json")
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["Cache-Control"] == "no-store"
    return json.loads(response.content)


def test_the_downloads_are_fhir_json_attachments(client, record):
    data = samples.bundle(6, seed=12)
    data["entry"].append({"resource": samples.allergy(id="pen")})
    bundles.bundle_import(record, data)

    exported = _attachment(client, reverse("medical:export", args=[record.id]))
    assert exported["type"] == "collection"
    assert len(exported["entry"]) == 8  # the six, the allergy, the patient
    summary = _attachment(client, reverse("medical:ips", args=[record.id]))
    assert summary["type"] == "document"
    assert summary["entry"][0]["resource"]["resourceType"] == "Composition"
    grants = _attachment(client, reverse("medical:consents", args=[record.id]))
    assert grants["resourceType"] == "Bundle"

    one = _attachment(
        client, reverse("medical:resource_json", args=[record.id, "allergies", "pen"])
    )
    assert one == samples.allergy(id="pen")
    missing = client.get(reverse("medical:resource_json", args=[record.id, "allergies", "nope"]))
    assert missing.status_code == 404
    wrong_kind = client.get(reverse("medical:resource_json", args=[record.id, "pets", "pen"]))
    assert wrong_kind.status_code == 404


def test_a_thread_that_is_not_a_record_has_no_import_page(client):
    chat = threads.thread_create(name="Just a chat")
    assert client.get(reverse("medical:io", args=[chat.id])).status_code == 404
    assert client.get(reverse("medical:export", args=[chat.id])).status_code == 404


def test_the_patient_may_import_a_file_into_the_sensitive_part(client, record):
    data = samples.bundle(3, seed=13)
    sent = client.post(
        reverse("medical:io", args=[record.id]),
        {"bundle": upload(json.dumps(data).encode()), "sensitive": "on"},
    )
    assert sent.status_code == 302
    text = readable(client.get(sent["Location"]).content)
    assert "Imported 3 of 3 entries." in text
    assert "the sensitive part included" in text
    assert "Download it with the sensitive part" in text
    summary = _attachment(client, reverse("medical:ips", args=[record.id]))
    assert len(summary["entry"]) == 5  # composition, patient, three "no information" entries
    whole = _attachment(client, reverse("medical:ips", args=[record.id]) + "?sensitive=1")
    assert len(whole["entry"]) > 5
    kept = [e for t in samples.BUILDERS if t != "Patient" for e in selectors.entries(record, t)]
    assert [e.sensitive for e in kept] == [True, True, True]


def test_a_provider_imports_what_the_grant_lets_it_write_and_is_told_why_not_the_rest(
    client, tmp_path
):
    record = patients_record(tmp_path, write=["Observation"]).thread
    assert record.role == PROVIDER
    page = readable(client.get(reverse("medical:io", args=[record.id])).content)
    assert "sensitive part" not in page  # the patient's choice alone
    assert "Download the grants" not in page
    data = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"resource": samples.heart_rate(70, id="hr1")},
            {"resource": samples.medication(id="ibu", display="Ibuprofen 400 MG")},
            {"resource": samples.hba1c(6.1, id="a1c")},
        ],
    }
    sent = client.post(
        reverse("medical:io", args=[record.id]), {"bundle": upload(json.dumps(data).encode())}
    )
    text = readable(client.get(sent["Location"]).content)
    assert "Imported 2 of 3 entries; 1 was refused." in text
    assert "2 Medication ibu" in text
    assert "the patient's grant does not let you write medications" in text
    observations = {e.fhir_id for e in selectors.entries(record, "Observation")}
    assert {"hr1", "a1c"} <= observations
    medications = [e.display for e in selectors.entries(record, "MedicationStatement")]
    assert "Ibuprofen 400 MG" not in medications
