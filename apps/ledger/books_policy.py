"""The books thread's policy: a one-person thread (app "books") that only its owner writes,
replicated to the owner's own devices. Every policy has the built-in roles; here ADMIN,
WRITER and READER hold no tables and nobody can invite anyone into them, so the thread stays
the owner's alone."""

from apps.core.thread.policy import ADMIN, OWNER, READER, WRITER, Policy, RoleRules

APP = "books"  # the thread's shape; genesis enables it, so app_write(app=APP) works
ENTRY = "ledger_entry"  # books_models.Entry's table

_TABLES = {ENTRY: {"insert": "any", "update": "any", "delete": "any"}}


def books_policy() -> Policy:
    return Policy(
        roles={
            OWNER: RoleRules(rank=1000, manage=True, tables=_TABLES, rotate=True),
            ADMIN: RoleRules(rank=100),
            WRITER: RoleRules(rank=50),
            READER: RoleRules(rank=10),
        }
    )
