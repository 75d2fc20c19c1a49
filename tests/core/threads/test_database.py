"""Thread databases: routing, the replicated-model rules, opening lazily, damaged files, the
start-up pass, and the rebuild command."""

from __future__ import annotations

import os
import sqlite3
import threading
from io import StringIO
from pathlib import Path

import nacl.utils
import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.db import connections, models
from django.test.utils import isolate_apps

from apps.core.models import Thread
from apps.core.replicated import ReplicatedModel, check_replicated_models, replication_problems
from apps.core.threads import services
from apps.core.threads.context import NoCurrentThread, thread_context
from apps.core.threads.database import ThreadCorrupt
from apps.core.threads.registry import alias_register, forget, thread_database
from apps.core.threads.router import ThreadRouter
from tests.core.threads.conftest import log_size
from tests.replicated_app.models import Note

pytestmark = pytest.mark.django_db(transaction=True)


def test_replicated_models_go_to_the_current_thread_only(thread):
    with pytest.raises(NoCurrentThread, match="select a thread"):
        Note.objects.count()
    with thread_context(thread.thread):
        Note.objects.create(title="routed")
        assert Note.objects.count() == 1
        assert Note.objects.db == thread_database(thread.thread).alias
        # Node models stay in the node database even inside a thread.
        assert Thread.objects.db == "default"
        assert Thread.objects.filter(pk=thread.pk).exists()
    # .using() always works, with or without a current thread.
    assert Note.objects.using(thread_database(thread.thread).alias).count() == 1


def test_router_never_crosses_node_and_thread_databases(thread):
    router = ThreadRouter()
    alias = thread_database(thread.thread).alias
    assert router.allow_migrate("default", "replicated_app", "note") is False
    assert router.allow_migrate(alias, "replicated_app", "note") is True
    assert router.allow_migrate(alias, "core", "thread") is False
    assert router.allow_migrate("default", "core", "thread") is True
    assert router.allow_migrate(alias, "auth", "user") is False
    assert router.allow_migrate(alias, "replicated_app") is True
    assert router.allow_migrate(alias, "sessions") is False
    with thread_context(thread.thread):
        note = Note.objects.create(title="x")
    assert router.allow_relation(note, thread) is False
    tables = set(connections[alias].introspection.table_names())
    assert "replicated_app_note" in tables
    assert "core_thread" not in tables
    assert "auth_user" not in tables
    assert "replicated_app_note" not in connections["default"].introspection.table_names()


@isolate_apps("tests.replicated_app")
def test_replicated_models_that_break_the_rules_are_refused_with_reasons():
    class Meta:
        app_label = "replicated_app"

    def model(name: str, **fields) -> type[models.Model]:
        meta = fields.pop("Meta", Meta)
        return type(name, (ReplicatedModel,), {"__module__": __name__, "Meta": meta, **fields})

    class TogetherMeta:
        app_label = "replicated_app"
        unique_together = [("a", "b")]

    cases = {
        "auto-increment": model("AutoPk", id=models.AutoField(primary_key=True)),
        "only the primary key may be unique": model(
            "Unique", email=models.CharField(max_length=50, unique=True)
        ),
        "db_constraint=False": model(
            "Enforced", note=models.ForeignKey(Note, on_delete=models.CASCADE)
        ),
        "not replicated": model(
            "ToNode",
            thread=models.ForeignKey(Thread, on_delete=models.CASCADE, db_constraint=False),
        ),
        "unique_together": model(
            "Together", a=models.IntegerField(), b=models.IntegerField(), Meta=TogetherMeta
        ),
        "not a valid thread column name": model(
            "BadColumn", value=models.IntegerField(db_column="Value")
        ),
    }
    for reason, bad in cases.items():
        problems = replication_problems(bad)
        assert any(reason in problem for problem in problems), (bad.__name__, problems)
    fine = model(
        "Fine", note=models.ForeignKey(Note, on_delete=models.CASCADE, db_constraint=False)
    )
    assert replication_problems(fine) == []


