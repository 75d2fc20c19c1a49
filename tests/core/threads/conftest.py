"""Fixtures for thread-database tests: this node with a thread, and extra nodes in-process."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import nacl.signing
import nacl.utils
import pytest
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from apps.core import identity
from apps.core.models import Thread
from apps.core.thread import payloads as p
from apps.core.thread.op import Op
from apps.core.thread.replica import Replica
from apps.core.thread.writer import redemption_request
from apps.core.threads import services
from apps.core.threads.database import NodeKeys, ThreadDatabase
from apps.core.threads.registry import thread_database


@pytest.fixture
def thread_databases_allowed(db):
    """Django's test case forbids connections to databases it does not manage, to keep tests
    apart. Thread databases are files in each test's own data dir, apart by construction: they
    connect as Django's own ``ensure_connection`` would."""
    patched = BaseDatabaseWrapper.ensure_connection

    def ensure_connection(self, *args, **kwargs):
        if self.alias.startswith("thread_"):
            if self.connection is None:
                with self.wrap_database_errors:
                    self.connect()
            return None
        return patched(self, *args, **kwargs)

    BaseDatabaseWrapper.ensure_connection = ensure_connection
    yield
    BaseDatabaseWrapper.ensure_connection = patched


@pytest.fixture
def node(data_dir: Path, thread_databases_allowed) -> NodeKeys:
    """This node, claimed: a device key and a master secret in its data dir."""
    identity.master_secret_create(data_dir, nacl.utils.random(32))
    identity.device_key_ensure(data_dir)
    return NodeKeys.of_this_node()


@pytest.fixture
def thread(db, node: NodeKeys) -> Thread:
    return services.thread_create(name="Test thread")


@pytest.fixture
def tdb(thread: Thread) -> ThreadDatabase:
    return thread_database(thread.thread)


def log_since(database: ThreadDatabase, n: int) -> list[tuple[Op, list[p.RowChange] | None]]:
    """The ops written after log position ``n``, with the row changes of data ops."""
    replica = database.replica()
    out = []
    for _n, op, place in replica.store.log_after(n):
        if place != "log":
            continue
        changes = None
        if op.kind == "data":
            candidates = replica.control.timeline.epoch_in_past(op)[1]
            payload = replica.opener.data(op, candidates)
            changes = payload.rows if isinstance(payload, p.DataPayload) else None
        out.append((op, changes))
    return out


def log_size(database: ThreadDatabase) -> int:
    return database.replica().store.log_size()


@dataclass
class OtherNode:
    """Another node in this process: its own file, alias, keys and database handle."""

    keys: NodeKeys
    database: ThreadDatabase

    @property
    def alias(self) -> str:
        return self.database.alias


def other_node(tmp_path: Path, thread: bytes, name: str) -> OtherNode:
    keys = NodeKeys(device=nacl.signing.SigningKey.generate(), master_secret=nacl.utils.random(32))
    database = ThreadDatabase(
        thread,
        path=tmp_path / f"{name}.sqlite3",
        alias=f"thread_{thread.hex()}_{name}",
        node=keys,
    )
    return OtherNode(keys, database)


def new_thread(tmp_path: Path, name: str) -> OtherNode:
    """A thread created by a node of its own (not this node), with its database."""
    from apps.core.thread.writer import ThreadWriter

    keys = NodeKeys(device=nacl.signing.SigningKey.generate(), master_secret=nacl.utils.random(32))
    writer = ThreadWriter.create(
        master_secret=keys.master_secret, device_key=keys.device, name=name
    )
    node = OtherNode(
        keys,
        ThreadDatabase(
            writer.thread,
            path=tmp_path / f"{name}.sqlite3",
            alias=f"thread_{writer.thread.hex()}_{name}",
            node=keys,
        ),
    )
    node.database.ingest(op.raw for op in writer.replica.admitted)
    return node


def admit(admitter: ThreadDatabase, joiner: OtherNode, role: str) -> None:
    """Invite and admit ``joiner`` at ``role``, then give it the admitter's whole log."""
    expiry = time.time_ns() // 1_000_000 + 3_600_000
    invite = admitter.write(
        lambda writer: writer.invite_create(role=role, expiry=expiry, inviter="peer")
    )
    request = redemption_request(
        invite, master_secret=joiner.keys.master_secret, device_key=joiner.keys.device
    )
    admitter.write(lambda writer: writer.admit(request))
    exchange(admitter, joiner.database)


def exchange(source: ThreadDatabase, target: ThreadDatabase) -> None:
    raws = [
        raw
        for (raw,) in source.raw().execute(
            "SELECT raw FROM sereus_ops WHERE place = 'log' ORDER BY n"
        )
    ]
    target.ingest(raws)


def dump(alias: str, table: str) -> list[tuple]:
    with connections[alias].cursor() as cursor:
        cursor.execute(f'SELECT * FROM "{table}" ORDER BY id')  # noqa: S608 - a test table name
        return cursor.fetchall()


def reloads_counted(monkeypatch) -> list[int]:
    """Count every reload of a replica from the log from here on (one entry each)."""
    reloads: list[int] = []
    reload = Replica.reload

    def counted(self) -> None:
        reloads.append(1)
        reload(self)

    monkeypatch.setattr(Replica, "reload", counted)
    return reloads
