"""This node's own writes in a thread, and what became of each (issue 9, defect 14).

A local write is answered as soon as this node has signed it, stored it and accepted it. The
thread's other replicas check it again when it reaches them, and a change this node had not yet
seen when it wrote (its member's removal, a demotion, the revocation of this device) makes every
replica refuse it, this one too once the change arrives: the restriction rule of ADR 7, which is
what stops a removed member from backdating. A refused op changes nothing anywhere, but it stays
in the log with its decision, and this node can still open its own ops. So nothing is lost
silently: its author can see every write that did not make it, why, and what it said.

Reads only, on the thread's ``sereus_ops``: this device's ops along the log's (device, seq)
index, newest first, a page at a time; only the ops of a page are decoded and opened.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from apps.core.replicated import replicated_tables
from apps.core.thread import codec, crypto
from apps.core.thread import payloads as p
from apps.core.thread.op import KIND_DATA, MAX_OP_SIZE, Op, op_decode

if TYPE_CHECKING:
    from apps.core.threads.database import ThreadDatabase

State = Literal["accepted", "refused", "opaque", "waiting"]
STATES: tuple[State, ...] = ("accepted", "refused", "opaque", "waiting")
PAGE = 50
MAX_PAGE = 200
RECENT = 64  # ops a request looks through for the one it wrote (it and its neighbours' writes)

# The core gives its refusals as sentences for engineers. Pages and API clients need to know
# which kind of refusal it is, to say it in words a person understands; the kinds, matched on
# the core's wording (first match wins). A reason matched by none is "other", still shown.
REFUSAL_KINDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("not_member", re.compile(r"is not a member where this op stands")),
    ("not_admitted", re.compile(r"device is not certified|thread does not exist where")),
    ("equivocated", re.compile(r"equivocated|signed two different ops")),
    ("old_key", re.compile(r"^epoch \d+ is older than|no usable key epoch")),
    ("not_owner", re.compile(r"^role \S+ may not \w+ others' rows")),
    ("role", re.compile(r"^role \S+ may not \w+ own rows")),
    ("gone", re.compile(r": delete of a missing row$")),
    ("unreadable", re.compile(r"does not open with the key|payload:")),
    ("inconsistent", re.compile(r"clock stamp is not after|deps|depends on an op")),
    ("invalid", re.compile(r"^\w+: (unknown columns|an insert without)")),
)

# What each kind means, in words for the thread's pages (apps say it their own way).
REFUSAL_TEXT = {
    "not_member": "You were no longer a member of this thread when this was written (you had "
    "been removed, or this device had been disconnected from it).",
    "not_admitted": "This device was not yet part of the thread when this was written.",
    "equivocated": "This device sent two different versions of its history (for example after "
    "an old backup was restored), so the thread no longer accepts what it sends from there on.",
    "old_key": "This was locked with a key the thread had already replaced.",
    "not_owner": "This changed something that belongs to another member.",
    "role": "Your role in this thread does not allow this change.",
    "gone": "What this changed had already been deleted.",
    "unreadable": "The other members could not read this: it was damaged or badly sealed.",
    "inconsistent": "This device's history was out of order when this was written.",
    "invalid": "This was not in a form the thread accepts (perhaps an app version mismatch).",
    "other": "The thread did not accept this.",
}
REMOVED_TEXT = "You had been removed from this thread when this was written."


@dataclass(frozen=True)
class RowWrite:
    """One row a write changed, as the op's payload says."""

    table: str
    row: str | int  # the row's primary key (bytes keys as hex)
    action: Literal["insert", "update", "delete"]
    values: dict[str, Any]  # the columns written (none for a delete)


@dataclass(frozen=True)
class Write:
    """One op this node wrote in the thread: its place, time, decision and contents."""

    op: str  # the op's hash, hex
    seq: int  # its place in this device's chain (newer is higher)
    at: datetime  # the author's clock when it was written (the op's hybrid-clock stamp)
    state: State
    reason: str  # the core's reason when refused (or opaque); "" otherwise
    refusal: str  # the kind of refusal (REFUSAL_KINDS), "" unless refused
    # None when this node cannot open it (its master secret is locked, or the key is gone).
    changes: tuple[RowWrite, ...] | None

    @property
    def reason_text(self) -> str:
        return refusal_text(self.refusal)


@dataclass(frozen=True)
class WritesPage:
    writes: list[Write]  # newest first
    next: int | None  # pass as ``before`` for the next (older) page; None: this was the last


def refusal_kind(reason: str) -> str:
    """The kind of a refusal reason of the core (``other`` when none matches)."""
    return next((kind for kind, pattern in REFUSAL_KINDS if pattern.search(reason)), "other")


def refusal_text(kind: str, removed: bool = False) -> str:
    """A kind of refusal in words for the thread's pages; ``removed``: this node's member is
    out of the thread now, so "no longer a member" was its removal."""
    if not kind:
        return ""
    if kind == "not_member" and removed:
        return REMOVED_TEXT
    return REFUSAL_TEXT.get(kind, REFUSAL_TEXT["other"])


