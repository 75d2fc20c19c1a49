"""Model rows read with one plain SQL statement, for the reads every request makes (its API
token, the conversation it names).

Building an ORM query (its filter, compiler and SQL) costs 0.3-0.8 ms of Python on the node's
machine, a raw queryset about 0.15 ms, and the read itself, by an indexed key, tens of
microseconds. Rows come back as the ORM gives them: every concrete column, through the same
converters (``SQLCompiler.get_converters``: dates from SQLite's text, booleans from integers),
as ``Model.from_db`` instances, read from the database the router names for reads.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from functools import cache
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

from django.db import connections, models, router
from django.db.backends.base.base import BaseDatabaseWrapper

M = TypeVar("M", bound=models.Model)

# Per column that needs any: its place, its converters, the column expression they are given.
Converters = list[tuple[int, list[Callable[..., Any]], Any]]

# The converters of each connection (each thread has its own), by the statement's shape: asking
# Django for them cost as much as the read itself (125-190 us of a messaging request's CPU).
_converters: WeakKeyDictionary[BaseDatabaseWrapper, dict[Hashable, Converters]] = (
    WeakKeyDictionary()
)


def converters_of(
    connection: BaseDatabaseWrapper, shape: Hashable, columns: list[Any]
) -> Converters:
    """The converters of ``columns`` (ORM column expressions) on ``connection``, found once per
    connection and ``shape`` (a key naming that list of columns)."""
    known = _converters.get(connection)
    if known is None:
        known = _converters[connection] = {}
    found = known.get(shape)
    if found is None:
        found = known[shape] = [
            (i, converters, column)
            for i, column in enumerate(columns)
            if (
                converters := connection.ops.get_db_converters(column)
                + column.get_db_converters(connection)
            )
        ]
    return found


def converted(
    row: tuple[Any, ...], converters: Converters, connection: BaseDatabaseWrapper
) -> list[Any]:
    """A row's values as the ORM would give them."""
    values = list(row)
    for i, convert, column in converters:
        for converter in convert:
            values[i] = converter(values[i], column, connection)
    return values


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
    converters = converters_of(connection, model, columns)
    return [model.from_db(alias, names, converted(row, converters, connection)) for row in found]


def first(model: type[M], where: str, params: list[Any]) -> M | None:
    """The row matching ``where``, which names a key (at most one row matches), or None."""
    found = rows(model, where, params)
    return found[0] if found else None


def by_pk(model: type[M], pk: Any) -> M | None:
    return first(model, f'"{model._meta.pk.column}" = %s', [pk])