def test_the_system_check_runs_over_the_installed_replicated_models():
    assert check_replicated_models() == []
    errors = check_replicated_models(app_configs=[apps.get_app_config("replicated_app")])
    assert errors == []


def test_registering_a_thousand_threads_opens_no_file(db, data_dir):
    before = len(os.listdir("/proc/self/fd"))
    threads = [nacl.utils.random(32) for _ in range(1000)]
    for thread in threads:
        alias_register(thread)
    assert len(os.listdir("/proc/self/fd")) <= before + 2
    assert not any(data_dir.joinpath("threads").glob("*.sqlite3"))
    for thread in threads:
        del connections.settings[f"thread_{thread.hex()}"]


def test_a_damaged_thread_file_is_reported_and_other_threads_keep_working(thread, data_dir):
    other = services.thread_create(name="Still fine")
    damaged = thread_database(thread.thread)
    with thread_context(thread.thread):
        Note.objects.create(title="soon damaged")
    path = damaged.path
    forget(thread.thread)
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.seek(size // 2)
        f.write(os.urandom(4096))
        f.truncate(size - 1024)
    with (
        pytest.raises(ThreadCorrupt, match=r"damaged|not a readable|cannot be opened"),
        thread_context(thread.thread),
    ):
        Note.objects.count()
    thread.refresh_from_db()
    assert thread.state == Thread.State.DAMAGED
    assert str(path) in thread.problem
    with thread_context(other.thread):
        Note.objects.create(title="other thread still served")
        assert Note.objects.count() == 1


def test_a_thread_file_busy_at_open_is_opened_later_not_reported_damaged(thread, data_dir):
    """Another connection holding the write lock past the busy timeout when a process first
    opens a thread (a writer at start-up, a WAL recovery after kill -9) is not damage: the open
    waits and tries again, and the thread stays active (it was marked damaged, and its sync
    stopped)."""
    with thread_context(thread.thread):
        Note.objects.create(title="before the restart")
    handle = thread_database(thread.thread)
    path, alias = handle.path, handle.alias
    forget(thread.thread)
    # A short busy timeout stands for a lock held past the real one (30 s).
    connections[alias].settings_dict["OPTIONS"]["timeout"] = 0.3
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    # An open writes only what it must: without the thread's id in the file it must write.
    holder.execute("DELETE FROM sereus_meta WHERE key = 'thread'")
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT OR REPLACE INTO sereus_meta(key, value) VALUES ('held', x'00')")
    release = threading.Timer(1.2, holder.execute, ("ROLLBACK",))
    release.start()
    try:
        with thread_context(thread.thread):
            assert Note.objects.filter(title="before the restart").count() == 1
            Note.objects.create(title="after the lock was let go")
    finally:
        release.join()
        holder.close()
    thread.refresh_from_db()
    assert thread.state != Thread.State.DAMAGED, thread.problem
    with thread_context(thread.thread):
        assert Note.objects.count() == 2


# The insert trigger of the version that noted changes in a table (before 2026-12-07).
OLDER_INSERT_TRIGGER = (
    'CREATE TRIGGER "sereus_ai_replicated_app_note" AFTER INSERT ON "replicated_app_note" '
    "WHEN sereus_capture() BEGIN INSERT INTO sereus_pending(tbl, pk, mask, existed) "
    "VALUES ('replicated_app_note', NEW.\"id\", -1, 0); END"
)


def _trigger_sql(connection, name: str) -> str:
    return connection.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?", (name,)
    ).fetchone()[0]


