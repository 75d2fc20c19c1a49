"""A tally's thread (ADR 21): exactly two parties, the owner who proposed it and the partner who
joined with its one invite. The policy lets both write the ledger's tables; what a row may say
(who pays, the running balance, the limits) is the rules of ``rules.py``, which every replica
applies in the thread's order and which refuse in words."""

from apps.core.thread.appspec import AppSpec
from apps.core.thread.policy import ADMIN, OWNER, READER, WRITER, Policy, RoleRules

APP = "tally"  # the thread's shape
RULES_APP = "ledger"  # the ordered tables and their rules, enabled in every tally
# Every policy has the built-in roles: here a writer is the partner; nobody is ever an admin
# or a reader of a tally (nobody can invite one).
PARTNER = WRITER
CONTRACT, SIGNATURE, CHIT = "ledger_contract", "ledger_signature", "ledger_chit"
LIFT_MESSAGE = "ledger_liftmessage"

# Rows are never deleted and chits never changed: the rules say so in words.
_WRITES = {"insert": "any", "update": "any"}
_TABLES = {CONTRACT: _WRITES, SIGNATURE: _WRITES, CHIT: _WRITES, LIFT_MESSAGE: {"insert": "any"}}

ROLE_WORDS = {
    OWNER: "proposed the tally: pays, asks for payment and sets the credit they give",
    PARTNER: "joined the tally: pays, asks for payment and sets the credit they give",
}


def tally_policy() -> Policy:
    return Policy(
        roles={
            # The owner invites the one partner; nobody else is ever invited.
            OWNER: RoleRules(rank=1000, invite=frozenset({PARTNER}), manage=True, rotate=True),
            ADMIN: RoleRules(rank=100),
            PARTNER: RoleRules(rank=50, rotate=True),
            READER: RoleRules(rank=10),
        }
    )


def ledger_spec() -> AppSpec:
    return AppSpec(
        app=RULES_APP,
        tables=frozenset({CONTRACT, SIGNATURE, CHIT, LIFT_MESSAGE}),
        rules={OWNER: _TABLES, PARTNER: _TABLES},
        ordered=frozenset({CONTRACT, SIGNATURE, CHIT}),
    )
