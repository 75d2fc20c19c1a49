"""What a data op's body says, once opened: its row changes and the schema versions of the apps
they touch. ``data_parse`` runs for every data op a replica decides (a catch-up's hottest
Python after signature checks), so it checks each field once, in the order the encoder writes
them, and remembers across ops which table and column names it has found good (a pure
function of the name: the same few names recur in every op)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apps.core.thread.payload_shape import PayloadError, _fields
from apps.core.thread.policy import NAME_RE, TABLE_RE

MAX_ROWS = 10_000
MAX_COLS = 256
PK_MAX = 128
MAX_SCHEMA_APPS = 64
UPSERT, DELETE = "upsert", "delete"


@dataclass(frozen=True)
class RowChange:
    table: str
    pk: str | bytes | int
    action: str
    cols: dict[str, Any]


_COL_SCALARS = (str, bytes, bool, float, type(None))
INT_MIN, INT_MAX = -(2**63), 2**64 - 1


def _col_value(value: Any) -> None:
    if type(value) in _COL_SCALARS:
        return
    if type(value) is int and INT_MIN <= value <= INT_MAX:
        return
    raise PayloadError(f"cols: value of type {type(value).__name__} is not a column value")


_ROW_FIELDS = frozenset({"table", "pk", "action", "cols"})
_DATA_FIELDS = frozenset({"rows", "schema"})
# Names found good (``TABLE_RE`` and not "*", ``NAME_RE``), across ops; only ``str``s go in,
# and only after their check. Bounded: a peer's endless distinct names only refill them.
_GOOD_TABLES: set[str] = set()
_GOOD_NAMES: set[str] = set()
_GOOD_MAX = 4096


@dataclass(frozen=True)
class DataPayload:
    """A data op's content: its row changes, and the schema version of each app whose tables
    they touch, as the author's code had them. Replicas judge the rows against that version's
    schema (so nodes running different releases decide alike), and a node that does not know
    the version yet waits instead of deciding."""

    rows: list[RowChange]
    schema: dict[str, str]


def _schema(value: Any) -> dict[str, str]:
    if type(value) is not dict or len(value) > MAX_SCHEMA_APPS:
        raise PayloadError(f"data schema: expected a map of at most {MAX_SCHEMA_APPS} apps")
    for app, version in value.items():
        if type(app) is not str or not NAME_RE.match(app):
            raise PayloadError(f"data schema: bad app name {app!r}")
        if type(version) is not str or not 0 < len(version) <= 128:
            raise PayloadError(f"data schema: the version of {app!r} is not a short text")
    return dict(value)


def _good_table(table: Any) -> None:
    if type(table) is not str or table == "*" or not TABLE_RE.match(table):
        raise PayloadError("row table: expected a table name")
    if len(_GOOD_TABLES) >= _GOOD_MAX:
        _GOOD_TABLES.clear()
    _GOOD_TABLES.add(table)


def _good_name(name: Any) -> None:
    if type(name) is not str or not NAME_RE.match(name):
        raise PayloadError(f"row cols: bad column name {name!r}")
    if len(_GOOD_NAMES) >= _GOOD_MAX:
        _GOOD_NAMES.clear()
    _GOOD_NAMES.add(name)


def data_parse(doc: Any) -> DataPayload:
    if type(doc) is not dict or doc.keys() != _DATA_FIELDS:
        _fields(doc, "data", set(_DATA_FIELDS))
    schema = doc["schema"]
    schema = {} if type(schema) is dict and not schema else _schema(schema)
    rows = doc["rows"]
    if type(rows) is not list or not 0 < len(rows) <= MAX_ROWS:
        raise PayloadError(f"data rows: expected 1 to {MAX_ROWS} row changes")
    good_tables, good_names = _GOOD_TABLES, _GOOD_NAMES
    changes = []
    for row in rows:
        if type(row) is not dict or row.keys() != _ROW_FIELDS:
            _fields(row, "row", set(_ROW_FIELDS))
        table = row["table"]
        # A str is looked up (a name of another type is never in the set: it is checked).
        if type(table) is not str or table not in good_tables:
            _good_table(table)
        pk = row["pk"]
        kind = type(pk)
        if not (
            ((kind is str or kind is bytes) and 0 < len(pk) <= PK_MAX)
            or (kind is int and INT_MIN <= pk <= INT_MAX)
        ):
            raise PayloadError(f"row pk: expected text or bytes of 1-{PK_MAX}, or an integer")
        action = row["action"]
        cols = row["cols"]
        if type(cols) is not dict or len(cols) > MAX_COLS:
            if action != UPSERT and action != DELETE:
                raise PayloadError("row action: expected upsert or delete")
            raise PayloadError(f"row cols: expected a map of at most {MAX_COLS} columns")
        if action == UPSERT:
            if not cols:
                raise PayloadError("row cols: an upsert carries at least one column")
        elif action == DELETE:
            if cols:
                raise PayloadError("row cols: a delete carries no columns")
        else:
            raise PayloadError("row action: expected upsert or delete")
        for name, value in cols.items():
            if type(name) is not str or name not in good_names:
                _good_name(name)
            if type(value) not in _COL_SCALARS:
                _col_value(value)
        changes.append(RowChange(table, pk, action, dict(cols)))
    return DataPayload(changes, schema)


def data_doc(changes: list[RowChange], schema: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "rows": [
            {"table": c.table, "pk": c.pk, "action": c.action, "cols": c.cols} for c in changes
        ],
        "schema": dict(schema or {}),
    }
