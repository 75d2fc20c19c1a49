"""The tables a thread database holds besides the app tables, and the capture triggers.

- ``sereus_ops``: the op log (every op admitted, with its decision), pending ops and fork evidence;
- ``sereus_rowevents``: accepted changes per row (who, when): what authorization needs to know
  about a row as an op's author saw it;
- ``sereus_clock``: per row, the last-writer-wins stamps (a base stamp and per-column overrides),
  the tombstone stamp and the values of a deleted row (a later concurrent update brings it back);
- ``sereus_members``: row tag -> member key, for every member ever admitted (who owns a row
  is read from its id: ``apps.core.thread.rowid``), for reads that name authors;
- ``sereus_pending``: where an older version of this code noted the changes of the open
  transaction; kept so that what such a version left there is packed (``_pack_leftovers``). The
  capture triggers now hand each change to the connection's ``sereus_row()`` function, which keeps
  it in memory until the transaction commits (a table cost a page of the file on every commit);
- ``sereus_meta``: the thread id and fingerprints of the installed schema.

Every replicated table gets three capture triggers (insert, update, delete) that fire while the
connection's ``sereus_capture()`` function says so, i.e. always except while this node applies
other nodes' ops, and note the change with ``sereus_row()``. A writer without those functions
(another program opening the file) cannot write a replicated table at all, so no change ever
escapes the log.
"""

from __future__ import annotations

from functools import cache

from django.db import models

from apps.core.replicated import replicated_models

SCHEMA_VERSION = 1
MAX_MASK_COLUMNS = 62  # the update trigger records changed columns as bits of an integer

TABLES = """
CREATE TABLE IF NOT EXISTS sereus_meta (
    key TEXT PRIMARY KEY,
    value BLOB
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sereus_ops (
    n INTEGER PRIMARY KEY,
    hash BLOB NOT NULL UNIQUE,
    device BLOB NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    raw BLOB NOT NULL,
    place TEXT NOT NULL,           -- log | pending | evidence
    status TEXT,                   -- accepted | refused | opaque (log ops, once decided)
    reason TEXT,
    refusal TEXT                   -- a static-rule refusal
);
CREATE UNIQUE INDEX IF NOT EXISTS sereus_ops_slot ON sereus_ops(device, seq) WHERE place = 'log';
CREATE TABLE IF NOT EXISTS sereus_rowevents (
    tbl TEXT NOT NULL,
    pk NOT NULL,
    hlc BLOB NOT NULL,             -- stamp order: millis, counter, device
    device BLOB NOT NULL,
    seq INTEGER NOT NULL,
    member BLOB NOT NULL,
    action TEXT NOT NULL,
    PRIMARY KEY (tbl, pk, hlc)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sereus_rowevents_op ON sereus_rowevents(device, seq);
CREATE INDEX IF NOT EXISTS sereus_ops_undecided ON sereus_ops(device, seq)
    WHERE status IN ('opaque', 'waiting') AND kind = 'data' AND place = 'log';
CREATE INDEX IF NOT EXISTS sereus_ops_refusal ON sereus_ops(n)
    WHERE refusal IS NOT NULL AND place = 'log';
CREATE TABLE IF NOT EXISTS sereus_clock (
    tbl TEXT NOT NULL,
    pk NOT NULL,
    stamp BLOB,                    -- the stamp of every column not in cols
    cols BLOB,                     -- CBOR {column: stamp} of columns written later
    tomb BLOB,                     -- the latest delete's stamp
    tomb_row BLOB,                 -- CBOR {column: value} of the row when it was deleted
    PRIMARY KEY (tbl, pk)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sereus_members (
    tag TEXT PRIMARY KEY,          -- a row tag in hex: the last 12 hex digits of the ids it owns
    member BLOB NOT NULL           -- the member key that owns them
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sereus_pending (
    tbl TEXT NOT NULL,
    pk NOT NULL,
    mask INTEGER NOT NULL,         -- -1: every column; else the changed columns' bits
    existed INTEGER NOT NULL,      -- the row existed before the transaction
    old BLOB                       -- a deleted row's values (CBOR), from sereus_row()
);
"""


@cache
def columns(model: type[models.Model]) -> list[str]:
    """The model's columns in table order (a model's fields are fixed once loaded)."""
    return [f.column for f in model._meta.local_concrete_fields]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def trigger_sql(model: type[models.Model]) -> list[str]:
    table = model._meta.db_table
    pk = model._meta.pk.column
    cols = columns(model)
    t, tl, pkq = _q(table), _literal(table), _q(pk)
    if len(cols) <= MAX_MASK_COLUMNS:
        mask = " | ".join(
            f"(CASE WHEN NEW.{_q(c)} IS NOT OLD.{_q(c)} THEN {1 << i} ELSE 0 END)"
            for i, c in enumerate(cols)
        )
    else:
        mask = "-1"
    old_values = ", ".join(f"OLD.{_q(c)}" for c in cols)
    name = table.replace('"', "")
    return [
        f'DROP TRIGGER IF EXISTS "sereus_ai_{name}"',
        f'DROP TRIGGER IF EXISTS "sereus_au_{name}"',
        f'DROP TRIGGER IF EXISTS "sereus_ad_{name}"',
        f'DROP TRIGGER IF EXISTS "sereus_pk_{name}"',
        f'CREATE TRIGGER "sereus_ai_{name}" AFTER INSERT ON {t} WHEN sereus_capture() BEGIN '
        f"SELECT sereus_row({tl}, NEW.{pkq}, -1, 0); END",
        f'CREATE TRIGGER "sereus_au_{name}" AFTER UPDATE ON {t} WHEN sereus_capture() BEGIN '
        f"SELECT sereus_row({tl}, NEW.{pkq}, {mask}, 1); END",
        f'CREATE TRIGGER "sereus_ad_{name}" AFTER DELETE ON {t} WHEN sereus_capture() BEGIN '
        f"SELECT sereus_row({tl}, OLD.{pkq}, 0, 1, {old_values}); END",
        f'CREATE TRIGGER "sereus_pk_{name}" BEFORE UPDATE OF {pkq} ON {t} '
        f"WHEN NEW.{pkq} IS NOT OLD.{pkq} BEGIN "
        "SELECT RAISE(ABORT, 'a replicated row keeps its primary key'); END",
    ]


def all_trigger_sql() -> list[str]:
    return [sql for model in replicated_models() for sql in trigger_sql(model)]