def _device(database: ThreadDatabase) -> bytes:
    return bytes(database.node.device.verify_key)


def _state_filter(state: str | None) -> tuple[str, tuple]:
    if state is None:
        return "", ()
    if state not in STATES:
        raise ValueError(f"state must be one of {', '.join(STATES)}")
    if state == "waiting":
        # Held by the core until it can decide (a newer core records "waiting"), or not yet
        # decided at all: either way not accepted yet, and not refused.
        return " AND (status IS NULL OR status = 'waiting')", ()
    return " AND status = ?", (state,)


# Every query names ``place = 'log'`` so that SQLite can use the log's partial (device, seq)
# index: the rows of one device, in seq order, without touching anyone else's ops.
_MINE = "FROM sereus_ops WHERE device = ? AND place = 'log' AND kind = ?"


def writes_list(
    database: ThreadDatabase,
    *,
    state: str | None = None,
    before: int | None = None,
    limit: int = PAGE,
) -> WritesPage:
    """This node's writes in the thread, newest first; ``state`` keeps one state only,
    ``before`` (a ``next`` of the previous page) continues to older ones."""
    limit = max(1, min(limit, MAX_PAGE))
    where, params = _state_filter(state)
    if before is not None:
        where += " AND seq < ?"
        params += (before,)
    rows = (
        database.raw()
        .execute(
            f"SELECT raw, status, reason {_MINE}{where} ORDER BY seq DESC LIMIT ?",
            (_device(database), KIND_DATA, *params, limit + 1),
        )
        .fetchall()
    )
    page = _writes(database, rows[:limit])
    return WritesPage(page, page[-1].seq if len(rows) > limit else None)


def write_find(database: ThreadDatabase, op: str | bytes) -> Write | None:
    """One of this node's writes by its op hash (hex or bytes); None if it is not one."""
    try:
        op_hash = op if isinstance(op, bytes) else bytes.fromhex(op)
    except ValueError:
        return None
    row = (
        database.raw()
        .execute(
            f"SELECT raw, status, reason {_MINE} AND hash = ?",
            (_device(database), KIND_DATA, op_hash),
        )
        .fetchone()
    )
    return _writes(database, [row])[0] if row else None


def writes_count(database: ThreadDatabase, *, state: str = "refused") -> int:
    """How many of this node's writes are in ``state``."""
    where, params = _state_filter(state)
    return (
        database.raw()
        .execute(f"SELECT count(*) {_MINE}{where}", (_device(database), KIND_DATA, *params))
        .fetchone()[0]
    )


def writes_head(database: ThreadDatabase) -> int:
    """The seq of this node's newest op in the thread (0: none yet). Taken before a write,
    it tells ``write_of_row`` which ops came after."""
    row = (
        database.raw()
        .execute(
            "SELECT max(seq) FROM sereus_ops WHERE device = ? AND place = 'log'",
            (_device(database),),
        )
        .fetchone()
    )
    return row[0] or 0


def write_of_row(
    database: ThreadDatabase,
    *,
    table: str,
    pk: str | int | None = None,
    after: int,
    first: bool = False,
) -> Write | None:
    """The write of this node that changed the row (any row of ``table`` if ``pk`` is None):
    the newest one after seq ``after`` (what a request that took ``writes_head`` just wrote;
    other requests may have written meanwhile, hence the row). If none came after (a repeated
    request that wrote nothing), the write that made the row (``first``) or last changed it,
    from the row's accepted changes."""
    rows = (
        database.raw()
        .execute(
            f"SELECT raw, status, reason {_MINE} AND seq > ? ORDER BY seq DESC LIMIT ?",
            (_device(database), KIND_DATA, after, RECENT),
        )
        .fetchall()
    )
    for write in _writes(database, rows):
        if any(c.table == table and (pk is None or c.row == pk) for c in write.changes or ()):
            return write
    if pk is None:
        return None
    mine = _device(database)
    events = database.raw().execute(
        "SELECT device, seq FROM sereus_rowevents WHERE tbl = ? AND pk = ? ORDER BY hlc",
        (table, pk),
    )
    ours = [(bytes(device) == mine, seq) for device, seq in events]
    if first:
        ours = ours[:1]  # the row's maker: this node, or nobody here
    seq = next((seq for is_mine, seq in reversed(ours) if is_mine), None)
    if seq is None:
        return None
    row = (
        database.raw()
        .execute(f"SELECT raw, status, reason {_MINE} AND seq = ?", (mine, KIND_DATA, seq))
        .fetchone()
    )
    return _writes(database, [row])[0] if row else None


# -- decoding and opening --------------------------------------------------------------------


def _writes(database: ThreadDatabase, rows: Iterable[tuple]) -> list[Write]:
    decoded = [(op_decode(raw), status, reason) for raw, status, reason in rows]
    keys = _data_keys(database, {op.epoch for op, _, _ in decoded})
    return [
        _write(op, status, reason or "", keys.get(op.epoch, ())) for op, status, reason in decoded
    ]


