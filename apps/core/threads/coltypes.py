"""Row rules every replica applies to data ops: every value has its column's type, by the schema
version the op's author wrote against.

A data op names, for each app whose tables it touches, that app's schema version: the name of
its newest migration in the author's code. Every replica judges the rows against the models
*as of that migration* (Django's migration state, the same on every node that has the
migration), so nodes running different releases decide alike. A node whose code does not know
the version (it is behind) does not decide: the op waits, and is decided after the upgrade.

The checks are what the SQLite columns and Django's converters need, so that applying an
accepted op never fails and pages never read a value of the wrong type: integers within the
column's range, text for text (and within ``max_length``), dates and times in the exact form
Django stores them, the 32 hexadecimal digits of a UUID, 0/1 for booleans, NULL only where the
column allows it. The primary key must have the model's key type too.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from django.apps import apps as django_apps
from django.db import models
from django.utils.dateparse import parse_date, parse_datetime, parse_time

from apps.core.replicated import replicated_tables
from apps.core.thread import payloads as p
from apps.core.thread.data import Wait

Check = Callable[[Any], str | None]

INTEGER_RANGES = {
    "SmallIntegerField": (-32768, 32767),
    "IntegerField": (-2147483648, 2147483647),
    "BigIntegerField": (-9223372036854775808, 9223372036854775807),
    "PositiveBigIntegerField": (0, 9223372036854775807),
    "PositiveSmallIntegerField": (0, 32767),
    "PositiveIntegerField": (0, 2147483647),
    "DurationField": (-9223372036854775808, 9223372036854775807),
}
TEXT_TYPES = {
    "CharField",
    "TextField",
    "SlugField",
    "EmailField",
    "URLField",
    "FilePathField",
    "FileField",
    "ImageField",
    "GenericIPAddressField",
    "IPAddressField",
}
_UUID_HEX = re.compile(r"\A[0-9a-f]{32}\Z")


def _text(limit: int | None) -> Check:
    def check(value: Any) -> str | None:
        if type(value) is not str:
            return "expected text"
        if limit is not None and len(value) > limit:
            return f"longer than {limit} characters"
        return None

    return check


def _integer(low: int, high: int) -> Check:
    def check(value: Any) -> str | None:
        if type(value) is not int:
            return "expected an integer"
        if not low <= value <= high:
            return f"out of the range {low}..{high}"
        return None

    return check


def _parsed(parse: Callable[[str], Any], what: str) -> Check:
    def check(value: Any) -> str | None:
        if type(value) is not str or len(value) > 64:
            return f"expected a {what}"
        try:
            ok = parse(value) is not None
        except ValueError:
            ok = False
        return None if ok else f"expected a {what}"

    return check


def _uuid(value: Any) -> str | None:
    if type(value) is not str or not _UUID_HEX.match(value):
        return "expected a UUID as 32 lowercase hexadecimal digits"
    return None


def _boolean(value: Any) -> str | None:
    if type(value) is bool or (type(value) is int and value in (0, 1)):
        return None
    return "expected a boolean"


def _number(value: Any) -> str | None:
    if type(value) in (int, float):
        return None
    return "expected a number"


def _bytes(value: Any) -> str | None:
    return None if type(value) is bytes else "expected bytes"


def _json(value: Any) -> str | None:
    if type(value) is not str:
        return "expected JSON text"
    try:
        json.loads(value)
    except ValueError:
        return "expected JSON text"
    return None


def _unsupported(value: Any) -> str | None:
    return "this column type is not replicated"


def field_check(field: models.Field) -> Check:
    """The check of one column's stored values, NULL included."""
    kind = field.get_internal_type()
    target = field
    if kind == "ForeignKey":
        target = field.target_field  # type: ignore[attr-defined]
        kind = target.get_internal_type()
    if kind in INTEGER_RANGES:
        base = _integer(*INTEGER_RANGES[kind])
    elif kind in TEXT_TYPES:
        base = _text(getattr(target, "max_length", None))
    elif kind == "UUIDField":
        base = _uuid
    elif kind == "BooleanField":
        base = _boolean
    elif kind in ("FloatField", "DecimalField"):
        base = _number
    elif kind == "DateTimeField":
        base = _parsed(parse_datetime, "date and time")
    elif kind == "DateField":
        base = _parsed(parse_date, "date")
    elif kind == "TimeField":
        base = _parsed(parse_time, "time")
    elif kind == "BinaryField":
        base = _bytes
    elif kind == "JSONField":
        base = _json
    else:
        base = _unsupported
    nullable = field.null

    def check(value: Any) -> str | None:
        if value is None:
            return None if nullable else "NULL in a column that does not allow it"
        return base(value)

    return check


