"""The record's services on this node (the patient's), with providers and a caregiver on nodes of
their own in this process (``conftest``): the record and its resources, the sensitive part and
who never gets it, sharing by invite with the grant written for whoever redeems it, revoking
(nothing written afterwards reaches the revoked node), and batches with a report of each item.
Bad input gets an error in words and writes nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta

import nacl.public
import pytest

from apps.core.models import Thread
from apps.core.thread import keys
from apps.core.thread.invite import invite_parse
from apps.core.thread.writer import redemption_request
from apps.core.threads import services as threads
from apps.core.threads.app_kit import app_enabled
from apps.core.threads.database import ThreadDatabase, WriteRefused
from apps.core.threads.registry import thread_database
from apps.core.threads.services import ThreadServiceError
from apps.core.threads.writes import writes_list
from apps.medical import duties, fhir, selectors, services, sharing
from apps.medical.models import PendingGrant, SealedInvite
from apps.medical.policy import CAREGIVER, PROVIDER, RULES_APP
from tests.core.threads.conftest import OtherNode, exchange, log_size
from tests.medical import samples
from tests.medical.access_support import Provider, provider_joins

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def by_hand(monkeypatch):
    """The duties run when the tests say (``provider_joins`` writes the grant as the duty
    would), never also on the worker at the same moment."""
    monkeypatch.setattr(duties.worker, "wake", lambda thread: None)
    duties.forget()
    yield
    duties.forget()


def refused(code: str, words: str, fn, *args, **kwargs) -> None:
    """``fn`` refuses with ``code`` and words containing ``words``, and writes nothing."""
    thread = kwargs.get("thread") or args[0]
    before = log_size(thread_database(thread.thread))
    with pytest.raises(ThreadServiceError) as caught:
        fn(*args, **kwargs)
    assert caught.value.code == code, caught.value
    assert words in str(caught.value), caught.value
    assert log_size(thread_database(thread.thread)) == before


def displays(thread: Thread, resource_type: str) -> list[str]:
    return sorted(e.display for e in selectors.entries(thread, resource_type))


# -- the record and its resources ----------------------------------------------------------------


def test_a_record_is_the_patients_with_its_rules_and_patient_details(record: Thread):
    assert (record.role, record.name) == ("owner", "Ada Lovelace")
    assert app_enabled(record, RULES_APP)
    assert selectors.records() == [record]
    (patient,) = selectors.entries(record, "Patient")
    assert (patient.display, patient.date, patient.resource["gender"]) == (
        "Ada Lovelace",
        "1985-12-10",
        "female",
    )
    threads = Thread.objects.count()
    for given, words in (
        ({"name": "  "}, "Give the patient's name"),
        ({"name": "x" * 201}, "at most 200 characters"),
        ({"name": "Bo", "birth_date": "10/12/1985"}, "not valid FHIR: birthDate"),
        ({"name": "Bo", "birth_date": "1985-02-30"}, "not valid FHIR: birthDate"),
    ):
        with pytest.raises(ThreadServiceError, match=words) as caught:
            services.record_create(**given)
        assert caught.value.code == "invalid"
    assert Thread.objects.count() == threads  # no thread made for a refused record


def test_resources_are_added_and_changed_by_id(record: Thread):
    made = services.resource_write(record, "Observation", samples.observation_bp(128, 82))
    assert (made.fhir_id, made.value, made.unit, made.sensitive) == (made.pk, 128.0, "mmHg", False)
    changed = services.resource_write(
        record, "Observation", samples.observation_bp(141, 90), fhir_id=made.fhir_id
    )
    assert (changed.pk, changed.value) == (made.pk, 141.0)
    assert changed.resource["id"] == made.fhir_id
    # An id given (an import, a PUT) is kept; writing it again changes that entry.
    named = services.resource_write(record, "Condition", samples.condition(id="dm2"))
    again = services.resource_write(
        record, "Condition", samples.condition(id="dm2", display="Type 2 diabetes")
    )
    assert (named.fhir_id, again.pk) == ("dm2", named.pk)
    assert displays(record, "Condition") == ["Type 2 diabetes"]
    assert [v.action for v in selectors.provenance(record, "Condition", "dm2")] == [
        "insert",
        "update",
    ]
    # Bad input: words, and nothing written.
    refused("invalid", "does not keep Consent", services.resource_write, record, "Consent", {})
    refused("invalid", "must be a JSON object", services.resource_write, record, "Condition", [])
    refused(
        "invalid",
        "This Condition is not valid FHIR: subject",
        services.resource_write,
        record,
        "Condition",
        {"resourceType": "Condition"},
    )
    refused(
        "invalid",
        "This is a Condition, not an Observation",
        services.resource_write,
        record,
        "Observation",
        samples.condition(),
    )
    refused(
        "invalid",
        "A resource's id is 1 to 64",
        services.resource_write,
        record,
        "Observation",
        samples.heart_rate(),
        fhir_id="no spaces here",
    )
    refused(
        "conflict",
        "kept in the main record",
        services.resource_write,
        record,
        "Condition",
        samples.condition(),
        fhir_id="dm2",
        sensitive=True,
    )
    assert [e.value for e in selectors.entries(record, "Observation")] == [141.0]
    services.resource_delete(record, "Observation", made.fhir_id)
    assert selectors.entries(record, "Observation") == []
    refused("not_found", "no such entry", services.resource_delete, record, "Observation", "gone")


def test_a_batch_reports_each_item_and_writes_the_valid_ones_a_hundred_per_op(record: Thread):
    good = [("Observation", samples.heart_rate(50 + n % 40, id=f"hr-{n}")) for n in range(130)]
    bad = [
        ("Observation", samples.condition(id="wrong-type")),
        ("Condition", {"resourceType": "Condition", "id": "no-subject"}),
        ("Consent", {"resourceType": "Consent", "id": "c1"}),
        ("Observation", ["not", "an", "object"]),
        ("Observation", samples.heart_rate(id="hr-3")),  # the same id twice in one batch
    ]
    items = good[:60] + bad + good[60:]
    before = log_size(thread_database(record.thread))
    outcomes = services.resources_write(record, items)
    assert [o.index for o in outcomes] == list(range(len(items)))
    assert [o.ok for o in outcomes] == [True] * 60 + [False] * 5 + [True] * 70
    reasons = {o.fhir_id or o.resource_type: o.reason for o in outcomes if not o.ok}
    assert "not an Observation" in reasons["wrong-type"]
    assert "not valid FHIR: subject" in reasons["no-subject"]
    assert "does not keep Consent" in reasons["c1"]
    assert "must be a JSON object" in reasons["Observation"]
    assert reasons["hr-3"] == "The id hr-3 comes twice."
    assert {o.action for o in outcomes if o.ok} == {"added"}
    # 130 resources in two ops, not 130.
    assert log_size(thread_database(record.thread)) - before == 2
    assert len(selectors.entries(record, "Observation")) == 130
    # The same again changes nothing; a changed one is changed.
    changed = samples.heart_rate(99, id="hr-0")
    again = services.resources_write(record, [good[1], ("Observation", changed)])
    assert [(o.ok, o.action) for o in again] == [(True, "unchanged"), (True, "changed")]
    assert selectors.entry_get(record, "Observation", "hr-0").value == 99.0


# -- the sensitive part --------------------------------------------------------------------------


def test_a_sensitive_entry_never_reaches_a_provider_not_invited(record: Thread, provider: Provider):
    assert selectors.sensitive_of(record) is None
    services.resource_write(record, "Condition", samples.condition(display="Hypertension"))
    secret = services.resource_write(
        record, "Condition", samples.condition(display="Depressive episode"), sensitive=True
    )
    part = selectors.sensitive_of(record)
    assert part is not None
    assert (secret.thread_id, secret.sensitive) == (part.id, True)
    assert (selectors.main_of(part), selectors.is_sensitive(part)) == (record, True)
    assert selectors.records() == [record]  # the part is not a record of its own
    # The patient sees both, merged, and may change the secret one where it lives.
    assert displays(record, "Condition") == ["Depressive episode", "Hypertension"]
    services.resource_write(
        record, "Condition", samples.condition(display="Recurrent depression"),
        fhir_id=secret.fhir_id,
    )  # fmt: skip
    assert displays(record, "Condition") == ["Hypertension", "Recurrent depression"]
    assert [e.sensitive for e in selectors.entries(record, "Condition")].count(True) == 1
    # A second sensitive write goes to the same part.
    services.resource_write(record, "AllergyIntolerance", samples.allergy(), sensitive=True)
    assert selectors.sensitive_of(record) == part
    # Dr. Lee was not invited to it: his node gets the record, and nothing of the part.
    provider.receive()
    assert provider.displays("Condition") == ["Hypertension"]
    assert provider.displays("AllergyIntolerance") == []
    held = [
        row
        for kind in fhir.TYPES.values()
        for row in kind.model().objects.using(provider.alias).values_list("fhir_id", flat=True)
    ]
    assert secret.fhir_id not in held
    assert "depress" not in provider.readable_text().lower()
    assert SealedInvite.objects.using(provider.alias).count() == 0


def test_a_provider_invited_to_the_sensitive_part_is_sealed_its_invite(
    record: Thread, tmp_path, caregiver: Provider
):
    services.resource_write(record, "Condition", samples.condition(), sensitive=True)
    part = selectors.sensitive_of(record)
    ng = provider_joins(record, tmp_path, "Dr. Ng", write=["Observation"], sensitive=True)
    assert selectors.grant_of(record, ng.member).sensitive
    ng.receive()
    # The invite is sealed to Dr. Ng's member key in the record: their node opens it, the
    # caregiver's (who holds the same record) cannot.
    (sealed,) = SealedInvite.objects.using(ng.alias).all()
    assert (sealed.member, sealed.thread) == (ng.member, part.id)

    def opened(member: Provider) -> str | None:
        key = keys.member_key(member.node.keys.master_secret, record.thread)
        box = nacl.public.SealedBox(key.to_curve25519_private_key())
        try:
            return box.decrypt(bytes(sealed.box)).decode()
        except Exception:
            return None

    caregiver.receive()
    link = opened(ng)
    assert link is not None
    assert link.startswith("sereus")
    assert opened(caregiver) is None
    assert SealedInvite.objects.using(caregiver.alias).count() == 1  # held, unreadable
    # The part's grant waits for the redemption of that very invite.
    (waiting,) = PendingGrant.objects.filter(thread=part)
    assert json.loads(waiting.grant)["write"] == ["Observation"]
    assert waiting.invite_id == sealed.invite


# -- sharing, grants, revoking -------------------------------------------------------------------


def test_the_grant_chosen_for_an_invite_is_written_for_whoever_redeems_it(
    record: Thread, provider: Provider, caregiver: Provider
):
    assert PendingGrant.objects.filter(thread=record).count() == 0  # both written
    lee = selectors.grant_of(record, provider.member)
    assert (lee.role, lee.label, lee.status) == (PROVIDER, "Dr. Lee, Riverside Clinic", "active")
    assert (lee.write, set(lee.read)) == (["Condition", "Observation"], set(fhir.TYPES))
    cara = selectors.grant_of(record, caregiver.member)
    assert (cara.role, cara.write, cara.name) == (CAREGIVER, [], "Cara")
    # Dr. Lee's node holds its grant and writes a result, which reaches the patient with who
    # wrote it.
    pulse = provider.write(samples.heart_rate(66))
    entry = selectors.entry_get(record, "Observation", pulse)
    assert entry is not None
    assert entry.value == 66.0
    (version,) = selectors.provenance(record, "Observation", pulse)
    assert (version.name, version.action) == ("Dr. Lee", "insert")
    # What the grant does not allow, Dr. Lee's own node refuses at once; the caregiver's too.
    with pytest.raises(WriteRefused, match="does not let this provider write medications"):
        provider.write(samples.medication())
    with pytest.raises(WriteRefused, match="role caregiver may not insert"):
        caregiver.write(samples.heart_rate(70))
    assert [e.fhir_id for e in selectors.entries(record, "Observation")] == [pulse]


def test_sharing_refuses_what_no_grant_can_be(record: Thread, caregiver: Provider):
    share = sharing.share_invite
    cases = [
        ({"role": "reader"}, "Share the record with a provider or a caregiver."),
        ({"role": CAREGIVER, "write": ["Observation"]}, "A caregiver reads the record and writes"),
        ({"write": ["Consent"]}, "The record keeps no Consent resources."),
        ({"expires_in": timedelta(days=8)}, "A link lasts at most 7 days."),
        ({"label": "x" * 121}, "A label has at most 120 characters."),
    ]
    for given, words in cases:
        terms = {"role": PROVIDER, "label": "Dr. Ng", "read": [], "write": [], **given}
        with pytest.raises(ThreadServiceError, match=words):
            share(record, **terms)
    assert PendingGrant.objects.count() == 0
    # A caregiver's grant never lets them write; nor does the patient's changing it.
    refused(
        "invalid", "A caregiver reads the record and writes nothing",
        sharing.grant_set, record, member_id=caregiver.member, read=[], write=["Observation"],
    )  # fmt: skip


def test_a_narrowed_grant_turns_over_a_concurrent_write_on_the_providers_node(
    record: Thread, provider: Provider
):
    # Dr. Lee writes a result before hearing that the patient took results out of the grant.
    sharing.grant_set(record, member_id=provider.member, read=list(fhir.TYPES), write=["Condition"])
    assert selectors.grant_of(record, provider.member).write == ["Condition"]
    before = provider.write(samples.heart_rate(81))  # sent at once: this node orders it after
    assert selectors.entry_get(record, "Observation", before) is None
    provider.receive()
    (turned,) = writes_list(provider.node.database, state="refused").writes
    assert turned.reason.endswith("the patient's grant does not let this provider write results")
    assert provider.displays("Observation") == []
    # Having heard it, its node refuses the next one at once; a problem is still fine.
    with pytest.raises(WriteRefused, match="does not let this provider write results"):
        provider.write(samples.heart_rate(82))
    problem = provider.write(samples.condition(display="Gout"))
    assert selectors.entry_get(record, "Condition", problem).display == "Gout"


def test_revoking_ends_access_and_nothing_written_afterwards_reaches_the_provider(
    record: Thread, provider: Provider, caregiver: Provider
):
    services.resource_write(record, "Condition", samples.condition(display="Asthma"))
    provider.receive()
    assert provider.displays("Condition") == ["Asthma"]
    epoch = thread_database(record.thread).replica().control.timeline.newest_epoch()
    sharing.access_revoke(record, member_id=provider.member)
    lee = selectors.grant_of(record, provider.member)
    assert (lee.status, lee.role) == ("revoked", None)
    replica = thread_database(record.thread).replica()
    assert replica.control.timeline.newest_epoch() > epoch  # a new key, without Dr. Lee
    # Written after the revocation: the caregiver gets it, Dr. Lee's node cannot read it.
    services.resource_write(record, "Condition", samples.condition(display="Migraine"))
    provider.receive()
    caregiver.receive()
    assert provider.displays("Condition") == ["Asthma"]  # what it had stays
    assert caregiver.displays("Condition") == ["Asthma", "Migraine"]
    # Its node knows it is out, and a write it sends anyway counts nowhere.
    with pytest.raises(WriteRefused):
        provider.write(samples.heart_rate(70))
    assert selectors.entries(record, "Observation") == []
    refused(
        "not_found", "does not hold the record any more",
        sharing.access_revoke, record, member_id=provider.member,
    )  # fmt: skip
    refused(
        "invalid", "You cannot revoke your own access",
        sharing.access_revoke, record, member_id=record.member_id,
    )  # fmt: skip


def part_joined(part: Thread, member: Provider, link: str, tmp_path) -> Provider:
    """``member``'s node redeems the invite to the sensitive part it opened (as its duty would)
    and this node admits it and writes its grant there."""
    node_keys = member.node.keys
    slug = member.alias.rsplit("_", 1)[-1]
    database = ThreadDatabase(
        part.thread, path=tmp_path / f"{slug}-part.sqlite3",
        alias=f"thread_{part.thread.hex()}_{slug}", node=node_keys,
    )  # fmt: skip
    request = redemption_request(
        invite_parse(link), master_secret=node_keys.master_secret, device_key=node_keys.device
    )
    threads.invite_admit(thread=part, request=request)
    duties.grants_follow_invites(part)
    exchange(thread_database(part.thread), database)
    return Provider(OtherNode(node_keys, database), part)


def test_revoking_removes_the_provider_from_the_sensitive_part_too(record: Thread, tmp_path):
    ng = provider_joins(record, tmp_path, "Dr. Ng", write=["Condition"], sensitive=True)
    services.resource_write(record, "Condition", samples.condition(display="Panic"), sensitive=True)
    part = selectors.sensitive_of(record)
    ng.receive()
    (sealed,) = SealedInvite.objects.using(ng.alias).all()
    key = keys.member_key(ng.node.keys.master_secret, record.thread)
    link = nacl.public.SealedBox(key.to_curve25519_private_key()).decrypt(bytes(sealed.box))
    in_part = part_joined(part, ng, link.decode(), tmp_path)
    assert in_part.displays("Condition") == ["Panic"]
    # Its grant there is written for the member it is in the part, with the same terms.
    (theirs,) = selectors.part_members_of(record, ng.member)
    assert theirs == in_part.member != ng.member
    assert [(g.member, g.write) for g in selectors.grants(part)] == [(ng.member, ["Condition"])]
    # Revoked: out of both, and what the patient writes afterwards in either reaches neither.
    sharing.access_revoke(record, member_id=ng.member)
    assert selectors.role_of(record, ng.member) is None
    assert selectors.role_of(part, in_part.member) is None
    services.resource_write(record, "Condition", samples.condition(display="Sprain"))
    services.resource_write(
        record, "Condition", samples.condition(display="Relapse"), sensitive=True
    )
    ng.receive()
    in_part.receive()
    assert ng.displays("Condition") == []
    assert in_part.displays("Condition") == ["Panic"]
    assert displays(record, "Condition") == ["Panic", "Relapse", "Sprain"]


def upload(name: str, data: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data)


def test_a_document_is_sealed_into_the_record_and_read_back(record: Thread, provider: Provider):
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 8
    made = services.document_add(
        record, upload=upload("../letters/discharge.pdf", pdf), title="Discharge letter",
        date="2026-01-20",
    )  # fmt: skip
    attachment = made.resource["content"][0]["attachment"]
    assert (made.display, made.date) == ("Discharge letter", "2026-01-20T00:00:00Z")
    assert (attachment["contentType"], attachment["size"]) == ("application/pdf", len(pdf))
    assert services.document_bytes(record, made.fhir_id) == (
        "discharge.pdf",
        "application/pdf",
        pdf,
    )
    # The provider's node holds the reference (its file travels apart, as blobs do).
    provider.receive()
    assert provider.displays("DocumentReference") == ["Discharge letter"]
    for name, data, words in (
        ("run.exe", b"MZ", "A document is a PDF, an image or a text file."),
        ("empty.pdf", b"", "The file is empty."),
    ):
        refused("invalid", words, services.document_add, record, upload=upload(name, data),
                title="x")  # fmt: skip
    refused("not_found", "no such document", services.document_bytes, record, "nothing")


def test_a_grants_period_is_kept_in_days_and_enforced_on_the_providers_node(
    record: Thread, provider: Provider
):
    today = datetime.now(UTC).date()  # grants count days in UTC
    sharing.grant_set(
        record, member_id=provider.member, read=["Observation"], write=["Observation"],
        start=today + timedelta(days=1),
    )  # fmt: skip
    lee = selectors.grant_of(record, provider.member)
    assert lee.start == datetime.combine(today + timedelta(days=1), time(), tzinfo=UTC)
    assert (lee.end, lee.read, lee.label) == (None, ["Observation"], "Dr. Lee, Riverside Clinic")
    provider.receive()
    with pytest.raises(WriteRefused, match="had not started yet"):
        provider.write(samples.heart_rate(60))
    # The end date is the last day of access: it ends at the next midnight (UTC).
    sharing.grant_set(
        record, member_id=provider.member, read=["Observation"], write=["Observation"],
        start=today - timedelta(days=3), end=today - timedelta(days=1),
    )  # fmt: skip
    assert selectors.grant_of(record, provider.member).end == datetime.combine(
        today, time(), tzinfo=UTC
    )
    provider.receive()
    with pytest.raises(WriteRefused, match="had ended"):
        provider.write(samples.heart_rate(61))
    sharing.grant_set(
        record, member_id=provider.member, read=["Observation"], write=["Observation"],
        end=today,
    )  # fmt: skip
    provider.receive()
    pulse = provider.write(samples.heart_rate(62))
    assert selectors.entry_get(record, "Observation", pulse).value == 62.0
    refused(
        "invalid", "The access must end after it starts",
        sharing.grant_set, record, member_id=provider.member, read=[], write=[],
        start=today, end=today - timedelta(days=1),
    )  # fmt: skip
    refused(
        "not_found", "does not hold the record",
        sharing.grant_set, record, member_id="ab" * 32, read=[], write=[],
    )  # fmt: skip


def test_a_grant_waits_only_for_an_invite_that_can_still_be_redeemed(record: Thread):
    kept = sharing.share_invite(
        record, role=PROVIDER, label="Dr. Ng", read=["Observation"], write=["Observation"]
    )
    dropped = sharing.share_invite(record, role=CAREGIVER, label="Cara", read=[], write=[])
    assert PendingGrant.objects.filter(thread=record).count() == 2
    threads.invite_revoke(thread=record, invite_id=dropped.record.invite_id)
    assert duties.grants_follow_invites(record) == []  # nobody redeemed either
    (waiting,) = PendingGrant.objects.filter(thread=record)
    assert waiting.invite_id == kept.record.invite_id
    assert selectors.grants(record) == []
