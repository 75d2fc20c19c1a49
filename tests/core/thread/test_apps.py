"""Several apps in one thread (issue 10): enabling and disabling an app is a control op checked
by every replica at its causal place; the policy in force is the base policy composed with the
enabled apps' specs; writes to a table of an app that is not enabled are refused everywhere."""

from __future__ import annotations

import random

import pytest

from apps.core.thread import payloads as p
from apps.core.thread.appspec import AppRole, AppSpec, AppSpecError, compose
from apps.core.thread.codec import encode
from apps.core.thread.lww import materialize
from apps.core.thread.policy import default_policy
from apps.core.thread.writer import ThreadWriter, WriteError
from apps.messaging.policy import messaging_policy
from tests.core.thread.conftest import auditor, forge, join, rid, sync

TASKS = AppSpec(
    app="tasks",
    tables=frozenset({"tasks_item", "tasks_vote"}),
    rules={
        "owner": {"tasks_item": {"insert": "any", "update": "any", "delete": "any"}},
        "admin": {"tasks_item": {"insert": "any", "update": "any", "delete": "any"}},
        "writer": {"tasks_item": {"insert": "any", "update": "own", "delete": "own"}},
        "voter": {"tasks_vote": {"insert": "any", "update": "own"}},
    },
    roles={"voter": AppRole(rank=20, invited_by=frozenset({"admin", "owner"}), history=False)},
)


def item(writer: ThreadWriter, name: str, text: str = "buy milk") -> p.RowChange:
    return p.RowChange("tasks_item", rid(writer, name), p.UPSERT, {"text": text})


def messaging_thread(alice) -> ThreadWriter:
    return ThreadWriter.create(
        master_secret=alice.master,
        device_key=alice.device,
        name="chat",
        app="messaging",
        policy=messaging_policy(),
    )


def test_a_table_of_an_app_the_thread_has_not_enabled_is_refused_by_name(alice, bob):
    owner = messaging_thread(alice)
    member = join(owner, bob)
    with pytest.raises(WriteError, match="this thread has no table tasks_item"):
        member.write_data([item(member, "a")])
    owner.control(p.EnableApp(TASKS))
    sync(owner.replica, member.replica)
    member.write_data([item(member, "b")])
    owner.control(p.DisableApp("tasks"))
    sync(owner.replica, member.replica)
    with pytest.raises(WriteError, match="the tasks app is not enabled in this thread"):
        member.write_data([item(member, "c")])
    # Every replica decides the same: the rows of the enabled time stay, nothing else.
    replica = auditor(owner.thread, alice, bob)
    sync(member.replica, replica)
    rows = materialize(replica.accepted_data())
    assert set(rows["tasks_item"]) == {rid(member, "b")}
    assert replica.snapshot().apps == (("messaging", ""),)


def test_only_roles_that_manage_the_thread_enable_or_disable_apps(alice, bob, carol):
    owner = ThreadWriter.create(master_secret=alice.master, device_key=alice.device, name="t")
    writer = join(owner, bob, role="writer")
    admin = join(owner, carol, role="admin")
    # A modified node signs an enable op its own rules would not let it write.
    forged = forge(writer, kind="control", payload=p.control_doc(p.EnableApp(TASKS)))
    for replica in (owner.replica, admin.replica, auditor(owner.thread, alice, bob, carol)):
        sync(owner.replica, replica)
        replica.ingest(forged.raw)
        decision = replica.decision(forged.hash)
        assert decision.status == "refused"
        assert decision.reason == "only roles that manage the thread enable apps"
        assert "tasks" not in dict(replica.snapshot().apps)
    writer.replica.ingest(forged.raw)  # its own node keeps it (and signs on after it)
    sync(writer.replica, admin.replica)
    admin.control(p.EnableApp(TASKS))
    disable = forge(writer, kind="control", payload=p.control_doc(p.DisableApp("tasks")))
    admin.replica.ingest(disable.raw)
    assert admin.replica.decision(disable.hash).reason == (
        "only roles that manage the thread disable apps"
    )
    assert "tasks" in dict(admin.replica.snapshot().apps)


def test_the_app_a_thread_was_made_for_cannot_be_disabled(alice):
    owner = messaging_thread(alice)
    with pytest.raises(WriteError, match="cannot be disabled"):
        owner.control(p.DisableApp("messaging"))
    with pytest.raises(WriteError, match="the tasks app is not enabled"):
        owner.control(p.DisableApp("tasks"))