class TableRules:
    """The checks of one table at one schema version."""

    def __init__(self, model: type[models.Model]) -> None:
        fields = model._meta.local_concrete_fields
        self.columns = {f.column: field_check(f) for f in fields if not f.primary_key}
        pk = model._meta.pk
        self.pk = field_check(pk)
        self.pk_column = pk.column

    def check(self, change: p.RowChange) -> str | None:
        problem = self.pk(change.pk)
        if problem:
            return f"row id {change.pk!r}: {problem}"
        for column, value in change.cols.items():
            check = self.columns.get(column)
            if check is None:
                if column == self.pk_column:
                    if value != change.pk:
                        return f"column {column}: a row keeps its id"
                    continue
                return f"unknown column {column!r}"
            problem = check(value)
            if problem:
                return f"column {column}: {problem}"
        return None


def _leaves() -> dict[str, str]:
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(None, ignore_no_migrations=True)
    return {app: name for app, name in loader.graph.leaf_nodes()}


_lock = threading.Lock()


@cache
def current_versions() -> dict[str, str]:
    """app label -> this code's schema version of each replicated app."""
    labels = {m._meta.app_label for m in replicated_tables().values()}
    leaves = _leaves()
    return {label: leaves.get(label, "none") for label in labels}


@cache
def _table_apps() -> dict[str, str]:
    return {table: model._meta.app_label for table, model in replicated_tables().items()}


@cache
def _current_rules() -> dict[str, TableRules]:
    return {table: TableRules(model) for table, model in replicated_tables().items()}


def _historical(app: str, version: str) -> dict[str, TableRules] | None:
    """The rules of ``app``'s tables at migration ``version`` (None: this code does not know it)."""
    with _lock:
        return _historical_cached(app, version)


@cache
def _historical_cached(app: str, version: str) -> dict[str, TableRules] | None:
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(None, ignore_no_migrations=True)
    if (app, version) not in loader.graph.nodes:
        return None
    state = loader.project_state((app, version), at_end=True)
    rules = {}
    for model in state.apps.get_app_config(app).get_models():
        rules[model._meta.db_table] = TableRules(model)
    return rules


def schema_of(tables: set[str]) -> dict[str, str]:
    """The schema versions a local write touching ``tables`` declares."""
    versions, apps_of = current_versions(), _table_apps()
    return {apps_of[t]: versions[apps_of[t]] for t in tables if t in apps_of}


def row_rules(change: p.RowChange, action: str, schema: Mapping[str, str]) -> str | Wait | None:
    """``data.RowRules`` for this node's replicated apps (see the module docstring)."""
    table = change.table
    app = _table_apps().get(table)
    if app is None:
        # A table this code does not have: perhaps of an app it does not run, or dropped.
        for named, version in schema.items():
            if named in current_versions() or django_apps.is_installed(named):
                rules = _historical(named, version)
                if rules is not None and table in rules:
                    return rules[table].check(change)
        return Wait(f"table {table} belongs to no app version this node knows")
    version = schema.get(app)
    if version is None:
        return f"the op names no schema version of app {app!r}"
    if version == current_versions().get(app):
        return _current_rules()[table].check(change)
    historical = _historical(app, version)
    if historical is None:
        return Wait(f"app {app!r} version {version!r} is newer than this node's code")
    if table not in historical:
        return f"app {app!r} at {version!r} has no table {table!r}"
    return historical[table].check(change)


def fill_value(field: models.Field) -> Any:
    """What a column holds in a row whose writes never set it: the field's constant default,
    else the zero of its type (never a callable's result: every replica must agree)."""
    default = field.default if field.has_default() else None
    if isinstance(default, bool):
        return int(default)  # SQLite stores booleans as 0/1
    if isinstance(default, int | float | str | bytes) and field_check(field)(default) is None:
        return default
    if field.null:
        return None
    kind = field.get_internal_type()
    if kind == "ForeignKey":
        kind = field.target_field.get_internal_type()  # type: ignore[attr-defined]
    if kind in INTEGER_RANGES or kind in ("BooleanField",):
        return 0
    if kind in ("FloatField", "DecimalField"):
        return 0.0
    if kind == "UUIDField":
        return "0" * 32
    if kind == "DateTimeField":
        return "1970-01-01 00:00:00"
    if kind == "DateField":
        return "1970-01-01"
    if kind == "TimeField":
        return "00:00:00"
    if kind == "BinaryField":
        return b""
    if kind == "JSONField":
        return "null"
    return ""
