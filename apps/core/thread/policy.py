"""Roles and table rules: the policy is data in the thread, set at creation, changed by the owner.

Each role has a **rank** (who outranks whom), the roles it may **invite** or add members at, whether
it may **manage** members of strictly lower rank (remove, change role, revoke devices), whether it
reads **history** from before it joined, whether it may **rotate** the thread's keys (start a
new epoch sealed to every member: needed after a member leaves, before anyone can write again),
whether a multi-use invite may grant it (**open**: a link many people may use),
and per table, for insert, update and delete, a scope:
``any`` row, ``own`` rows (rows the member inserted) or ``none``. The table ``*`` applies to tables
not named. Built-in roles: owner, admin, writer, reader; apps add their own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from apps.core.thread.named import NAME_RE, Named

ACTIONS = ("insert", "update", "delete")
SCOPES = frozenset({"any", "own", "none"})
OWNER, ADMIN, WRITER, READER = "owner", "admin", "writer", "reader"
BUILTIN_ROLES = (OWNER, ADMIN, WRITER, READER)
ANY_TABLE = "*"
MAX_ROLES = 32
MAX_TABLES = 256
TABLE_RE = re.compile(r"\A(\*|[a-z][a-z0-9_]{0,127})\Z")


class PolicyError(ValueError):
    """A policy document that is not valid; the message says why."""


@dataclass(frozen=True)
class RoleRules:
    rank: int
    invite: frozenset[str] = frozenset()
    manage: bool = False
    history: bool = True
    tables: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    rotate: bool = False
    open: bool = False  # a multi-use invite may grant this role

    def scope(self, table: str, action: str) -> str:
        rules = self.tables.get(table)
        if rules is None:
            rules = self.tables.get(ANY_TABLE, {})
        return rules.get(action, "none")


@dataclass(frozen=True)
class Policy:
    roles: Mapping[str, RoleRules]
    # Derived from the thread's enabled apps (``appspec.compose``), never in a policy document:
    # tables judged in order, close tables -> (target, scope column), and tables of apps the
    # thread declared but has not enabled now -> their app.
    ordered: frozenset[str] = frozenset()
    closes: Mapping[str, Any] = field(default_factory=dict)
    foreign: Mapping[str, str] = field(default_factory=dict)

    def rank(self, role: str | None) -> int:
        rules = self.roles.get(role) if role is not None else None
        return rules.rank if rules is not None else -1

    def allows_row(self, role: str, table: str, action: str, *, own: bool) -> bool:
        rules = self.roles.get(role)
        if rules is None:
            return False
        scope = rules.scope(table, action)
        return scope == "any" or (scope == "own" and own)

    def knows(self, table: str) -> bool:
        """Whether some role has rules for ``table`` (by name or through ``*``)."""
        return any(table in r.tables or ANY_TABLE in r.tables for r in self.roles.values())

    def may_invite(self, role: str, invited_role: str) -> bool:
        """Admit a member (by invite or directly) at ``invited_role``: never above one's own."""
        rules = self.roles.get(role)
        return (
            rules is not None
            and invited_role in rules.invite
            and invited_role in self.roles
            and invited_role != OWNER
            and self.rank(invited_role) <= rules.rank
        )

    def open_roles(self) -> list[str]:
        """The roles a multi-use invite may grant (besides ``may_invite`` for its creator)."""
        return [name for name, r in self.roles.items() if r.open and name != OWNER]

    def may_manage(self, role: str, target_role: str) -> bool:
        """Remove, re-role or revoke the devices of a member: only of strictly lower rank."""
        rules = self.roles.get(role)
        return rules is not None and rules.manage and self.rank(target_role) < rules.rank

    def to_doc(self) -> dict[str, Any]:
        return {
            "v": 1,
            "roles": {
                name: {
                    "rank": r.rank,
                    "invite": sorted(r.invite),
                    "manage": r.manage,
                    "history": r.history,
                    "rotate": r.rotate,
                    "tables": {t: dict(a) for t, a in r.tables.items()},
                }
                # ``open`` only when true: a policy without open roles is written as before.
                | ({"open": True} if r.open else {})
                for name, r in self.roles.items()
            },
        }

    @classmethod
    def from_doc(cls, doc: Any) -> Policy:
        """Parse and check a policy from an op: any flaw refuses the whole policy."""
        if type(doc) is not dict or type(doc.get("v")) is not int or doc.get("v") != 1:
            raise PolicyError("policy: expected {v: 1, roles: {...}}")
        if doc.keys() != {"v", "roles"}:
            raise PolicyError("policy: expected {v: 1, roles: {...}}")
        raw_roles = doc["roles"]
        if type(raw_roles) is not dict or not 0 < len(raw_roles) <= MAX_ROLES:
            raise PolicyError(f"policy: roles must be a map of 1 to {MAX_ROLES} roles")
        roles: dict[str, RoleRules] = {}
        for name, raw in raw_roles.items():
            if type(name) is not str or not NAME_RE.match(name):
                raise PolicyError(f"policy: bad role name {name!r}")
            roles[name] = _role_from_doc(name, raw)
        for name in BUILTIN_ROLES:
            if name not in roles:
                raise PolicyError(f"policy: the built-in role {name!r} is missing")
        for name, rules in roles.items():
            unknown = rules.invite - roles.keys()
            if unknown:
                raise PolicyError(f"policy: role {name!r} invites unknown roles {sorted(unknown)}")
        owner_rank = roles[OWNER].rank
        if any(r.rank >= owner_rank for n, r in roles.items() if n != OWNER):
            raise PolicyError("policy: the owner must outrank every other role")
        return cls(roles=roles)


