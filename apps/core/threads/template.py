"""A thread file's schema: brought up to date when the file is opened (``schema_update``), and
the template that a new thread file is copied from (``template_copy``), both keyed by the
fingerprint of this code's thread schema (``schema_fingerprint``).
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import threading
from pathlib import Path

from django.db import connections

from apps.core.threads import schema
from apps.core.threads.registry import alias_register

_schema_lock = threading.Lock()
_fingerprint_cache: bytes | None = None
# A template this process built, per fingerprint: a node with several data folders (tests, a
# restore) copies it instead of migrating again (seconds each); same fingerprint, same schema.
_built: dict[bytes, Path] = {}


def schema_fingerprint() -> bytes:
    """What the thread schema is made of in this code: changes exactly when it needs updating."""
    global _fingerprint_cache
    if _fingerprint_cache is None:
        from django.apps import apps
        from django.db.migrations.loader import MigrationLoader

        replicated = {a.label for a in apps.get_app_configs() if getattr(a, "replicated", False)}
        loader = MigrationLoader(None, ignore_no_migrations=True)
        leaves = sorted(f"{a}.{n}" for a, n in loader.graph.leaf_nodes() if a in replicated)
        material = [str(schema.SCHEMA_VERSION), *leaves, *schema.all_trigger_sql()]
        _fingerprint_cache = hashlib.blake2b("\n".join(material).encode(), digest_size=16).digest()
    return _fingerprint_cache


def schema_update(connection: sqlite3.Connection, alias: str) -> bool:
    """Create the sereus tables, migrate the replicated apps' tables and (re)install the capture
    triggers, unless the file already has this code's schema."""
    connection.executescript(schema.TABLES)
    fingerprint = schema_fingerprint()
    row = connection.execute("SELECT value FROM sereus_meta WHERE key = 'fingerprint'").fetchone()
    if row is not None and row[0] == fingerprint:
        return False
    from django.core.management import call_command

    call_command("migrate", database=alias, interactive=False, verbosity=0)
    for sql in schema.all_trigger_sql():
        connection.execute(sql)
    connection.execute(
        "INSERT OR REPLACE INTO sereus_meta(key, value) VALUES ('fingerprint', ?)", (fingerprint,)
    )
    if connection.in_transaction:
        connection.commit()
    return True


def template_copy(path: Path) -> None:
    """Start a new thread file as a copy of the schema template (built on first need)."""
    template = path.parent / f".template-{schema_fingerprint().hex()}.sqlite3"
    with _schema_lock:
        earlier = _built.get(schema_fingerprint())
        if not template.exists() and earlier is not None and earlier.exists():
            building = template.with_suffix(".building")
            shutil.copyfile(earlier, building)
            building.replace(template)
        if not template.exists():
            building = template.with_suffix(".building")
            building.unlink(missing_ok=True)
            # Plain sqlite3: the template is only migrated, never written through, and the
            # router lets migrations of replicated apps run on "thread_" aliases.
            alias = f"thread_template_{schema_fingerprint().hex()}"
            alias_register(
                b"\0" * 32, alias=alias, path=building, engine="django.db.backends.sqlite3"
            )
            wrapper = connections[alias]
            try:
                wrapper.ensure_connection()
                schema_update(wrapper.connection, alias)
            finally:
                wrapper.close()
                del connections[alias]
                del connections.settings[alias]
            building.replace(template)
        _built[schema_fingerprint()] = template
    shutil.copyfile(template, path)
    path.chmod(0o600)
