"""Per-column last-writer-wins over accepted row changes (DESIGN §7), as plain dicts.

A cell keeps the value with the highest stamp (hybrid clock, device, position in the op); a delete
leaves a row tombstone. A row exists when some upsert is later than its latest tombstone, and then
shows every cell's latest value: an update concurrent with a delete, and later than it, brings the
whole row back (an insert always writes every column, so every cell has a value). The result
depends on the set of changes only, not on their order. The thread database backend does the same
in SQL (``apps/core/threads/rows.py``); this is the reference it is tested against.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from apps.core.thread.hlc import Stamp
from apps.core.thread.op import Op
from apps.core.thread.payloads import UPSERT, RowChange

CellStamp = tuple[Stamp, bytes, int]
Rows = dict[str, dict[Any, dict[str, Any]]]


def materialize(accepted: Iterable[tuple[Op, list[RowChange]]]) -> Rows:
    cells: dict[tuple[str, Any], dict[str, tuple[CellStamp, Any]]] = {}
    upserted: dict[tuple[str, Any], CellStamp] = {}
    tombstones: dict[tuple[str, Any], CellStamp] = {}
    for op, changes in accepted:
        for index, change in enumerate(changes):
            stamp = (op.hlc, op.device, index)
            key = (change.table, change.pk)
            if change.action == UPSERT:
                if key not in upserted or stamp > upserted[key]:
                    upserted[key] = stamp
                row = cells.setdefault(key, {})
                for column, value in change.cols.items():
                    if column not in row or stamp > row[column][0]:
                        row[column] = (stamp, value)
            elif key not in tombstones or stamp > tombstones[key]:
                tombstones[key] = stamp
    rows: Rows = {}
    for key, last_upsert in upserted.items():
        tomb = tombstones.get(key)
        if tomb is not None and tomb > last_upsert:
            continue
        table, pk = key
        rows.setdefault(table, {})[pk] = {
            column: value for column, (_s, value) in cells[key].items()
        }
    return rows
