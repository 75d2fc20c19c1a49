"""The authorization table: every role x action x own/other row of a sample policy, for an honest
writer and for a hostile device that signs validly but is not allowed. Every replica agrees."""

from __future__ import annotations

import pytest

from apps.core.thread import payloads as p
from apps.core.thread.policy import ANY_TABLE, Policy, RoleRules
from apps.core.thread.writer import ThreadWriter, WriteError
from tests.core.thread.conftest import Party, auditor, forge, join, rid, sync

EVERYTHING = {ANY_TABLE: {"insert": "any", "update": "any", "delete": "any"}}

# The sample policy: an app role ("moderator") between admin and writer that may edit and
# delete anyone's posts but not post.
SAMPLE = Policy(
    roles={
        "owner": RoleRules(
            rank=1000,
            invite=frozenset({"admin", "moderator", "writer", "reader"}),
            manage=True,
            tables=EVERYTHING,
            rotate=True,
        ),
        "admin": RoleRules(
            rank=100,
            invite=frozenset({"moderator", "writer", "reader"}),
            manage=True,
            tables={"posts": {"insert": "any", "update": "any", "delete": "any"}},
            rotate=True,
        ),
        "moderator": RoleRules(
            rank=60, tables={"posts": {"insert": "none", "update": "any", "delete": "any"}}
        ),
        "writer": RoleRules(
            rank=50, tables={"posts": {"insert": "any", "update": "own", "delete": "own"}}
        ),
        "reader": RoleRules(rank=10, history=False),
    }
)

CASES = ("insert", "update own", "update other", "delete own", "delete other")
# What the policy above says, written out: the table this test holds the replicas to.
EXPECTED = {
    "admin": {c: True for c in CASES},
    "moderator": {
        "insert": False,
        "update own": True,
        "update other": True,
        "delete own": True,
        "delete other": True,
    },
    "writer": {
        "insert": True,
        "update own": True,
        "update other": False,
        "delete own": True,
        "delete other": False,
    },
    "reader": {c: False for c in CASES},
}


def _change(case: str, me: ThreadWriter, other: ThreadWriter) -> p.RowChange:
    """The row change of ``case`` by ``me``; "other" rows are ``other``'s."""
    match case:
        case "insert":
            return p.RowChange("posts", rid(me, "new"), p.UPSERT, {"text": "new post"})
        case "update own" | "update other":
            owner = me if case.endswith("own") else other
            return p.RowChange("posts", rid(owner, "u"), p.UPSERT, {"text": "edited"})
        case _:
            owner = me if case.endswith("own") else other
            return p.RowChange("posts", rid(owner, "d"), p.DELETE, {})


def test_the_sample_policy_says_what_the_table_says():
    for role, cases in EXPECTED.items():
        for case, allowed in cases.items():
            action = case.split()[0]
            own = not case.endswith("other")
            assert SAMPLE.allows_row(role, "posts", action, own=own) is allowed, (role, case)


@pytest.mark.parametrize("hostile", [False, True], ids=["honest", "hostile"])
@pytest.mark.parametrize("role", list(EXPECTED))
def test_every_case_on_every_replica(role: str, hostile: bool):
    alice, bob, carol = Party("alice"), Party("bob"), Party("carol")
    owner = ThreadWriter.create(
        master_secret=alice.master, device_key=alice.device, name="forum", policy=SAMPLE
    )
    b = join(owner, bob, role="writer")
    c = join(owner, carol, role="writer")
    b.write_data(
        [
            p.RowChange("posts", rid(b, "u"), p.UPSERT, {"text": "x"}),
            p.RowChange("posts", rid(b, "d"), p.UPSERT, {"text": "x"}),
        ]
    )
    c.write_data(
        [
            p.RowChange("posts", rid(c, "u"), p.UPSERT, {"text": "y"}),
            p.RowChange("posts", rid(c, "d"), p.UPSERT, {"text": "y"}),
        ]
    )
    sync(b.replica, owner.replica)
    sync(c.replica, owner.replica)
    if role != "writer":
        owner.set_role(b.member, role)
    sync(owner.replica, b.replica)

    observers = [owner.replica, auditor(owner.thread, alice, carol)]
    sync(owner.replica, observers[1])
    for case in CASES:
        change = _change(case, b, c)
        if hostile:
            # Straight to the others, never checked by the sender's own replica.
            op = forge(b, kind="data", payload=p.data_doc([change]))
            b.replica.ingest(op.raw)
        else:
            try:
                op = b.write_data([change])
            except WriteError:
                op = b.replica.admitted[-1]
        for observer in observers:
            observer.ingest(op.raw)
            decision = observer.decisions[op.hash]
            expected = "accepted" if EXPECTED[role][case] else "refused"
            assert decision.status == expected, (role, case, decision)
            if expected == "refused":
                assert role in decision.reason
    assert observers[0].accepted_hashes() == observers[1].accepted_hashes()
