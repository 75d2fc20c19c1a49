"""What the checklist brings to a thread that enables it (``AppSpec``): its tables, who may
write them, which are ordered, and which closes which. The policy says who may touch a table at
all; the fine rules (who may claim, mark done, approve) are the validators of ``rules.py``."""

from apps.core.thread.appspec import AppSpec, Closing
from apps.core.thread.policy import ADMIN, OWNER, WRITER

APP = "checklist"
ITEM, CLOSE, APPROVAL, PLAN = (
    "checklist_item",
    "checklist_close",
    "checklist_approval",
    "checklist_plan",
)

_ANY = {"insert": "any", "update": "any", "delete": "any"}
# Approvals and closes are written once: the validators refuse updates and deletes in words.
_ONCE = {"insert": "any", "update": "any"}
_OWN = {"insert": "any", "update": "own", "delete": "own"}
_MANAGER = {ITEM: _ANY, APPROVAL: _ONCE, CLOSE: _ONCE, PLAN: _OWN}


# What each role does with the checklist, for the People page (the rules above and the
# validators of ``rules.py``).
_MANAGES = "can add, claim and finish checklist items, approve finished ones and close lists"
ROLE_WORDS = {
    OWNER: _MANAGES,
    ADMIN: _MANAGES,
    WRITER: "can add checklist items, take them on and mark their own done",
}


def checklist_spec() -> AppSpec:
    return AppSpec(
        app=APP,
        tables=frozenset({ITEM, CLOSE, APPROVAL, PLAN}),
        rules={
            OWNER: _MANAGER,
            ADMIN: _MANAGER,
            # Members add items and change any item: the validator says which changes are
            # theirs to make. They may write approvals only to be told that admins approve.
            WRITER: {ITEM: _ANY, APPROVAL: _ONCE},
            # Readers read: no rules needed for that.
        },
        ordered=frozenset({ITEM, CLOSE, APPROVAL}),
        closes={CLOSE: Closing(target=ITEM, scope="list")},
    )
