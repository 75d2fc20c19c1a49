"""A thread's roles for people: what each role can do, in words, read from the thread's policy
(so an app's own roles and a policy the owner changed are described as they are)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from apps.core.models import Thread
from apps.core.thread.policy import ANY_TABLE, OWNER, Policy, RoleRules
from apps.core.threads.pages import role_phrases
from apps.core.threads.registry import thread_database


@dataclass(frozen=True)
class RoleWords:
    role: str
    label: str  # "Admin"
    can: tuple[str, ...]  # ("can post", "can invite", ...)
    members: int  # how many members have it now


def role_label(role: str) -> str:
    return role.replace("_", " ").capitalize()


def _writes(rules: RoleRules, tables: set[str]) -> set[str]:
    return {table for table in tables if rules.scope(table, "insert") != "none"}


def _joined(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _can(
    policy: Policy, role: str, tables: set[str], widest: set[str], apps: list[str] | None
) -> tuple[str, ...]:
    rules = policy.roles[role]
    writes = _writes(rules, tables)
    said = []
    if apps is not None:  # the thread's apps say what the role does in them
        said += apps or ["can read"]
    # "Posting" is writing what the thread's top role writes; a role that may only write a
    # few of those tables (a reader's read receipts, say) reads.
    elif widest and writes >= widest:
        said.append("can post")
    elif widest and len(writes) * 2 >= len(widest):
        said.append("can post some things")
    else:
        said.append("can read")
    if apps is None and any(rules.scope(table, "delete") == "any" for table in writes):
        said.append("can delete what others posted")
    invites = [
        r for r in sorted(rules.invite, key=policy.rank, reverse=True) if policy.may_invite(role, r)
    ]
    if invites:
        said.append(f"can invite people as {_joined([role_label(r).lower() for r in invites])}")
    if rules.manage:
        said.append("can manage members")
    if not rules.history:
        said.append("sees only what is written after joining")
    return tuple(said)


def roles_in_words(thread: Thread, policy: Policy | None = None) -> list[RoleWords]:
    """Each role of the thread, highest first, with what it can do and how many have it."""
    if policy is None:
        policy = thread_database(thread.thread).replica().control.state.policy
    tables = {t for rules in policy.roles.values() for t in rules.tables if t != ANY_TABLE}
    if not tables:  # a policy of ``*`` rules only
        tables = {ANY_TABLE}
    top = max(policy.roles, key=policy.rank)
    widest = _writes(policy.roles[top], tables)
    counts = Counter(thread.members.values_list("role", flat=True))
    return [
        RoleWords(
            role,
            role_label(role),
            _can(policy, role, tables, widest, role_phrases(thread, role)),
            counts[role],
        )
        for role in sorted(policy.roles, key=policy.rank, reverse=True)
        if role != OWNER or counts[role]
    ]
