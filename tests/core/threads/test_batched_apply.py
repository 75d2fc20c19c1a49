"""An ingest holds back the op log's writes and applies the accepted rows of all its ops together
(``SQLiteOpStore.batched``, ``rows.ops_apply``): a log taken in large frames leaves exactly the
file a log taken one op at a time leaves (decisions, refusals, row index, clocks, rows), on
random histories of two writers with concurrent edits, partial updates and deletes."""

from __future__ import annotations

import os
import random

import nacl.signing
import pytest
from django.db import connections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.core.threads.database import NodeKeys, ThreadDatabase
from tests.core.threads.conftest import OtherNode, dump
from tests.core.threads.test_replication import NOTE, _deliver, _log, two_writers

pytestmark = pytest.mark.django_db(transaction=True)


def _state(alias: str) -> dict[str, list[tuple]]:
    with connections[alias].cursor() as cursor:
        found = {}
        for name, sql in {
            "ops": "SELECT hash, device, seq, kind, place, status, reason, refusal "
            "FROM sereus_ops ORDER BY hash",
            "rowevents": "SELECT * FROM sereus_rowevents ORDER BY tbl, pk, hlc",
            "clock": "SELECT * FROM sereus_clock ORDER BY tbl, pk",
        }.items():
            cursor.execute(sql)
            found[name] = cursor.fetchall()
    for table in (NOTE, "replicated_app_comment"):
        found[table] = dump(alias, table)
    return found


@settings(
    max_examples=int(os.environ.get("HYPOTHESIS_MAX", 40)),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    seed=st.integers(0, 2**32 - 1),
    steps=st.integers(2, 12),
    frame=st.sampled_from([7, 64, 4096]),
)
def test_large_frames_leave_the_file_one_op_at_a_time_leaves(
    thread_databases_allowed, tmp_path_factory, seed, steps, frame
):
    rng = random.Random(seed)
    folder, run, a, b, actors = two_writers(tmp_path_factory, "batched", rng)
    for _ in range(2):
        for _ in range(steps):
            rng.choice(actors).act()
        _deliver(b.database, a.database, rng)
    log = _log(a.database)
    # A's member on two new devices: they read everything A reads.
    framed, single = (
        OtherNode(
            a.keys,
            ThreadDatabase(
                a.database.thread,
                path=folder / f"{name}{run}.sqlite3",
                alias=f"thread_{a.database.thread.hex()}_{name}{run}",
                node=NodeKeys(nacl.signing.SigningKey.generate(), a.keys.master_secret),
            ),
        )
        for name in ("f", "s")
    )
    for start in range(0, len(log), frame):
        framed.database.ingest(log[start : start + frame])
    for raw in log:
        single.database.ingest([raw])
    state = _state(framed.alias)
    assert state == _state(single.alias)
    assert state[NOTE] == dump(a.alias, NOTE)
    assert {status for *_, status, _reason, _refusal in state["ops"]} >= {"accepted"}
    for node in (a, b, framed, single):
        connections[node.alias].close()
