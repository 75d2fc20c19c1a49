"""The storage app's two thread shapes (ADR 25).

- The **storage thread** (shape ``backups``): one per party, the party's own (every device of
  the party acts as its one member, the owner). It holds the manifest as SQL: snapshots, files,
  chunks, shares and where each lives, the holders and the retention policy. Nobody else is ever
  invited: a friend who holds shares never sees a file name.
- A **holding thread** (shape ``backup_holding``): one per friend who holds shares for the party.
  The party (owner) writes the terms (its party id, proved by its party key); the friend joins
  with an invite at the ``holder`` role and writes the quota it grants, signed by its own op.
  Every replica enforces who writes which table.
"""

from apps.core.thread.appspec import AppSpec
from apps.core.thread.policy import ADMIN, OWNER, READER, WRITER, Policy, RoleRules

SHAPE = "backups"  # the storage thread's app (its shape)
RULES_APP = "storage"  # its tables, enabled by the device that creates it
HOLD_SHAPE = "backup_holding"  # a holding thread's shape
HOLD_APP = "storage_hold"  # its tables
HOLDER = "holder"  # the friend's role in a holding thread

SNAPSHOT, FILE, CHUNK = "storage_snapshot", "storage_file", "storage_chunk"
SHARE, HOLDER_TABLE, RETENTION = "storage_share", "storage_holder", "storage_retention"
TABLES = frozenset({SNAPSHOT, FILE, CHUNK, SHARE, HOLDER_TABLE, RETENTION})
TERMS, QUOTA = "storage_hold_terms", "storage_hold_quota"
HOLD_TABLES = frozenset({TERMS, QUOTA})

ROLE_WORDS = {
    OWNER: "backs up: their nodes place encrypted shares with the holder",
    HOLDER: "holds encrypted shares of the owner's backups, up to the quota it grants",
}

_ANY = {"insert": "any", "update": "any", "delete": "any"}
_OWN = {"insert": "any", "update": "own", "delete": "own"}


def _builtin() -> dict[str, RoleRules]:
    # Built-in roles every policy has; nobody is given them in these threads.
    return {ADMIN: RoleRules(rank=100), WRITER: RoleRules(rank=50), READER: RoleRules(rank=10)}


def storage_policy() -> Policy:
    return Policy(roles={OWNER: RoleRules(rank=1000, manage=True, rotate=True), **_builtin()})


def storage_spec() -> AppSpec:
    return AppSpec(app=RULES_APP, tables=TABLES, rules={OWNER: {t: _ANY for t in TABLES}})


def hold_policy() -> Policy:
    return Policy(
        roles={
            OWNER: RoleRules(rank=1000, invite=frozenset({HOLDER}), manage=True, rotate=True),
            # A holder may start a new key epoch: leaving must not wait for the owner's node.
            HOLDER: RoleRules(rank=40, rotate=True),
            **_builtin(),
        }
    )


def hold_spec() -> AppSpec:
    # The owner writes the terms, the holder its quota: neither can write the other's.
    return AppSpec(
        app=HOLD_APP, tables=HOLD_TABLES, rules={OWNER: {TERMS: _ANY}, HOLDER: {QUOTA: _OWN}}
    )
