"""Model rows read with one plain SQL statement, for the reads every request makes (its API
token, the conversation it names).

Building an ORM query (its filter, compiler and SQL) costs 0.3-0.8 ms of Python on the node's
machine, a raw queryset about 0.15 ms, and the read itself, by an indexed key, tens of
microseconds. Rows come back as the ORM gives them: every concrete column, through the same
converters (``SQLCompiler.get_converters``: dates from SQLite's text, booleans from integers),
as ``Model.from_db`` instances, read from the database the router names for reads.
"""

from __future__ import annotations

from functools import cache
from typing import Any, TypeVar

from django.db import connections, models, router

M = TypeVar("M", bound=models.Model)


@cache
def _shape(model: type[models.Model]) -> tuple[str, list[str], list[Any]]:
    meta = model._meta
    fields = meta.concrete_fields
    columns = ", ".join(f'"{field.column}"' for field in fields)
    select = f'SELECT {columns} FROM "{meta.db_table}"'  # noqa: S608 - the model's own names
    return select, [field.attname for field in fields], [f.get_col(meta.db_table) for f in fields]


def rows(model: type[M], where: str, params: list[Any]) -> list[M]:
    """``model``'s rows matching ``where`` (SQL with ``%s`` placeholders, the model's column
    names), as model instances."""
    select, names, columns = _shape(model)
    alias = router.db_for_read(model)
    connection = connections[alias]
    with connection.cursor() as cursor:
        cursor.execute(f"{select} WHERE {where}", params)
        found = cursor.fetchall()
    if not found:
        return []
    # The converters of this thread's connection (each thread has its own).
    converters = [
        (i, converters, column)
        for i, column in enumerate(columns)
        if (
            converters := connection.ops.get_db_converters(column)
            + column.get_db_converters(connection)
        )
    ]
    instances = []
    for row in found:
        values = list(row)
        for i, convert, column in converters:
            for converter in convert:
                values[i] = converter(values[i], column, connection)
        instances.append(model.from_db(alias, names, values))
    return instances


def first(model: type[M], where: str, params: list[Any]) -> M | None:
    """The row matching ``where``, which names a key (at most one row matches), or None."""
    found = rows(model, where, params)
    return found[0] if found else None


def by_pk(model: type[M], pk: Any) -> M | None:
    return first(model, f'"{model._meta.pk.column}" = %s', [pk])
