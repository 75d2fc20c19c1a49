"""The integrity check of a thread's tables: the rows its op log says they hold
(``ThreadDatabase.rebuild_check`` replays the log) against the rows they hold.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from apps.core.replicated import replicated_tables
from apps.core.threads import schema


@dataclass(frozen=True)
class RebuildReport:
    """What ``rebuild_check`` found: the first differences, and whether a repair removed them."""

    ops: int
    rows: int
    matches: bool
    differences: list[str]
    repaired: bool = False


def live_rows(connection: sqlite3.Connection) -> dict[str, dict[Any, dict[str, Any]]]:
    """Every row of the replicated tables, as stored: table -> pk -> column -> value."""
    live: dict[str, dict[Any, dict[str, Any]]] = {}
    for table, model in replicated_tables().items():
        cols = schema.columns(model)
        pk_index = cols.index(model._meta.pk.column)
        select = ", ".join(f'+"{c}"' for c in cols)
        rows = {}
        for row in connection.execute(f'SELECT {select} FROM "{table}"'):
            rows[row[pk_index]] = dict(zip(cols, row, strict=True))
        if rows:
            live[table] = rows
    return live


def rows_diff(expected: dict, live: dict) -> list[str]:
    """Each row or column where the live tables differ from what the log says, in words."""
    out = []
    for table in sorted(set(expected) | set(live)):
        want, have = expected.get(table, {}), live.get(table, {})
        for pk in sorted(set(want) | set(have), key=repr):
            if pk not in have:
                out.append(f"{table} {pk!r}: missing from the live table")
            elif pk not in want:
                out.append(f"{table} {pk!r}: in the live table but not in the log")
            else:
                for column, value in want[pk].items():
                    if have[pk].get(column) != value:
                        out.append(
                            f"{table} {pk!r}.{column}: log says {value!r}, table has "
                            f"{have[pk].get(column)!r}"
                        )
    return out
