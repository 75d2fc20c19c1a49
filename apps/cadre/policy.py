"""The control thread's shape: the party's own devices, and nobody else, write it.

The party is the thread's only member (every device of it acts as the owner): nobody can be
invited, and the owner writes every table. Nothing here is a business rule between people."""

from apps.core.thread.appspec import AppSpec
from apps.core.thread.policy import ADMIN, OWNER, READER, WRITER, Policy, RoleRules

SHAPE = "cadre_control"  # the control thread's app
RULES_APP = "cadre"  # its tables (enabled by the device that creates it)
THREADS, DEVICES, PROOFS, SETTINGS = "cadre_thread", "cadre_device", "cadre_proof", "cadre_setting"
TABLES = frozenset({THREADS, DEVICES, PROOFS, SETTINGS})

_ANY = {"insert": "any", "update": "any", "delete": "any"}


def control_policy() -> Policy:
    return Policy(
        roles={
            OWNER: RoleRules(rank=1000, manage=True, rotate=True),
            # Built-in roles every policy has; nobody is given them here.
            ADMIN: RoleRules(rank=100),
            WRITER: RoleRules(rank=50),
            READER: RoleRules(rank=10),
        }
    )


def cadre_spec() -> AppSpec:
    return AppSpec(app=RULES_APP, tables=TABLES, rules={OWNER: {t: _ANY for t in TABLES}})
