"""Every way of writing a replicated table becomes exactly one op per transaction, carrying the
row changes, and nothing is written without its op."""

from __future__ import annotations

import pytest
from django.db import connections, transaction

from apps.core.thread import payloads as p
from apps.core.threads.context import thread_context
from tests.core.threads.conftest import log_since, log_size
from tests.replicated_app.models import Comment, Note

pytestmark = pytest.mark.django_db(transaction=True)

NOTE_COLUMNS = {"id", "title", "body", "pinned", "stars", "created"}


def one_op(tdb, before: int) -> list[p.RowChange]:
    ops = log_since(tdb, before)
    assert len(ops) == 1, [op for op, _ in ops]
    op, changes = ops[0]
    assert op.kind == "data"
    assert tdb.replica().decision(op.hash).status == "accepted"
    return changes


def test_orm_create_and_save(thread, tdb):
    with thread_context(thread.thread):
        before = log_size(tdb)
        note = Note.objects.create(title="first")
        (change,) = one_op(tdb, before)
        assert change.table == "replicated_app_note"
        assert change.action == p.UPSERT
        assert change.pk == note.id.hex
        assert set(change.cols) == NOTE_COLUMNS
        assert change.cols["title"] == "first"

        before = log_size(tdb)
        note.title = "renamed"
        note.save(update_fields=["title"])
        (change,) = one_op(tdb, before)
        assert change.cols == {"title": "renamed"}, "an update carries the changed columns"

        before = log_size(tdb)
        note.save()  # a full save that changes nothing
        assert log_size(tdb) == before, "no change, no op"


def test_queryset_update_and_delete(thread, tdb):
    with thread_context(thread.thread):
        notes = [Note.objects.create(title=f"n{i}") for i in range(3)]
        before = log_size(tdb)
        assert Note.objects.filter(title__in=["n0", "n1"]).update(stars=4) == 2
        changes = one_op(tdb, before)
        assert {c.pk for c in changes} == {notes[0].id.hex, notes[1].id.hex}
        assert all(c.cols == {"stars": 4} for c in changes)

        before = log_size(tdb)
        Note.objects.filter(stars=4).delete()
        changes = one_op(tdb, before)
        assert {(c.pk, c.action) for c in changes} == {
            (notes[0].id.hex, p.DELETE),
            (notes[1].id.hex, p.DELETE),
        }


def test_bulk_create_and_cascade_delete(thread, tdb):
    with thread_context(thread.thread):
        note = Note.objects.create(title="with comments")
        before = log_size(tdb)
        Comment.objects.bulk_create([Comment(note=note, text=f"c{i}") for i in range(5)])
        changes = one_op(tdb, before)
        assert len(changes) == 5
        assert {c.cols["note_id"] for c in changes} == {note.id.hex}

        before = log_size(tdb)
        note.delete()
        changes = one_op(tdb, before)
        assert sorted(c.table for c in changes) == ["replicated_app_comment"] * 5 + [
            "replicated_app_note"
        ]
        assert {c.action for c in changes} == {p.DELETE}


def test_atomic_block_is_one_op_and_a_rolled_back_savepoint_leaves_nothing(thread, tdb):
    alias = tdb.alias
    with thread_context(thread.thread):
        before = log_size(tdb)
        with transaction.atomic(using=alias):
            kept = Note.objects.create(title="kept")
            try:
                with transaction.atomic(using=alias):
                    Note.objects.create(title="rolled back")
                    Note.objects.filter(pk=kept.pk).update(stars=9)
                    raise RuntimeError
            except RuntimeError:
                pass
            Note.objects.create(title="also kept")
        changes = one_op(tdb, before)
        assert sorted(c.cols["title"] for c in changes) == ["also kept", "kept"]
        assert all(c.cols.get("stars") == 0 for c in changes)

        before = log_size(tdb)
        with transaction.atomic(using=alias):
            Note.objects.create(title="never")
            transaction.set_rollback(True, using=alias)
        assert log_size(tdb) == before
        assert not Note.objects.filter(title="never").exists()


def test_raw_sql_in_autocommit_and_executemany(thread, tdb):
    with thread_context(thread.thread):
        note = Note.objects.create(title="raw")
    before = log_size(tdb)
    with connections[tdb.alias].cursor() as cursor:
        cursor.execute(
            'UPDATE "replicated_app_note" SET "body" = %s WHERE "id" = %s', ["by SQL", note.id.hex]
        )
    (change,) = one_op(tdb, before)
    assert change.cols == {"body": "by SQL"}

    before = log_size(tdb)
    with connections[tdb.alias].cursor() as cursor:
        cursor.executemany(
            'INSERT INTO "replicated_app_comment" ("id", "note_id", "text") VALUES (%s, %s, %s)',
            [(f"{i:032x}", note.id.hex, f"raw {i}") for i in range(3)],
        )
    changes = one_op(tdb, before)
    assert sorted(c.cols["text"] for c in changes) == ["raw 0", "raw 1", "raw 2"]


def test_insert_then_delete_in_one_transaction_makes_no_op(thread, tdb):
    with thread_context(thread.thread):
        before = log_size(tdb)
        with transaction.atomic(using=tdb.alias):
            Note.objects.create(title="fleeting").delete()
        assert log_size(tdb) == before


def test_primary_keys_cannot_change(thread, tdb):
    with thread_context(thread.thread):
        note = Note.objects.create(title="fixed")
    with (
        pytest.raises(Exception, match="keeps its primary key"),
        connections[tdb.alias].cursor() as cursor,
    ):
        cursor.execute(
            'UPDATE "replicated_app_note" SET "id" = %s WHERE "id" = %s', ["0" * 32, note.id.hex]
        )


def test_a_program_without_the_capture_function_cannot_write(thread, tdb):
    import sqlite3

    with thread_context(thread.thread):
        Note.objects.create(title="guarded")
    outsider = sqlite3.connect(tdb.path)
    with pytest.raises(sqlite3.OperationalError, match="sereus_capture"):
        outsider.execute('UPDATE "replicated_app_note" SET "title" = \'tampered\'')
    outsider.close()
