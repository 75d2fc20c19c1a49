"""Replicated models: Django models whose rows live in a thread's database and replicate.

Subclass ``ReplicatedModel`` and write ordinary Django code. Its rules (DESIGN §5, §7), checked by
a system check at start-up:

- the primary key is a row id that names its owner (``apps.core.thread.rowid``: the default,
  or ``row_id_for`` for a deterministic one, e.g. a ballot per voter and poll); never an
  auto-increment, which two nodes would both hand out. Who may change a row follows from its id;
- no UNIQUE constraint but the primary key, and foreign keys not enforced by the database
  (``db_constraint=False``): rows arrive from other nodes in any order, and a uniqueness rule that
  needs to hold across nodes must be a deterministic primary key;
- foreign keys only to other replicated models (rows of the same thread);
- column names a thread op can carry (lower case letters, digits, underscore).
"""

from __future__ import annotations

import uuid

from django.apps import apps
from django.core import checks
from django.db import models

from apps.core.thread.policy import NAME_RE, TABLE_RE
from apps.core.thread.rowid import row_id_new


class ProvisionalId(uuid.UUID):
    """A row id made before the row's thread was known: the insert binds it to its owner."""

    provisional = True


def row_id() -> uuid.UUID:
    """A new row's id: owned by this node's member of the current thread, or provisional when
    no thread is selected yet (``.using(...)``: the insert then binds it)."""
    from apps.core.threads.context import current_thread

    thread = current_thread()
    if thread is not None:
        from apps.core.threads.registry import thread_database

        member = thread_database(thread).member_public()
        if member is not None:
            return row_id_new(member)
    return ProvisionalId(bytes=row_id_new(bytes(32)).bytes)


class ReplicatedModel(models.Model):
    id = models.UUIDField(primary_key=True, default=row_id, editable=False)

    class Meta:
        abstract = True


def is_replicated(model: type[models.Model]) -> bool:
    return issubclass(model, ReplicatedModel) and not model._meta.abstract


def replicated_models() -> list[type[models.Model]]:
    return [m for m in apps.get_models() if is_replicated(m) and m._meta.managed]


_tables: dict[str, type[models.Model]] | None = None


def replicated_tables() -> dict[str, type[models.Model]]:
    """Table name -> replicated model (fixed once the app registry is ready)."""
    global _tables
    if _tables is None or not apps.ready:
        tables = {m._meta.db_table: m for m in replicated_models()}
        if not apps.ready:
            return tables
        _tables = tables
    return _tables


def replication_problems(model: type[models.Model]) -> list[str]:
    """Why ``model`` cannot be replicated (empty if it can)."""
    meta = model._meta
    found = []
    pk = meta.pk
    if isinstance(pk, models.AutoField | models.BigAutoField | models.SmallAutoField):
        found.append(
            "its primary key is an auto-increment: two nodes would hand out the same ids. Use "
            "the inherited UUIDv7 id or a deterministic key."
        )
    if not TABLE_RE.match(meta.db_table) or meta.db_table.startswith("sereus_"):
        found.append(f"its table name {meta.db_table!r} is not a valid thread table name")
    for field in meta.local_fields:
        if field.unique and not field.primary_key:
            found.append(
                f"field {field.name!r} is unique: replicated rows arrive in any order from "
                "several nodes, so only the primary key may be unique (make uniqueness a "
                "deterministic primary key)"
            )
        column = field.column
        if column and not NAME_RE.match(column):
            found.append(f"column {column!r} is not a valid thread column name")
        if isinstance(field, models.ForeignKey):
            if field.db_constraint:
                found.append(
                    f"foreign key {field.name!r} is enforced by the database: rows can arrive "
                    "before the rows they point to. Declare it with db_constraint=False."
                )
            target = field.related_model
            if isinstance(target, type) and not is_replicated(target):
                found.append(
                    f"foreign key {field.name!r} points to {target._meta.label}, which is not "
                    "replicated: a thread's rows may only point to rows of the same thread"
                )
    for constraint in meta.constraints:
        if isinstance(constraint, models.UniqueConstraint):
            found.append(
                f"constraint {constraint.name!r} is a UNIQUE constraint: only the primary key "
                "may be unique in a replicated table"
            )
    if meta.unique_together:
        found.append("unique_together is a UNIQUE constraint: only the primary key may be unique")
    if meta.local_many_to_many:
        found.append(
            "it has a many-to-many field: use an explicit replicated model for the relation "
            "(its rows then replicate like any other)"
        )
    return found


@checks.register(checks.Tags.models)
def check_replicated_models(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    errors = []
    for model in replicated_models():
        if app_configs is not None and model._meta.app_config not in app_configs:
            continue
        for problem in replication_problems(model):
            errors.append(
                checks.Error(
                    f"{model._meta.label} cannot be replicated: {problem}",
                    obj=model,
                    id="sereus.E001",
                )
            )
    return errors
