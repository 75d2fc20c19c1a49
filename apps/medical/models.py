"""What a medical record replicates (ADR 23), and what a node keeps for itself.

A record is a thread of the ``medical`` shape. Each FHIR resource type the record keeps has a
table (``fhir.TYPES``): a row is one resource, its canonical JSON, and the columns pages search
on, which the rules check against the JSON. Who wrote a version and when is never a column: the
signed ops say it (``selectors.provenance``). A grant is the patient's word on what one member
may write; the rules judge every write against the grant rows ordered before it.
"""

from django.db import models

from apps.core.models import Thread
from apps.core.replicated import ReplicatedModel

MAX_LABEL = 120


class FhirRow(ReplicatedModel):
    """One FHIR resource. ``fhir_id`` is the resource's id (its row id's hex when the record
    made it, the id an imported resource came with otherwise); one row per id and table."""

    fhir_id = models.CharField(max_length=64, db_index=True)
    resource = models.TextField()  # canonical JSON (fhir.canonical)
    code = models.CharField(max_length=200, blank=True, default="")  # system|code
    display = models.CharField(max_length=300, blank=True, default="")
    date = models.CharField(max_length=40, blank=True, default="", db_index=True)
    status = models.CharField(max_length=40, blank=True, default="")
    value = models.FloatField(null=True, blank=True)
    unit = models.CharField(max_length=40, blank=True, default="")

    class Meta:
        abstract = True


class Patient(FhirRow):
    class Meta:
        db_table = "medical_record_patient"
        verbose_name = "patient details"
        verbose_name_plural = "patient details"


class Allergy(FhirRow):
    class Meta:
        db_table = "medical_record_allergy"
        verbose_name = "allergy"
        verbose_name_plural = "allergies"


class Condition(FhirRow):
    class Meta:
        db_table = "medical_record_condition"
        verbose_name = "problem"


class Medication(FhirRow):
    class Meta:
        db_table = "medical_record_medication"
        verbose_name = "medication"


class Immunization(FhirRow):
    class Meta:
        db_table = "medical_record_immunization"
        verbose_name = "vaccination"


class Observation(FhirRow):
    class Meta:
        db_table = "medical_record_observation"
        verbose_name = "result"


class Procedure(FhirRow):
    class Meta:
        db_table = "medical_record_procedure"
        verbose_name = "procedure"


class Report(FhirRow):
    class Meta:
        db_table = "medical_record_report"
        verbose_name = "report"


class Document(FhirRow):
    """A DocumentReference; its file (a scan, a PDF) travels as a blob (``apps.core.blobs``),
    named by the attachment's hash in the resource."""

    name = models.CharField(max_length=200, blank=True, default="")
    mime = models.CharField(max_length=100, blank=True, default="")
    size = models.BigIntegerField(default=0)
    key = models.CharField(max_length=64, blank=True, default="")  # hex
    chunks = models.TextField(blank=True, default="")  # hex chunk hashes, concatenated

    class Meta:
        db_table = "medical_record_document"
        verbose_name = "document"


class Encounter(FhirRow):
    class Meta:
        db_table = "medical_record_encounter"
        verbose_name = "visit"


class Grant(ReplicatedModel):
    """What one member may write, shaped like a FHIR Consent (``consent.grant_consent``): the
    resource types they read and write, a period (ms; no end: until revoked), a label. Written
    only by the patient, one per grantee (``rules.grant_id``)."""

    grantee = models.CharField(max_length=64)  # member key, hex
    label = models.CharField(max_length=MAX_LABEL, blank=True, default="")
    read = models.TextField(default="[]")  # JSON list of resource types
    write = models.TextField(default="[]")  # JSON list of resource types
    start = models.BigIntegerField(null=True, blank=True)
    end = models.BigIntegerField(null=True, blank=True)
    status = models.CharField(max_length=10, default="active")  # active, revoked
    sensitive = models.BooleanField(default=False)  # also invited to the sensitive part

    class Meta:
        db_table = "medical_record_grant"
        verbose_name = "grant"


class RecordLink(ReplicatedModel):
    """The patient's note tying a record to its sensitive part: in the record, kind
    "sensitive" names the part; in the part, kind "main" names the record."""

    kind = models.CharField(max_length=10)
    thread = models.CharField(max_length=64)  # hex

    class Meta:
        db_table = "medical_record_link"
        verbose_name = "record link"


class SealedInvite(ReplicatedModel):
    """An invite to the sensitive part, sealed to one member's key: only that member's node can
    open it, and it joins on its own (``duties``)."""

    member = models.CharField(max_length=64)  # hex
    thread = models.CharField(max_length=64)  # the thread it invites to, hex
    invite = models.CharField(max_length=64)  # the invite's id there: who redeemed it is theirs
    box = models.BinaryField()

    class Meta:
        db_table = "medical_record_sealed"
        verbose_name = "sealed invite"


# -- this node only ------------------------------------------------------------------------------


class PendingGrant(models.Model):
    """A grant the patient chose when making an invite: written for whoever redeems the invite,
    as soon as this node sees them admitted."""

    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="+")
    invite_id = models.CharField(max_length=64)
    grant = models.TextField()  # JSON: label, read, write, start, end, sensitive
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"grant waiting for invite {self.invite_id[:8]}"


class EmergencyLink(models.Model):
    """An emergency summary link: the summary sealed with a key made from the link's secret
    and the passcode, neither of which is stored (``emergency``)."""

    id = models.UUIDField(primary_key=True)
    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="+")
    box = models.BinaryField()
    salt = models.BinaryField()
    expires_at = models.DateTimeField()
    attempts = models.IntegerField(default=0)  # wrong passcodes so far
    max_attempts = models.IntegerField(default=5)
    revoked = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return "emergency link"


class EmergencyOpen(models.Model):
    """One try to open an emergency link, right or wrong."""

    link = models.ForeignKey(EmergencyLink, on_delete=models.CASCADE, related_name="opens")
    at = models.DateTimeField(auto_now_add=True)
    ok = models.BooleanField()
    address = models.CharField(max_length=100, blank=True, default="")

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return "emergency link opened" if self.ok else "emergency link: wrong passcode"