def test_a_file_of_the_older_capture_is_upgraded_and_its_leftovers_packed(thread, tdb):
    """A file of the version whose triggers noted changes in ``sereus_pending``, where
    something committed behind the backend's back (a raw connection with the capture
    functions): the next process to open it installs the new triggers and packs what was left
    into an op."""
    with thread_context(thread.thread):
        Note.objects.create(title="normal")
    path = tdb.path
    before = log_size(tdb)
    forget(thread.thread)
    raw = sqlite3.connect(path)
    raw.execute('DROP TRIGGER "sereus_ai_replicated_app_note"')
    raw.execute(OLDER_INSERT_TRIGGER)
    raw.execute("UPDATE sereus_meta SET value = x'00' WHERE key = 'fingerprint'")
    raw.create_function("sereus_capture", 0, lambda: 1)
    raw.execute(
        'INSERT INTO "replicated_app_note" (id, title, body, pinned, stars, created) '
        "VALUES ('00000000000000000000000000000001', 'sneaky', '', 0, 0, '2026-01-01')"
    )
    raw.commit()
    assert raw.execute("SELECT count(*) FROM sereus_pending").fetchone()[0] == 1
    raw.close()
    reopened = thread_database(thread.thread)
    reopened.open()
    assert log_size(reopened) == before + 1
    assert reopened.rebuild_check().matches
    connection = reopened.raw()
    assert connection.execute("SELECT count(*) FROM sereus_pending").fetchone()[0] == 0
    trigger = _trigger_sql(connection, "sereus_ai_replicated_app_note")
    assert "sereus_row(" in trigger
    assert "sereus_pending" not in trigger
    with thread_context(thread.thread):
        Note.objects.create(title="after the upgrade")
    assert log_size(reopened) == before + 2
    assert reopened.rebuild_check().matches


def test_a_raw_write_outside_a_transaction_is_refused(thread, tdb):
    """The raw connection in autocommit would commit a captured change at once, without its
    op (the capture is in memory until the commit packs it): the trigger refuses it."""
    with thread_context(thread.thread):
        Note.objects.create(title="normal")
    before = log_size(tdb)
    with pytest.raises(sqlite3.OperationalError, match="user-defined function raised"):
        tdb.raw().execute("UPDATE \"replicated_app_note\" SET title = 'unpacked'")
    assert list(Note.objects.using(tdb.alias).values_list("title", flat=True)) == ["normal"]
    assert log_size(tdb) == before
    assert not tdb.wrapper.pending


def test_thread_rebuild_command_reports_the_integrity_check(thread, tdb):
    with thread_context(thread.thread):
        for i in range(5):
            Note.objects.create(title=f"n{i}")
    out = StringIO()
    call_command("thread_rebuild", thread.id, stdout=out)
    assert "matches the live tables" in out.getvalue()
    # Tamper with a live row behind capture's back: the check finds it, --repair fixes it.
    raw = tdb.raw()
    raw.execute("DROP TRIGGER sereus_au_replicated_app_note")
    raw.execute("UPDATE replicated_app_note SET title = 'tampered' WHERE title = 'n3'")
    raw.commit()
    out = StringIO()
    with pytest.raises(CommandError, match="differ"):
        call_command("thread_rebuild", thread.id, stdout=out)
    assert "tampered" in out.getvalue()
    out = StringIO()
    call_command("thread_rebuild", thread.id, "--repair", stdout=out)
    assert "repaired" in out.getvalue()
    with thread_context(thread.thread):
        assert Note.objects.filter(title="n3").exists()


def test_a_template_built_once_is_copied_into_another_folder(tmp_path, thread_databases_allowed):
    """``template_copy``: a second data folder of the same process starts from the template this
    process built (same fingerprint), never by migrating again: a mark left in the first
    template shows in a thread file started in the second folder."""
    from apps.core.threads.template import schema_fingerprint, template_copy

    first, second = tmp_path / "one", tmp_path / "two"
    first.mkdir()
    second.mkdir()
    template_copy(first / "a.sqlite3")
    template = first / f".template-{schema_fingerprint().hex()}.sqlite3"
    with sqlite3.connect(template) as marked:
        marked.execute("PRAGMA user_version = 77")
    template_copy(second / "b.sqlite3")
    with sqlite3.connect(second / "b.sqlite3") as started:
        assert started.execute("PRAGMA user_version").fetchone() == (77,)
        assert started.execute("SELECT count(*) FROM sereus_meta").fetchone()[0] >= 1
    assert (second / "b.sqlite3").stat().st_mode & 0o777 == 0o600
