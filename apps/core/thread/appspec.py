"""Apps in a thread: what an app brings to a thread's policy, and the policy they compose.

A thread is created for one app (its policy is that app's template) and may enable more: a poll
in a conversation, a checklist in a group. Enabling is a control op carrying the app's **spec**,
so every replica composes the same policy from the op set alone (a validator never reads what
this node happens to have installed):

- ``tables``: the app's tables, each named ``<app>_...`` (Django's default table names), so two
  apps never claim one table;
- ``rules``: per existing role, the scopes of insert/update/delete on those tables (roles are
  shared: an owner is an owner in every app);
- ``roles``: roles the app adds (a voter, a follower) with their rank, who may invite at them,
  whether they read history, and whether a multi-use invite may grant them;
- ``ordered``: tables whose rows are judged one by one in the thread's order by the app's
  validator (ADR 15), and ``closes``: close tables, whose rows close a scope of an ordered table.

A disabled app's tables keep their owner: writing them is refused ("the app is not enabled")
until the app is enabled again. Composition is a pure function of the base policy (from the
create op or the last ``set_policy``) and the enabled specs in enable order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from apps.core.thread.named import Named
from apps.core.thread.policy import (
    ACTIONS,
    BUILTIN_ROLES,
    NAME_RE,
    OWNER,
    SCOPES,
    TABLE_RE,
    Policy,
    RoleRules,
)

MAX_APPS = 32
MAX_APP_TABLES = 64
MAX_APP_ROLES = 8


class AppSpecError(ValueError):
    """An app spec that is not valid; the message says why."""


@dataclass(frozen=True)
class AppRole:
    """A role an app adds to the threads that enable it."""

    rank: int
    invited_by: frozenset[str] = frozenset()  # roles that may invite (and admit) at this role
    history: bool = True
    open: bool = False  # whether a multi-use invite may grant it


@dataclass(frozen=True, slots=True)
class Closing:
    """A close table's target: the ordered table whose scopes its rows close, and the target's
    column that names a row's scope (a close row's own column ``scope`` names the value)."""

    target: str
    scope: str


@dataclass(frozen=True)
class AppSpec:
    app: str
    tables: frozenset[str]
    rules: Mapping[str, Mapping[str, Mapping[str, str]]] = field(default_factory=dict)
    roles: Mapping[str, AppRole] = field(default_factory=dict)
    ordered: frozenset[str] = frozenset()
    closes: Mapping[str, Closing] = field(default_factory=dict)

    def to_doc(self) -> dict[str, Any]:
        return {
            "v": 1,
            "tables": sorted(self.tables),
            "rules": {
                role: {table: dict(actions) for table, actions in tables.items()}
                for role, tables in self.rules.items()
            },
            "roles": {
                name: {
                    "rank": r.rank,
                    "invited_by": sorted(r.invited_by),
                    "history": r.history,
                    "open": r.open,
                }
                for name, r in self.roles.items()
            },
            "ordered": sorted(self.ordered),
            "closes": {t: {"target": c.target, "scope": c.scope} for t, c in self.closes.items()},
        }

    @classmethod
    def from_doc(cls, app: str, doc: Any) -> AppSpec:
        """Parse and check a spec from an op: any flaw refuses the whole spec."""
        if type(app) is not str or not NAME_RE.match(app):
            raise AppSpecError(f"bad app name {app!r}")
        fields = {"v", "tables", "rules", "roles", "ordered", "closes"}
        if type(doc) is not dict or doc.keys() != fields or doc["v"] != 1:
            raise AppSpecError("app spec: expected {v: 1, tables, rules, roles, ordered, closes}")
        tables = _names(doc["tables"], "tables", MAX_APP_TABLES, TABLE_RE)
        if not tables:
            raise AppSpecError("app spec: an app has at least one table")
        for table in tables:
            if not table.startswith(app + "_"):
                raise AppSpecError(f"app spec: table {table!r} is not named {app}_...")
        ordered = _names(doc["ordered"], "ordered", MAX_APP_TABLES, TABLE_RE)
        if not ordered <= tables:
            raise AppSpecError("app spec: ordered tables must be the app's tables")
        return cls(
            app=app,
            tables=tables,
            rules=_rules(doc["rules"], tables),
            roles=_roles(doc["roles"]),
            ordered=ordered,
            closes=_closes(doc["closes"], ordered),
        )


def _names(value: Any, what: str, limit: int, pattern) -> frozenset[str]:
    if type(value) is not list or len(value) > limit:
        raise AppSpecError(f"app spec: {what} must be a list of at most {limit} names")
    if any(type(v) is not str or not pattern.match(v) for v in value):
        raise AppSpecError(f"app spec: {what} holds a name that is not valid")
    if len(set(value)) != len(value):
        raise AppSpecError(f"app spec: {what} names something twice")
    return frozenset(value)


def _rules(value: Any, tables: frozenset[str]) -> dict[str, dict[str, dict[str, str]]]:
    if type(value) is not dict or len(value) > 32:
        raise AppSpecError("app spec: rules must map at most 32 roles to table rules")
    rules: dict[str, dict[str, dict[str, str]]] = {}
    for role, by_table in value.items():
        if type(role) is not str or not NAME_RE.match(role):
            raise AppSpecError(f"app spec: bad role name {role!r}")
        if type(by_table) is not dict:
            raise AppSpecError(f"app spec: the rules of role {role!r} must be a map of tables")
        parsed: dict[str, dict[str, str]] = {}
        for table, actions in by_table.items():
            if table not in tables:
                raise AppSpecError(f"app spec: role {role!r} has rules for a table not the app's")
            if (
                type(actions) is not dict
                or not set(actions) <= set(ACTIONS)
                or any(type(s) is not str or s not in SCOPES for s in actions.values())
            ):
                raise AppSpecError(
                    f"app spec: table {table!r} of role {role!r} maps insert/update/delete "
                    "to any/own/none"
                )
            parsed[table] = dict(actions)
        rules[role] = parsed
    return rules


def _roles(value: Any) -> dict[str, AppRole]:
    if type(value) is not dict or len(value) > MAX_APP_ROLES:
        raise AppSpecError(f"app spec: an app adds at most {MAX_APP_ROLES} roles")
    roles = {}
    for name, raw in value.items():
        if type(name) is not str or not NAME_RE.match(name) or name in BUILTIN_ROLES:
            raise AppSpecError(f"app spec: {name!r} cannot be an app's role")
        if type(raw) is not dict or raw.keys() != {"rank", "invited_by", "history", "open"}:
            raise AppSpecError(f"app spec: role {name!r} needs rank, invited_by, history, open")
        rank = raw["rank"]
        if type(rank) is not int or not 0 <= rank <= 1_000_000:
            raise AppSpecError(f"app spec: role {name!r} rank must be 0..1000000")
        if type(raw["history"]) is not bool or type(raw["open"]) is not bool:
            raise AppSpecError(f"app spec: role {name!r} history and open are booleans")
        by = _names(raw["invited_by"], f"role {name!r} invited_by", 32, NAME_RE)
        roles[name] = AppRole(rank=rank, invited_by=by, history=raw["history"], open=raw["open"])
    return roles


def _closes(value: Any, ordered: frozenset[str]) -> dict[str, Closing]:
    if type(value) is not dict or len(value) > MAX_APP_TABLES:
        raise AppSpecError("app spec: closes must map close tables to their target")
    closes = {}
    for table, raw in value.items():
        if table not in ordered:
            raise AppSpecError(f"app spec: close table {table!r} must be an ordered table")
        if type(raw) is not dict or raw.keys() != {"target", "scope"}:
            raise AppSpecError(f"app spec: close table {table!r} needs target and scope")
        target, scope = raw["target"], raw["scope"]
        if target not in ordered or target == table:
            raise AppSpecError(f"app spec: close table {table!r} must close another ordered table")
        if type(scope) is not str or not NAME_RE.match(scope):
            raise AppSpecError(f"app spec: close table {table!r} names a bad scope column")
        closes[table] = Closing(target=target, scope=scope)
    return closes


# -- composition -----------------------------------------------------------------------------


def compose(base: Policy, specs: Iterable[AppSpec], owners: Mapping[str, str]) -> Policy:
    """The policy in force: ``base`` with the enabled apps' roles and table rules added.

    ``owners`` maps every table some app of the thread ever declared to that app: tables of
    apps not enabled now are ``foreign`` (writes to them are refused by name)."""
    specs = list(specs)
    if not specs and not owners:
        return base
    roles = dict(base.roles)
    for spec in specs:
        for name, added in spec.roles.items():
            if name in roles:
                continue  # roles are shared: an app never redefines one
            roles[name] = RoleRules(rank=added.rank, history=added.history, open=added.open)
            for inviter in added.invited_by:
                if inviter in roles:
                    rules = roles[inviter]
                    roles[inviter] = replace(rules, invite=rules.invite | {name})
        for role, tables in spec.rules.items():
            if role in roles:
                rules = roles[role]
                roles[role] = replace(rules, tables={**rules.tables, **tables})
    enabled = {spec.app for spec in specs}
    return Policy(
        roles=roles,
        ordered=frozenset().union(*(spec.ordered for spec in specs)),
        closes={t: c for spec in specs for t, c in spec.closes.items()},
        foreign={table: app for table, app in owners.items() if app not in enabled},
    )


def spec_problem(spec: AppSpec, policy: Policy, owners: Mapping[str, str]) -> str | None:
    """Why ``spec`` cannot be enabled under ``policy`` (the composed one), or None."""
    for table in sorted(spec.tables):
        owner = owners.get(table, spec.app)
        if owner != spec.app:
            return f"table {table} belongs to the {owner} app"
    owner_rank = policy.rank(OWNER)
    for name, role in spec.roles.items():
        if name not in policy.roles and role.rank >= owner_rank:
            return f"the app's role {name!r} would not rank below the owner"
    return None


# -- this node's apps ------------------------------------------------------------------------

_SPECS: Named[AppSpec] = Named(
    lambda app: AppSpecError(f"this node has no app {app!r} to enable in a thread")
)


# App -> the one thread shape (the app a thread was created for) it belongs to, for apps that
# are part of a shape rather than something any thread may add (a tally's ledger rules).
_SHAPED: dict[str, str] = {}


def thread_app_register(
    app: str, factory: Callable[[], AppSpec], *, only_in: str | None = None
) -> None:
    """Apps that can be enabled in threads register their spec (in ``AppConfig.ready``);
    ``only_in``: only in threads created for that app, by this node's own services."""
    _SPECS.register(app, factory)
    if only_in is not None:
        _SHAPED[app] = only_in


def shaped(app: str) -> bool:
    """Whether the app is part of a thread shape (not something a thread adds)."""
    return app in _SHAPED


def thread_apps(shape: str | None = None) -> list[str]:
    """The apps this node can enable in a thread (of this shape: the app it was created for)."""
    return [app for app in _SPECS.names() if _SHAPED.get(app, shape) == shape]


def thread_app_spec(app: str) -> AppSpec:
    return _SPECS.make(app)