ROLE_FIELDS = frozenset({"rank", "invite", "manage", "history", "rotate", "tables"})


def _role_from_doc(name: str, raw: Any) -> RoleRules:
    if type(raw) is not dict or raw.keys() - {"open"} != ROLE_FIELDS:
        raise PolicyError(
            f"policy: role {name!r} needs rank, invite, manage, history, rotate, tables "
            "(and may say open)"
        )
    if "open" in raw and raw["open"] is not True:
        raise PolicyError(
            f"policy: role {name!r} open is true when present (not open: leave it out)"
        )
    rank, invite, tables = raw["rank"], raw["invite"], raw["tables"]
    if type(rank) is not int or not 0 <= rank <= 1_000_000:
        raise PolicyError(f"policy: role {name!r} rank must be 0..1000000")
    if type(invite) is not list or any(type(r) is not str for r in invite):
        raise PolicyError(f"policy: role {name!r} invite must be a list of role names")
    if any(type(raw[flag]) is not bool for flag in ("manage", "history", "rotate")):
        raise PolicyError(f"policy: role {name!r} manage, history and rotate are booleans")
    if type(tables) is not dict or len(tables) > MAX_TABLES:
        raise PolicyError(f"policy: role {name!r} tables must be a map of at most {MAX_TABLES}")
    parsed: dict[str, dict[str, str]] = {}
    for table, actions in tables.items():
        if type(table) is not str or not TABLE_RE.match(table):
            raise PolicyError(f"policy: bad table name {table!r}")
        if (
            type(actions) is not dict
            or not set(actions) <= set(ACTIONS)
            or any(type(v) is not str or v not in SCOPES for v in actions.values())
        ):
            raise PolicyError(
                f"policy: table {table!r} of role {name!r} maps insert/update/delete "
                "to any/own/none"
            )
        parsed[table] = dict(actions)
    return RoleRules(
        rank=rank,
        invite=frozenset(invite),
        manage=raw["manage"],
        history=raw["history"],
        tables=parsed,
        rotate=raw["rotate"],
        open="open" in raw,
    )


EVERYTHING = {ANY_TABLE: {"insert": "any", "update": "any", "delete": "any"}}
OWN_ROWS = {ANY_TABLE: {"insert": "any", "update": "own", "delete": "own"}}


def default_policy() -> Policy:
    """The policy of a plain thread: admins run it, writers edit their own rows, readers read."""
    return Policy(
        roles={
            OWNER: RoleRules(
                rank=1000,
                invite=frozenset({ADMIN, WRITER, READER}),
                manage=True,
                tables=EVERYTHING,
                rotate=True,
            ),
            ADMIN: RoleRules(
                rank=100,
                invite=frozenset({ADMIN, WRITER, READER}),
                manage=True,
                tables=EVERYTHING,
                rotate=True,
            ),
            WRITER: RoleRules(rank=50, invite=frozenset({READER}), tables=OWN_ROWS, rotate=True),
            # A link anyone may pass on ("open invite") can make readers, nobody more.
            READER: RoleRules(rank=10, history=False, open=True),
        }
    )


_TEMPLATES: Named[Policy] = Named(lambda app: PolicyError(f"no policy template for app {app!r}"))
# The role of an ordinary member of each app's threads: what an invite offers unless its maker
# says otherwise. Not in the thread's policy (nothing replicas judge depends on it).
_MEMBER_ROLES: dict[str, str] = {}


def policy_template_register(
    app: str, factory: Callable[[], Policy], *, member: str | None = None
) -> None:
    """Apps register the policy their threads start with (in ``AppConfig.ready``), and the role
    an ordinary member of such a thread has (``member``; see ``member_role``)."""
    _TEMPLATES.register(app, factory)
    if member is not None:
        _MEMBER_ROLES[app] = member


policy_template_register("default", default_policy, member=WRITER)


def policy_templates() -> list[str]:
    """The apps a thread can be created for."""
    return _TEMPLATES.names()


def policy_template(app: str) -> Policy:
    return _TEMPLATES.make(app)


def member_role(app: str, policy: Policy, offered: Iterable[str]) -> str | None:
    """The role to offer first when inviting into a thread of ``app`` whose policy is ``policy``,
    among the ``offered`` roles: the app's ordinary member role; where the app names none (or
    it is not offered), the least of the offered roles that may write something (a member
    takes part), else the least offered role. None when nothing is offered."""
    offered = sorted((r for r in offered if r in policy.roles), key=policy.rank)
    declared = _MEMBER_ROLES.get(app)
    if declared in offered:
        return declared
    writers = [
        r
        for r in offered
        if any(
            policy.roles[r].scope(t, a) != "none" for t in policy.roles[r].tables for a in ACTIONS
        )
    ]
    return (writers or offered or [None])[0]
