"""The medical record's thread shape (ADR 23).

A **record** (shape ``medical``) is the patient's: the patient owns it and is the only one who
invites, grants, revokes and deletes. A **provider** (a doctor, a clinic; joined by a QR invite)
reads the record and writes the resource types its grant allows, within the grant's period;
every replica checks each write against the grant as it stood at that write (``rules.py``). A
**caregiver** reads. Reads cannot be policed once a device holds the key: entries the patient
marks sensitive live in a second record thread of the same shape (the *sensitive part*), which
only the providers the patient picks are invited to.

The FHIR tables are ordered so that a write is judged against the grant rows ordered before it,
the same way on every replica; the link and sealed-invite rows are the patient's own notes to
the members' nodes and need no order.
"""

from apps.core.thread.appspec import AppSpec
from apps.core.thread.policy import ADMIN, OWNER, READER, WRITER, Policy, RoleRules

SHAPE = "medical"  # the thread's shape: POST /api/v1/threads/ {"app": "medical"}
RULES_APP = "medical_record"  # the tables and their rules, enabled in every record

PROVIDER, CAREGIVER = "provider", "caregiver"

PATIENT, ALLERGY, CONDITION = (
    "medical_record_patient",
    "medical_record_allergy",
    "medical_record_condition",
)
MEDICATION, IMMUNIZATION = "medical_record_medication", "medical_record_immunization"
OBSERVATION, PROCEDURE = "medical_record_observation", "medical_record_procedure"
REPORT, DOCUMENT, ENCOUNTER = (
    "medical_record_report",
    "medical_record_document",
    "medical_record_encounter",
)
GRANT, LINK, SEALED = "medical_record_grant", "medical_record_link", "medical_record_sealed"

RESOURCE_TABLES = (
    PATIENT, ALLERGY, CONDITION, MEDICATION, IMMUNIZATION,
    OBSERVATION, PROCEDURE, REPORT, DOCUMENT, ENCOUNTER,
)  # fmt: skip

ROLE_WORDS = {
    OWNER: "the patient: holds the record and decides who else does",
    PROVIDER: "a care provider: reads the record and adds what the patient's grant allows",
    CAREGIVER: "a caregiver: reads the record",
    READER: "reads the record",
}

_ALL = {"insert": "any", "update": "any", "delete": "any"}
_EDIT = {"insert": "any", "update": "any"}
_PATIENT = {t: _ALL for t in (*RESOURCE_TABLES, GRANT)} | {LINK: _ALL, SEALED: _ALL}
# The policy lets a provider try; the grant (rules.py) says which types and when.
_PROVIDER = dict.fromkeys(RESOURCE_TABLES, _EDIT)


def record_policy() -> Policy:
    return Policy(
        roles={
            OWNER: RoleRules(
                rank=1000,
                invite=frozenset({PROVIDER, CAREGIVER, READER}),
                manage=True,
                rotate=True,
            ),
            # Providers and caregivers may start a new key epoch: a removal must not wait for
            # the patient's node to be the one that rotates.
            # Built-in roles every policy has; nobody is given them in a record.
            ADMIN: RoleRules(rank=100),
            PROVIDER: RoleRules(rank=50, rotate=True),
            CAREGIVER: RoleRules(rank=30, rotate=True),
            WRITER: RoleRules(rank=20),
            READER: RoleRules(rank=10),
        }
    )


def record_spec() -> AppSpec:
    return AppSpec(
        app=RULES_APP,
        tables=frozenset({*RESOURCE_TABLES, GRANT, LINK, SEALED}),
        rules={OWNER: _PATIENT, PROVIDER: _PROVIDER},
        ordered=frozenset({*RESOURCE_TABLES, GRANT}),
    )
