"""Values a hostile member's node may send (issue 9): every value is checked against its
column's type and nullability by the schema version the op names, deterministically, before the
op is accepted; applying an accepted op never fails; a node that does not know an op's schema
version waits instead of deciding; a write cannot slip past its op behind a comment."""

from __future__ import annotations

import pytest
from django.db import connections

from apps.core.thread import payloads as p
from apps.core.thread.rowid import row_id_for
from apps.core.threads import coltypes
from tests.core.thread.conftest import forge
from tests.core.threads.conftest import admit, dump, other_node
from tests.replicated_app.models import Note

pytestmark = pytest.mark.django_db(transaction=True)

NOTE = "replicated_app_note"
GOOD = {"title": "t", "body": "", "pinned": 0, "stars": 0, "created": "2026-01-01 00:00:00"}


def _writer_and_member(tdb, tmp_path, name="writer"):
    node = other_node(tmp_path, tdb.thread, name)
    admit(tdb, node, "writer")
    writer = node.database.writer()
    return node, writer


def _send(tdb, node, changes, schema=None):
    versions = schema if schema is not None else coltypes.schema_of({NOTE})
    op = forge(node.database.writer(), kind="data", payload=p.data_doc(changes, versions))
    node.database.ingest([op.raw])  # its own chain, as the hostile node keeps it
    (result,) = tdb.ingest([op.raw])
    return op, result


@pytest.mark.parametrize(
    ("cols", "reason"),
    [
        ({**GOOD, "title": b"\xff\xfe bytes"}, "title: expected text"),
        ({**GOOD, "title": None}, "title: NULL"),
        ({**GOOD, "title": "x" * 201}, "longer than 200"),
        ({**GOOD, "stars": 2**40}, "stars: out of the range"),
        ({**GOOD, "stars": "5"}, "stars: expected an integer"),
        ({**GOOD, "pinned": 2}, "pinned: expected a boolean"),
        ({**GOOD, "created": "yesterday"}, "created: expected a date and time"),
        ({**GOOD, "colour": "red"}, "unknown column"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_by_every_replica(tdb, tmp_path, cols, reason):
    node, writer = _writer_and_member(tdb, tmp_path)
    pk = row_id_for(writer.member, b"n").hex
    _op, result = _send(tdb, node, [p.RowChange(NOTE, pk, p.UPSERT, cols)])
    assert result.status == "refused"
    assert reason in result.reason
    assert dump(tdb.alias, NOTE) == []
    # And the pages read the table without meeting it.
    assert list(Note.objects.using(tdb.alias).all()) == []


def test_a_row_id_of_the_wrong_type_is_refused(tdb, tmp_path):
    node, writer = _writer_and_member(tdb, tmp_path)
    for pk in (
        5,
        b"\x01" * 16,
        "NOT-HEX" * 4 + "abcd",
        row_id_for(writer.member, b"n").hex.upper(),
    ):
        _op, result = _send(tdb, node, [p.RowChange(NOTE, pk, p.UPSERT, GOOD)])
        assert result.status == "refused", pk
    assert dump(tdb.alias, NOTE) == []


def test_a_partial_first_write_is_applied_with_the_same_filled_values_everywhere(tdb, tmp_path):
    node, writer = _writer_and_member(tdb, tmp_path)
    pk = row_id_for(writer.member, b"n").hex
    _op, result = _send(tdb, node, [p.RowChange(NOTE, pk, p.UPSERT, {"title": "only a title"})])
    assert result.status == "accepted"
    (note,) = Note.objects.using(tdb.alias).all()
    assert (note.title, note.body, note.pinned, note.stars) == ("only a title", "", False, 0)
    assert note.created.year == 1970  # never written: the same fill on every replica
    assert tdb.rebuild_check().matches


def test_an_op_of_an_unknown_schema_version_waits_and_is_decided_after_the_upgrade(
    tdb, tmp_path, monkeypatch
):
    node, writer = _writer_and_member(tdb, tmp_path)
    pk = row_id_for(writer.member, b"n").hex
    future = {"replicated_app": "0099_from_a_newer_release"}
    op, result = _send(tdb, node, [p.RowChange(NOTE, pk, p.UPSERT, GOOD)], schema=future)
    assert result.status == "waiting"
    assert "newer than this node's code" in result.reason
    assert dump(tdb.alias, NOTE) == []
    unknown_app = {"app_not_here": "0001_initial"}
    _op, other = _send(
        tdb, node, [p.RowChange("app_not_here_thing", pk, p.UPSERT, {"a": 1})], unknown_app
    )
    assert other.status == "waiting"
    # This node upgrades: the version is one its code knows now.
    known = coltypes._historical

    def upgraded(app, version):
        if version == future["replicated_app"]:
            return {NOTE: coltypes._current_rules()[NOTE]}
        return known(app, version)

    monkeypatch.setattr(coltypes, "_historical", upgraded)
    assert tdb.redecide_waiting()
    assert tdb.replica().decision(op.hash).status == "accepted"
    assert [row[1] for row in dump(tdb.alias, NOTE)] == ["t"]


def test_an_op_that_names_no_version_for_its_tables_is_refused(tdb, tmp_path):
    node, writer = _writer_and_member(tdb, tmp_path)
    pk = row_id_for(writer.member, b"n").hex
    _op, result = _send(tdb, node, [p.RowChange(NOTE, pk, p.UPSERT, GOOD)], schema={})
    assert result.status == "refused"
    assert "names no schema version" in result.reason


def test_a_raw_write_behind_a_comment_commits_with_its_op(tdb):
    connection = connections[tdb.alias]
    before = tdb.replica().store.log_size()
    with connection.cursor() as cursor:
        cursor.execute(
            "-- a note first\n/* and another */ INSERT INTO replicated_app_note"
            " (id, title, body, pinned, stars, created) VALUES (%s, 'raw', '', 0, 0,"
            " '2026-01-01 00:00:00')",
            [tdb.row_id_new().hex],
        )
    assert tdb.raw().execute("SELECT count(*) FROM sereus_pending").fetchone()[0] == 0
    assert tdb.replica().store.log_size() == before + 1
    assert tdb.rebuild_check().matches
