"""The record's audit log, for the patient (issue 16 §5): who joined, left or was removed, which
invites were made and revoked, which grants were given, changed and revoked, every entry written
or changed and by whom, and every use of an emergency link. Newest first, in words.

Everything but the emergency link comes from the signed ops, not from columns anyone could fill
in: membership from the control fold this node's replica made (``control.order`` with each op's
decision and action), grants from the grant rows' own history (``writes.row_history``), entries
from the row events the replica records for every accepted write (``sereus_rowevents``: table,
row, stamp, author, upsert or delete). Emergency links are this node's own records (they never
replicate): made here, opened here.

Entries are cheap to page: the control ops, grants and emergency records are few and read whole;
the row events, which grow with the record, are read newest first and only as far as the page
asked for goes (one SQL query, the row's first event found by the events' primary key).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from apps.core.models import Thread
from apps.core.thread import payloads as p
from apps.core.threads.names import Names, thread_names
from apps.core.threads.registry import thread_database
from apps.core.threads.writes import row_history
from apps.medical import fhir
from apps.medical.access import ROLE_NAMES, types_words
from apps.medical.policy import GRANT, RESOURCE_TABLES

PAGE = 100
MAX_PAGE = 500
SENSITIVE = "sensitive"  # ``AuditEntry.part`` of what happened in the sensitive part

# The kinds a page filters on, in words.
KINDS = {
    "access": "Joined, left or removed",
    "invite": "Invites",
    "grant": "What people may do",
    "write": "Entries written or changed",
    "emergency": "Emergency summary",
}


@dataclass(frozen=True)
class AuditEntry:
    """One thing that happened to the record: ``who`` did ``what`` (a phrase that follows the
    name: "joined as a provider"), when, of which kind."""

    at: datetime
    who: str  # "you", "Dr. Lee", "someone" (an emergency link's opener)
    what: str
    kind: str  # a key of KINDS
    member: str = ""  # who, hex ("" for someone outside the record): for the person filter
    about: str = ""  # the member the event concerns, hex (a removal's, a grant's)
    part: str = ""  # "" the record itself, "sensitive" its sensitive part
    slug: str = ""  # an entry's type slug and id, for a link to it
    fhir_id: str = ""


@dataclass(frozen=True)
class AuditPage:
    entries: list[AuditEntry]
    page: int
    has_next: bool
    people: list[tuple[str, str]] = field(default_factory=list)  # (member hex, name) to filter


def _at(millis: int) -> datetime:
    return datetime.fromtimestamp(millis / 1000, tz=UTC)


def _an(words: str) -> str:
    return ("an " if words[:1] in "aeiou" else "a ") + words


def _names(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _quoted(label: str) -> str:
    return f" “{label}”" if label else ""


# -- membership, invites, keys: the control fold ------------------------------------------------


def _control_entries(
    thread: Thread, names: Names, part: str, members: dict[str, str]
) -> list[AuditEntry]:
    """What the control ops of ``thread`` say, in words. ``members`` maps this thread's member
    keys to the record's (the sensitive part's keys differ: derived per thread)."""
    database = thread_database(thread.thread)
    with database.lock:
        control = database.replica().control
        order = list(control.order)
        decided = [
            (op, control.actions.get(op.hash))
            for op in order
            if getattr(control.decisions.get(op.hash), "status", "") == "accepted"
        ]
        timeline = control.timeline
        authors = {op.hash: timeline.device_member_in_past(op.device, op) for op, _ in decided}
        invites = dict(control.state.invites)
    found: list[AuditEntry] = []
    epochs: dict[int, set[bytes]] = {}  # epoch -> the members its keys were sealed to

    def person(member: bytes | None) -> tuple[str, str]:
        if member is None:
            return "", "someone"
        key = members.get(member.hex(), member.hex())
        return key, names[key]

    for op, action in decided:
        author, who = person(authors.get(op.hash))
        at = _at(op.hlc.millis)
        said = _said(action, invites, person, part, epochs)
        if said is None:
            continue
        kind, what, about, subject = said
        if subject is not None:  # the phrase is about someone else than the op's author
            author, who = subject
        found.append(AuditEntry(at, who, what, kind, author, about, part))
    return found


def _said(
    action: Any, invites: dict, person: Any, part: str, epochs: dict[int, set[bytes]]
) -> tuple[str, str, str, tuple[str, str] | None] | None:
    """(kind, phrase, about member, the phrase's own subject if not the author) of a control
    action; None for what the patient need not read (addresses, names, apps)."""
    where = "the sensitive part of the record" if part else "the record"
    if isinstance(action, p.Create):
        return "access", f"started {where}", "", None
    if isinstance(action, p.RedeemInvite):
        invite = invites.get(action.invite)
        role = ROLE_NAMES.get(invite.role, invite.role) if invite else "member"
        label = _quoted(invite.label) if invite else ""
        about, _ = person(action.member)
        return "access", f"joined {where} as {_an(role)}{label}", about, person(action.member)
    if isinstance(action, p.AddMember):
        about, name = person(action.member)
        role = ROLE_NAMES.get(action.role, action.role)
        return "access", f"added {name} to {where} as {_an(role)}", about, None
    if isinstance(action, p.RemoveMember):
        about, name = person(action.member)
        return (
            "access",
            f"removed {name} from {where}: they keep what their devices already held, and "
            "nothing written from then on reaches them",
            about,
            None,
        )
    if isinstance(action, p.Leave):
        return "access", f"left {where}", "", None
    if isinstance(action, p.SetRole):
        about, name = person(action.member)
        role = ROLE_NAMES.get(action.role, action.role)
        return "access", f"made {name} {_an(role)}", about, None
    if isinstance(action, p.TransferOwner):
        about, name = person(action.member)
        return "access", f"handed {where} over to {name}", about, None
    if isinstance(action, p.CertifyDevice):
        about, _ = person(action.member)
        return "access", "added another device", about, person(action.member)
    if isinstance(action, p.RevokeDevice):
        return "access", "disconnected a device", "", None
    if isinstance(action, p.CreateInvite):
        role = ROLE_NAMES.get(action.role, action.role)
        until = _at(action.expiry).strftime("%-d %b %Y, %H:%M UTC")
        to = " to the sensitive part" if part else ""
        what = f"made an invite{to} for {_an(role)}{_quoted(action.label)}, valid until {until}"
        return "invite", what, "", None
    if isinstance(action, p.RevokeInvite):
        invite = invites.get(action.invite)
        label = _quoted(invite.label) if invite else ""
        to = " to the sensitive part" if part else ""
        return "invite", f"revoked the invite{to}{label}: it no longer lets anyone in", "", None
    if isinstance(action, p.SetMeta):
        return "access", f"renamed {where} “{action.name}”", "", None
    if isinstance(action, p.Keys):
        # A join starts a new epoch too (sealed to the newcomer as well); a new epoch that
        # leaves out members the one before was sealed to is what shuts them out.
        sealed = set(action.seals)
        before = epochs.get(action.epoch - 1)
        known = epochs.setdefault(action.epoch, sealed)
        if known is not sealed:  # the same epoch sealed again (for a newcomer)
            known |= sealed
            return None
        dropped = sorted(person(m)[1] for m in (before or set()) - sealed)
        if not dropped:
            return None
        return (
            "access",
            f"replaced the key of {where}, so that {_names(dropped)} cannot read what is "
            "written from then on",
            "",
            None,
        )
    return None


# -- grants: the grant rows' own history ---------------------------------------------------------


def _grant_entries(thread: Thread, names: Names) -> list[AuditEntry]:
    database = thread_database(thread.thread)
    pks = [
        pk
        for (pk,) in database.raw().execute(
            "SELECT DISTINCT pk FROM sereus_rowevents WHERE tbl = ?", (GRANT,)
        )
    ]
    found = []
    for pk in pks:
        state: dict[str, Any] = {}
        for version in row_history(database, GRANT, pk):
            before = dict(state)
            state.update(version.values)
            grantee = str(state.get("grantee") or "")
            author = version.member.hex()
            what = _grant_words(version.action, before, state, names, grantee)
            if what:
                found.append(AuditEntry(version.at, names[author], what, "grant", author, grantee))
    return found


def _types(value: Any) -> list[str]:
    try:
        found = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return []
    return [str(t) for t in found] if isinstance(found, list) else []


def _day(millis: Any) -> str:
    return _at(millis).strftime("%-d %b %Y") if isinstance(millis, int) else ""


def _terms(state: dict[str, Any]) -> str:
    words = (
        f"reads {types_words(_types(state.get('read')))}, "
        f"adds {types_words(_types(state.get('write')))}"
    )
    start, end = _day(state.get("start")), _day(state.get("end"))
    if start and end:
        words += f", from {start} to {end}"
    elif start:
        words += f", from {start}"
    elif end:
        words += f", until {end}"
    if state.get("sensitive") in (True, 1):
        words += ", also the sensitive part"
    return words


def _grant_words(
    action: str, before: dict[str, Any], state: dict[str, Any], names: Names, grantee: str
) -> str:
    name = names.get(grantee, "someone")
    label = _quoted(str(state.get("label") or ""))
    if action == "delete":
        return f"deleted what {name} may do"
    if action == "insert":
        return f"gave {name}{label} access: {_terms(state)}"
    if state.get("status") == "revoked" and before.get("status") != "revoked":
        return f"revoked {name}'s access"
    if before.get("status") == "revoked" and state.get("status") == "active":
        return f"gave {name}{label} access again: {_terms(state)}"
    return f"changed what {name}{label} may do: {_terms(state)}"


# -- entries: the row events of the resource tables ----------------------------------------------


def _write_entries(
    thread: Thread,
    names: Names,
    part: str,
    members: dict[str, str],
    *,
    member: str | None,
    limit: int,
) -> list[AuditEntry]:
    """The newest ``limit`` writes of entries (of ``member`` only, a record member key, if
    given), newest first."""
    database = thread_database(thread.thread)
    where, params = "", ()
    if member is not None:
        theirs = [bytes.fromhex(k) for k, v in members.items() if v == member] or [
            bytes.fromhex(member)
        ]
        where = f" AND e.member IN ({', '.join('?' * len(theirs))})"
        params = tuple(theirs)
    marks = ", ".join("?" * len(RESOURCE_TABLES))
    query = (
        "SELECT e.tbl, e.pk, e.hlc, e.member, e.action, EXISTS (SELECT 1 FROM "  # noqa: S608
        "sereus_rowevents f WHERE f.tbl = e.tbl AND f.pk = e.pk AND f.hlc < e.hlc) "
        f"FROM sereus_rowevents e WHERE e.tbl IN ({marks}){where} "  # only marks
        "ORDER BY e.hlc DESC LIMIT ?"
    )
    rows = database.raw().execute(query, (*RESOURCE_TABLES, *params, limit)).fetchall()
    shown = _displays(database.alias, rows)
    found = []
    for table, pk, hlc, author, action, earlier in rows:
        kind = fhir.TYPE_BY_TABLE.get(table)
        if kind is None:
            continue
        key = members.get(bytes(author).hex(), bytes(author).hex())
        display, fhir_id = shown.get((table, str(pk)), ("", ""))
        noun = _an(kind.label) if kind.name != "Patient" else "the patient details"
        if action == "delete":
            what = f"deleted {noun}"
            fhir_id = ""
        else:
            what = f"{'changed' if earlier else 'added'} {noun}"
            if display and kind.name != "Patient":
                what += f": {display}"
        if part:
            what += " (in the sensitive part)"
        found.append(
            AuditEntry(
                _at(int.from_bytes(bytes(hlc)[:8], "big")),
                names[key],
                what,
                "write",
                key,
                "",
                part,
                kind.slug if fhir_id else "",
                fhir_id,
            )
        )
    return found


def _displays(alias: str, rows: Iterable[tuple]) -> dict[tuple[str, str], tuple[str, str]]:
    """(table, pk) -> (display, fhir_id) of the rows as they stand, one query per table."""
    by_table: dict[str, set[str]] = {}
    for table, pk, *_ in rows:
        by_table.setdefault(table, set()).add(str(pk))
    found: dict[tuple[str, str], tuple[str, str]] = {}
    for table, pks in by_table.items():
        kind = fhir.TYPE_BY_TABLE.get(table)
        if kind is None:
            continue
        model = kind.model()
        for pk, display, fhir_id in (
            model.objects.using(alias).filter(pk__in=pks).values_list("pk", "display", "fhir_id")
        ):
            found[(table, getattr(pk, "hex", str(pk)))] = (display, fhir_id)
    return found


# -- the emergency link: this node's own records --------------------------------------------------


def _emergency_entries(thread: Thread) -> list[AuditEntry]:
    try:
        from apps.medical.models import EmergencyLink, EmergencyOpen
    except ImportError:  # pragma: no cover - the app without its emergency links
        return []
    opens: Iterable[Any]
    try:
        from apps.medical.emergency import emergency_opens

        opens = emergency_opens(thread)
    except ImportError:
        opens = EmergencyOpen.objects.filter(link__thread=thread)
    found = []
    for link in EmergencyLink.objects.filter(thread=thread):
        until = link.expires_at.strftime("%-d %b %Y, %H:%M UTC")
        what = f"made an emergency link, valid until {until}"
        if link.revoked:
            what += " (since revoked)"
        found.append(AuditEntry(link.created_at, "you", what, "emergency", thread.member_id))
    for opened in opens:
        where = f" from {opened.address}" if opened.address else ""
        what = (
            f"opened your emergency summary with the right passcode{where}"
            if opened.ok
            else f"tried a wrong passcode on your emergency link{where}"
        )
        found.append(AuditEntry(opened.at, "someone", what, "emergency"))
    return found


# -- together ------------------------------------------------------------------------------------


def _companion(thread: Thread) -> tuple[Thread | None, dict[str, str]]:
    """The sensitive part as this node holds it, and its member keys -> the record's (the same
    person's devices are the same in both)."""
    from apps.medical import selectors

    companion = selectors.sensitive_of(thread)
    if companion is None or companion.state not in (
        Thread.State.ACTIVE,
        Thread.State.REMOVED,
        Thread.State.LEFT,
    ):
        return None, {}
    owners = {}
    for candidate in (thread, companion):
        database = thread_database(candidate.thread)
        with database.lock:
            devices = database.replica().control.state.devices
            owners[candidate.id] = {d: s.member.hex() for d, s in devices.items()}
    mapping = {
        member: owners[thread.id][device]
        for device, member in owners[companion.id].items()
        if device in owners[thread.id]
    }
    return companion, mapping


def _newest_first(entries: list[AuditEntry]) -> list[AuditEntry]:
    """Events given oldest first, newest first; those of the same moment later first."""
    return sorted(entries, key=lambda e: e.at)[::-1]


def audit_log(
    thread: Thread,
    *,
    kind: str | None = None,
    member: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[AuditEntry]:
    """The record's log, newest first; ``kind`` (a key of KINDS) and ``member`` (hex: what they
    did or what concerned them) narrow it; ``limit``/``offset`` page it."""
    names = thread_names(thread, me_as="you")
    companion, mapping = _companion(thread)
    wanted = None if limit is None else offset + limit
    # Each source in its own order of events (the control fold's, a grant's versions, ...):
    # events of the same millisecond keep it once merged, newest first.
    sources: list[list[AuditEntry]] = []
    if kind in (None, "access", "invite"):
        sources.append(_control_entries(thread, names, "", {}))
        if companion is not None:
            sources.append(_control_entries(companion, names, SENSITIVE, mapping))
    if kind in (None, "grant"):
        sources.append(_grant_entries(thread, names))
    if kind in (None, "emergency") and thread.role == "owner":
        sources.append(_emergency_entries(thread))
    entries = [e for source in sources for e in _newest_first(source)]
    if kind is not None:
        entries = [e for e in entries if e.kind == kind]
    if member is not None:
        entries = [e for e in entries if member in (e.member, e.about)]
    if kind in (None, "write"):  # newest first already (by stamp)
        many = wanted if wanted is not None else 2**31
        entries += _write_entries(thread, names, "", {}, member=member, limit=many)
        if companion is not None:
            entries += _write_entries(
                companion, names, SENSITIVE, mapping, member=member, limit=many
            )
    entries.sort(key=lambda e: e.at, reverse=True)  # stable: ties keep the order above
    return entries[offset:wanted]


def audit_people(thread: Thread) -> list[tuple[str, str]]:
    """Everyone the log may name, to filter on: (member hex, name), "you" first."""
    names = thread_names(thread, me_as="you")
    database = thread_database(thread.thread)
    with database.lock:
        members = list(database.replica().control.timeline.member_events)
    people = sorted(
        ((m.hex(), names[m.hex()]) for m in members),
        key=lambda p: (p[0] != thread.member_id, p[1].casefold()),
    )
    return people


def audit_page(
    thread: Thread,
    *,
    kind: str | None = None,
    member: str | None = None,
    page: int = 1,
    per_page: int = PAGE,
) -> AuditPage:
    """One page of the log (``page`` from 1), and whether an older one follows."""
    page = max(1, page)
    per_page = max(1, min(per_page, MAX_PAGE))
    found = audit_log(
        thread, kind=kind, member=member, limit=per_page + 1, offset=(page - 1) * per_page
    )
    return AuditPage(found[:per_page], page, len(found) > per_page, audit_people(thread))