def test_an_app_adds_its_roles_and_its_rules_to_the_policy(alice, bob):
    owner = ThreadWriter.create(master_secret=alice.master, device_key=alice.device, name="t")
    member = join(owner, bob, role="reader")
    with pytest.raises(WriteError, match="the policy has no role 'voter'"):
        owner.set_role(member.member, "voter")
    owner.control(p.EnableApp(TASKS))
    owner.set_role(member.member, "voter")
    sync(owner.replica, member.replica)
    vote = p.RowChange("tasks_vote", rid(member, "v"), p.UPSERT, {"yes": True})
    member.write_data([vote])
    with pytest.raises(WriteError, match="role voter may not insert"):
        member.write_data([item(member, "x")])
    policy = member.replica.control.state.policy
    assert policy.rank("voter") == 20
    assert "voter" in policy.roles["admin"].invite
    assert policy.roles["voter"].history is False


def test_an_app_cannot_take_another_apps_table_or_outrank_the_owner(alice):
    owner = ThreadWriter.create(master_secret=alice.master, device_key=alice.device, name="t")
    owner.control(p.EnableApp(AppSpec(app="a", tables=frozenset({"a_b_rows"}))))
    thief = AppSpec(app="a_b", tables=frozenset({"a_b_rows"}))
    with pytest.raises(WriteError, match="table a_b_rows belongs to the a app"):
        owner.control(p.EnableApp(thief))
    boss = AppSpec(app="boss", tables=frozenset({"boss_x"}), roles={"boss": AppRole(rank=5000)})
    with pytest.raises(WriteError, match="would not rank below the owner"):
        owner.control(p.EnableApp(boss))
    with pytest.raises(WriteError, match="already enabled"):
        owner.control(p.EnableApp(AppSpec(app="a", tables=frozenset({"a_b_rows"}))))


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        ({**TASKS.to_doc(), "tables": ["other_item"]}, "is not named tasks_"),
        ({**TASKS.to_doc(), "ordered": ["tasks_nothing"]}, "ordered tables must be"),
        ({**TASKS.to_doc(), "tables": []}, "at least one table"),
        ({**TASKS.to_doc(), "roles": {"owner": {}}}, "cannot be an app's role"),
        (
            {**TASKS.to_doc(), "rules": {"writer": {"messaging_message": {"insert": "any"}}}},
            "not the app's",
        ),
        ({**TASKS.to_doc(), "v": 2}, "expected {v: 1"),
        (
            {**TASKS.to_doc(), "closes": {"tasks_item": {"target": "tasks_vote", "scope": "x"}}},
            "must be an ordered table",
        ),
    ],
)
def test_a_bad_spec_is_refused_with_its_flaw(doc, problem):
    with pytest.raises(AppSpecError, match=problem):
        AppSpec.from_doc("tasks", doc)
    with pytest.raises(p.PayloadError, match=problem):
        p.control_parse({"type": "enable_app", "app": "tasks", "spec": doc})


def test_a_spec_survives_its_op_unchanged():
    doc = p.control_doc(p.EnableApp(TASKS))
    assert p.control_parse(doc) == p.EnableApp(TASKS)
    assert encode(p.control_doc(p.control_parse(doc))) == encode(doc)


def test_composition_without_apps_is_the_base_policy():
    base = default_policy()
    assert compose(base, [], {}) is base
    composed = compose(base, [TASKS], {"tasks_item": "tasks", "tasks_vote": "tasks"})
    assert composed.foreign == {}
    assert compose(base, [], {"tasks_item": "tasks"}).foreign == {"tasks_item": "tasks"}


def test_a_write_that_did_not_see_the_disable_still_counts_everywhere(alice, bob):
    owner = ThreadWriter.create(master_secret=alice.master, device_key=alice.device, name="t")
    member = join(owner, bob)
    owner.control(p.EnableApp(TASKS))
    sync(owner.replica, member.replica)
    # Partitioned: the owner disables the app while the member, unaware, adds an item.
    disable = owner.control(p.DisableApp("tasks"))
    concurrent = member.write_data([item(member, "late")])
    sync(owner.replica, member.replica)
    sync(member.replica, owner.replica)
    after = member.replica.ingest(disable.raw)
    assert after.status == "duplicate"
    ops = list({op.hash: op for op in [*owner.replica.admitted, *member.replica.admitted]}.values())
    outcomes = set()
    for seed in range(5):
        replica = auditor(owner.thread, alice, bob)
        shuffled = list(ops)
        random.Random(seed).shuffle(shuffled)
        for op in shuffled:
            replica.ingest(op.raw)
        assert replica.decision(concurrent.hash).status == "accepted"
        outcomes.add(repr(sorted(materialize(replica.accepted_data())["tasks_item"])))
    assert len(outcomes) == 1
    with pytest.raises(WriteError, match="not enabled"):
        member.write_data([item(member, "later")])