def _data_keys(database: ThreadDatabase, epochs: set[int]) -> dict[int, list[bytes]]:
    """The data keys this node holds for ``epochs``. Which keys op an own op used is not
    recorded, and need not be: the AEAD opens a body only with its own key."""
    if not epochs:
        return {}
    found: dict[int, list[bytes]] = {}
    with database.lock:  # the keyring grows while ops are ingested
        keyring = database.replica().keyring
        for known in keyring.by_keys_op.values():
            for epoch_keys in known:
                if epoch_keys.epoch in epochs and epoch_keys.data is not None:
                    found.setdefault(epoch_keys.epoch, []).append(epoch_keys.data)
    return found


def _write(op: Op, status: str | None, reason: str, keys: Iterable[bytes]) -> Write:
    state: State = status if status in STATES else "waiting"  # type: ignore[assignment]
    return Write(
        op=op.hash.hex(),
        seq=op.seq,
        at=datetime.fromtimestamp(op.hlc.millis / 1000, tz=UTC),
        state=state,
        reason=reason if state in ("refused", "opaque") else "",
        refusal=refusal_kind(reason) if state == "refused" else "",
        changes=_open(op, keys),
    )


def _open(op: Op, keys: Iterable[bytes]) -> tuple[RowWrite, ...] | None:
    opened = crypto.aead_open_first(keys, op.body, op.header_bytes())
    if opened is None:
        return None
    try:
        parsed = p.data_parse(codec.decode(opened[1], max_size=MAX_OP_SIZE, canonical=False))
    except (codec.DecodeError, p.PayloadError):
        return None
    # ``data_parse`` gives the row changes, or (newer core) a payload that holds them.
    rows = getattr(parsed, "rows", parsed)
    return tuple(_row_write(change) for change in rows)


def _row_write(change: p.RowChange) -> RowWrite:
    row = change.pk.hex() if isinstance(change.pk, bytes) else change.pk
    if change.action == p.DELETE:
        return RowWrite(change.table, row, "delete", {})
    # This node's own upsert carries every column when it inserted the row, and only the
    # columns it changed otherwise; a row's key never changes, so the key column is there
    # exactly when the row was new (a table of more than 62 columns always sends them all).
    model = replicated_tables().get(change.table)
    key = model._meta.pk.column if model is not None else "id"
    return RowWrite(
        change.table, row, "insert" if key in change.cols else "update", dict(change.cols)
    )


# -- in words ------------------------------------------------------------------------------------

_VERBS = {"insert": "added", "update": "changed", "delete": "deleted"}


def write_summary(write: Write) -> str:
    """What a write did, for a person: "Added a message and an attachment"."""
    if write.changes is None:
        return "A change this node cannot open now"
    counts: dict[tuple[str, str], int] = {}
    for change in write.changes:
        key = (change.action, change.table)
        counts[key] = counts.get(key, 0) + 1
    parts: list[str] = []
    verb = None
    for (action, table), count in counts.items():
        noun = _noun(table, count)
        said = _VERBS[action]
        parts.append(noun if said == verb else f"{said} {noun}")
        verb = said
    text = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return text[:1].upper() + text[1:]


def _noun(table: str, count: int) -> str:
    model = replicated_tables().get(table)
    if model is None:
        return f"{count} row{'' if count == 1 else 's'} of an app this node does not have"
    if count > 1:
        return f"{count} {model._meta.verbose_name_plural}"
    name = str(model._meta.verbose_name)
    return ("an " if name[:1] in "aeiou" else "a ") + name


# -- a row's history ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowVersion:
    """One accepted write of a row, as its signed op says: who, when, what it set."""

    at: datetime  # the op's hybrid-clock stamp
    member: bytes  # the author's member key
    action: Literal["insert", "update", "delete"]
    values: dict[str, Any]  # the columns the op set (none for a delete)


def row_history(database: ThreadDatabase, table: str, pk: str | int) -> list[RowVersion]:
    """Every accepted write of one row, oldest first, read back from the signed ops (not from
    columns anyone could fill in): an edit history no member can rewrite or hide."""
    rows = (
        database.raw()
        .execute(
            "SELECT o.raw, e.member FROM sereus_rowevents e"
            " JOIN sereus_ops o ON o.device = e.device AND o.seq = e.seq AND o.place = 'log'"
            " WHERE e.tbl = ? AND e.pk = ? ORDER BY e.hlc",
            (table, pk),
        )
        .fetchall()
    )
    decoded = [(op_decode(raw), bytes(member)) for raw, member in rows]
    keys = _data_keys(database, {op.epoch for op, _ in decoded})
    found = []
    for op, member in decoded:
        changes = _open(op, keys.get(op.epoch, ())) or ()
        for change in changes:
            if change.table == table and str(change.row) == str(pk):
                at = datetime.fromtimestamp(op.hlc.millis / 1000, tz=UTC)
                found.append(RowVersion(at, member, change.action, change.values))
    return found
