"""The database router: replicated models to the current thread's database, the rest to default.

A replicated model never falls back to ``default`` and a node model never goes to a thread
database: a mistake here would put a thread's rows where they do not replicate, or a node's
private data where it would.
"""

from __future__ import annotations

from typing import Any

from django.db import DEFAULT_DB_ALIAS, models

from apps.core.replicated import is_replicated
from apps.core.threads.context import NoCurrentThread, current_thread


def is_thread_alias(alias: str) -> bool:
    return alias.startswith("thread_")


class ThreadRouter:
    def _thread_alias(self, model: type[models.Model], hints: dict[str, Any]) -> str:
        instance = hints.get("instance")
        if instance is not None and instance._state.db and is_thread_alias(instance._state.db):
            return instance._state.db
        thread = current_thread()
        if thread is None:
            raise NoCurrentThread(
                f"{model._meta.label} is replicated: select a thread first "
                "(thread_context(...), or .using(thread_alias(...)))"
            )
        from apps.core.threads.registry import thread_database

        database = thread_database(thread)
        database.open()
        return database.alias

    def db_for_read(self, model: type[models.Model], **hints: Any) -> str:
        if is_replicated(model):
            return self._thread_alias(model, hints)
        return DEFAULT_DB_ALIAS

    db_for_write = db_for_read

    def allow_relation(self, obj1: models.Model, obj2: models.Model, **hints: Any) -> bool | None:
        if is_replicated(type(obj1)) != is_replicated(type(obj2)):
            return False
        return obj1._state.db == obj2._state.db if obj1._state.db and obj2._state.db else None

    def allow_migrate(
        self, db: str, app_label: str, model_name: str | None = None, **hints: Any
    ) -> bool:
        from django.apps import apps

        if model_name is not None:
            model = apps.get_model(app_label, model_name)
            return is_replicated(model) == is_thread_alias(db)
        # Operations without a model (RunSQL, RunPython): by the app's kind.
        app = apps.get_app_config(app_label)
        return bool(getattr(app, "replicated", False)) == is_thread_alias(db)
