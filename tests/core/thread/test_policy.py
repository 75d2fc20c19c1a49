"""Roles, ranks and table rules (policy.py): the strict parser and the permission checks."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from apps.core.thread import policy as policy_module
from apps.core.thread.policy import (
    ADMIN,
    MAX_ROLES,
    MAX_TABLES,
    OWNER,
    READER,
    WRITER,
    Policy,
    PolicyError,
    RoleRules,
    default_policy,
    policy_template,
    policy_template_register,
)


def role_doc(rank: int, **changes: Any) -> dict[str, Any]:
    doc = {
        "rank": rank,
        "invite": [],
        "manage": False,
        "history": True,
        "rotate": False,
        "tables": {},
    }
    doc.update(changes)
    return doc


def base_doc() -> dict[str, Any]:
    return copy.deepcopy(default_policy().to_doc())


def refused(doc: Any, match: str | None = None) -> str:
    with pytest.raises(PolicyError, match=match) as info:
        Policy.from_doc(doc)
    return str(info.value)


# --- round trip -----------------------------------------------------------------------------------


def test_default_policy_round_trips():
    policy = default_policy()
    doc = policy.to_doc()
    parsed = Policy.from_doc(doc)
    assert parsed == policy
    assert parsed.to_doc() == doc
    assert set(parsed.roles) == {OWNER, ADMIN, WRITER, READER}
    assert parsed.rank(OWNER) > parsed.rank(ADMIN) > parsed.rank(WRITER) > parsed.rank(READER)


def test_custom_policy_round_trips_through_cbor():
    from apps.core.thread import codec

    doc = base_doc()
    doc["roles"]["voter"] = role_doc(
        20, tables={"ballots": {"insert": "own", "update": "none"}, "*": {}}
    )
    doc["roles"][ADMIN]["invite"].append("voter")
    parsed = Policy.from_doc(codec.decode(codec.encode(doc), max_size=1 << 20))
    assert parsed.roles["voter"].rank == 20
    assert Policy.from_doc(parsed.to_doc()) == parsed


# --- validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize("doc", [None, [], "policy", {"v": 1}, {"roles": {}}])
def test_document_shape(doc: Any):
    refused(doc)


@pytest.mark.parametrize("version", [0, 2, "1", None])
def test_unknown_version(version: Any):
    doc = base_doc()
    doc["v"] = version
    refused(doc)


def test_extra_top_level_field():
    doc = base_doc()
    doc["extra"] = 1
    refused(doc)


@pytest.mark.parametrize("role", [OWNER, ADMIN, WRITER, READER])
def test_missing_builtin_role(role: str):
    doc = base_doc()
    del doc["roles"][role]
    for other in doc["roles"].values():
        other["invite"] = [r for r in other["invite"] if r != role]
    refused(doc, f"built-in role '{role}' is missing")


@pytest.mark.parametrize("rank", [1000, 1001, 1_000_000])
def test_owner_must_outrank_every_other_role(rank: int):
    doc = base_doc()
    doc["roles"]["boss"] = role_doc(rank)
    refused(doc, "owner must outrank")


def test_owner_equal_rank_with_admin_is_refused():
    doc = base_doc()
    doc["roles"][ADMIN]["rank"] = doc["roles"][OWNER]["rank"]
    refused(doc, "owner must outrank")


def test_unknown_invite_role():
    doc = base_doc()
    doc["roles"][WRITER]["invite"] = [READER, "guest"]
    refused(doc, "unknown roles")


@pytest.mark.parametrize(
    "name",
    [
        "Admin",
        "1st",
        "_x",
        "",
        "a" * 65,
        "with space",
        "dash-ed",
        "caf\u00e9",
        1,
        b"role",
        "reader\n",  # "$" in a regex also matches before a final newline
        "guest\n",
    ],
)
def test_bad_role_names(name: Any):
    doc = base_doc()
    doc["roles"][name] = role_doc(5)
    refused(doc, "bad role name")


def test_role_name_limits():
    doc = base_doc()
    doc["roles"]["a" * 64] = role_doc(5)
    doc["roles"]["z9_"] = role_doc(5)
    assert set(Policy.from_doc(doc).roles) >= {"a" * 64, "z9_"}


@pytest.mark.parametrize(
    "table",
    ["Notes", "1notes", "", "a" * 129, "no-tes", "**", "notes*", 5, b"notes", "notes\n", "*\n"],
)
def test_bad_table_names(table: Any):
    doc = base_doc()
    doc["roles"][WRITER]["tables"][table] = {"insert": "any"}
    refused(doc, "bad table name")


@pytest.mark.parametrize(
    "actions",
    [
        {"insert": "all"},
        {"insert": "ANY"},
        {"read": "any"},
        {"insert": None},
        {"insert": 1},
        {"insert": True},
        ["insert"],
        "any",
        None,
    ],
)
def test_bad_scopes(actions: Any):
    doc = base_doc()
    doc["roles"][WRITER]["tables"]["notes"] = actions
    refused(doc, "any/own/none")


@pytest.mark.parametrize("scope", [["any"], {"any": 1}, []])
def test_unhashable_scope_is_a_policy_error_not_a_crash(scope: Any):
    # A policy arrives inside a control op; a list or map where a scope belongs must be refused
    # like any other bad scope (payloads.control_parse only catches PolicyError).
    doc = base_doc()
    doc["roles"][WRITER]["tables"]["notes"] = {"insert": scope}
    refused(doc, "any/own/none")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("rank", "10"),
        ("rank", -1),
        ("rank", 1_000_001),
        ("rank", 1.0),
        ("rank", True),
        ("invite", "reader"),
        ("invite", [1]),
        ("invite", None),
        ("manage", 1),
        ("manage", None),
        ("history", "yes"),
        ("history", 0),
        ("rotate", "yes"),
        ("rotate", 1),
        ("tables", []),
        ("tables", None),
    ],
)
def test_wrong_types(field: str, value: Any):
    doc = base_doc()
    doc["roles"][READER][field] = value
    refused(doc, READER)


@pytest.mark.parametrize("change", ["missing", "extra"])
def test_role_fields_exact(change: str):
    doc = base_doc()
    if change == "missing":
        del doc["roles"][READER]["history"]
    else:
        doc["roles"][READER]["colour"] = "red"
    refused(doc, "needs rank, invite, manage, history, rotate, tables")


@pytest.mark.parametrize("raw", [None, [], "reader"])
def test_role_must_be_a_map(raw: Any):
    doc = base_doc()
    doc["roles"][READER] = raw
    refused(doc)


def test_role_count_limits():
    doc = base_doc()
    for i in range(MAX_ROLES - 4):
        doc["roles"][f"extra{i}"] = role_doc(1)
    assert len(Policy.from_doc(doc).roles) == MAX_ROLES
    doc["roles"]["one_more"] = role_doc(1)
    refused(doc, "roles must be a map")
    empty = base_doc()
    empty["roles"] = {}
    refused(empty, "roles must be a map")
    refused({"v": 1, "roles": []}, "roles must be a map")


def test_table_count_limits():
    doc = base_doc()
    doc["roles"][WRITER]["tables"] = {f"t{i}": {"insert": "any"} for i in range(MAX_TABLES)}
    assert len(Policy.from_doc(doc).roles[WRITER].tables) == MAX_TABLES
    doc["roles"][WRITER]["tables"]["one_more"] = {}
    refused(doc, "at most")


def test_parsed_policy_is_independent_of_the_document():
    doc = base_doc()
    parsed = Policy.from_doc(doc)
    doc["roles"][WRITER]["tables"]["*"]["delete"] = "any"
    doc["roles"][WRITER]["invite"].append(ADMIN)
    assert parsed.roles[WRITER].scope("notes", "delete") == "own"
    assert ADMIN not in parsed.roles[WRITER].invite


# --- rules ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "action", "own", "allowed"),
    [
        (OWNER, "insert", False, True),
        (OWNER, "update", False, True),
        (OWNER, "delete", False, True),
        (ADMIN, "delete", False, True),
        (WRITER, "insert", True, True),
        (WRITER, "insert", False, True),
        (WRITER, "update", True, True),
        (WRITER, "update", False, False),
        (WRITER, "delete", True, True),
        (WRITER, "delete", False, False),
        (READER, "insert", True, False),
        (READER, "update", True, False),
        (READER, "delete", True, False),
        ("stranger", "insert", True, False),
    ],
)
def test_allows_row_default_policy(role: str, action: str, own: bool, allowed: bool):
    assert default_policy().allows_row(role, "notes", action, own=own) is allowed


def test_star_table_is_the_fallback_and_named_tables_override_it():
    doc = base_doc()
    doc["roles"][WRITER]["tables"] = {
        "*": {"insert": "any", "update": "any", "delete": "any"},
        "audit": {"insert": "own"},
        "locked": {},
    }
    doc["roles"][READER]["tables"] = {"comments": {"insert": "any"}}
    policy = Policy.from_doc(doc)
    assert policy.allows_row(WRITER, "anything", "delete", own=False)
    assert policy.allows_row(WRITER, "audit", "insert", own=True)
    assert not policy.allows_row(WRITER, "audit", "insert", own=False)
    # A named table replaces "*" entirely: actions it does not list are "none".
    assert not policy.allows_row(WRITER, "audit", "update", own=True)
    assert not policy.allows_row(WRITER, "locked", "insert", own=True)
    # Without a "*" entry, unnamed tables are closed.
    assert policy.allows_row(READER, "comments", "insert", own=True)
    assert not policy.allows_row(READER, "notes", "insert", own=True)
    assert policy.roles[WRITER].scope("audit", "update") == "none"
    assert policy.roles[WRITER].scope("other", "update") == "any"


def test_may_invite_default_policy():
    policy = default_policy()
    assert policy.may_invite(OWNER, ADMIN)
    assert policy.may_invite(OWNER, READER)
    assert policy.may_invite(ADMIN, ADMIN)  # at one's own rank
    assert policy.may_invite(ADMIN, WRITER)
    assert policy.may_invite(WRITER, READER)
    assert not policy.may_invite(WRITER, WRITER)  # not listed
    assert not policy.may_invite(WRITER, ADMIN)
    assert not policy.may_invite(READER, READER)
    assert not policy.may_invite("stranger", READER)
    assert not policy.may_invite(OWNER, "stranger")
    for role in (OWNER, ADMIN, WRITER, READER):
        assert not policy.may_invite(role, OWNER)


def test_may_invite_never_owner_nor_above_own_rank_even_if_listed():
    doc = base_doc()
    doc["roles"][OWNER]["invite"].append(OWNER)
    doc["roles"]["lead"] = role_doc(60, invite=[ADMIN, WRITER, OWNER, "lead"])
    policy = Policy.from_doc(doc)
    assert not policy.may_invite(OWNER, OWNER)
    assert not policy.may_invite("lead", OWNER)
    assert not policy.may_invite("lead", ADMIN)  # listed, but ranks above the lead
    assert policy.may_invite("lead", WRITER)
    assert policy.may_invite("lead", "lead")


def test_may_manage():
    policy = default_policy()
    assert policy.may_manage(OWNER, ADMIN)
    assert policy.may_manage(ADMIN, WRITER)
    assert policy.may_manage(ADMIN, READER)
    assert not policy.may_manage(ADMIN, ADMIN)  # strictly lower only
    assert not policy.may_manage(ADMIN, OWNER)
    assert not policy.may_manage(OWNER, OWNER)
    assert not policy.may_manage(WRITER, READER)  # no manage flag
    assert not policy.may_manage(READER, READER)
    assert not policy.may_manage("stranger", READER)
    assert policy.may_manage(ADMIN, "stranger")  # an unknown role ranks below everyone


def test_may_manage_needs_the_flag_whatever_the_rank():
    doc = base_doc()
    doc["roles"]["senior"] = role_doc(900)
    doc["roles"]["mod"] = role_doc(30, manage=True)
    policy = Policy.from_doc(doc)
    assert not policy.may_manage("senior", READER)
    assert policy.may_manage("mod", READER)
    assert not policy.may_manage("mod", WRITER)


def test_rank():
    policy = default_policy()
    assert policy.rank(None) == -1
    assert policy.rank("stranger") == -1
    assert policy.rank(OWNER) == policy.roles[OWNER].rank


def test_role_rules_scope_defaults_to_none():
    rules = RoleRules(rank=1)
    assert rules.scope("notes", "insert") == "none"


# --- templates ------------------------------------------------------------------------------------


@pytest.fixture
def templates(monkeypatch: pytest.MonkeyPatch) -> dict:
    # Registrations made by a test stay in it.
    registry = dict(policy_module._TEMPLATES._factories)
    monkeypatch.setattr(policy_module._TEMPLATES, "_factories", registry)
    return registry


def test_default_template(templates: dict):
    assert policy_template("default") == default_policy()


def test_template_registry(templates: dict):
    doc = base_doc()
    doc["roles"]["voter"] = role_doc(20, tables={"ballots": {"insert": "own"}})
    voting = Policy.from_doc(doc)
    policy_template_register("voting", lambda: voting)
    assert policy_template("voting") is voting
    assert "voting" in templates
    # Each call builds the policy afresh from the factory.
    policy_template_register("fresh", default_policy)
    assert policy_template("fresh") == default_policy()


def test_unknown_template(templates: dict):
    with pytest.raises(PolicyError, match="no policy template for app 'nope'"):
        policy_template("nope")


@pytest.mark.parametrize("app", ["Voting", "", "my-app", "1app", "a" * 65, "voting\n"])
def test_bad_app_names_cannot_register(templates: dict, app: str):
    with pytest.raises(ValueError, match="bad app name"):
        policy_template_register(app, default_policy)
    assert app not in templates
