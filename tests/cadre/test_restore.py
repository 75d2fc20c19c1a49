"""Recovery from the phrase (``apps.cadre.restore``): a fresh node R, given only the phrase and
where a source of the party is, fetches every thread, certifies its own device in each AS the
party's standby key, adopts them, passes the standby on, and sends what it wrote to the source.

The party's first node A is this process's node until it is "lost": its data dir is dropped and
R starts on an empty one. The source is a real p2p host in this process that serves A's logs as
a mirror would (checking the party proof), so R's requests cross a real connection.
Also: ``node_restore --from`` and ``recovery_phrase``."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import nacl.signing
import nacl.utils
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections

from apps.cadre import control, logs, protocols, restore, wire, worker
from apps.cadre import keys as cadre_keys
from apps.cadre.models import PartyDevice, RestoreRun, SyncProgress
from apps.core import identity, services
from apps.core.models import Thread
from apps.core.thread import keys
from apps.core.threads import registry
from apps.core.threads import services as thread_services
from apps.core.threads.registry import thread_database
from apps.p2p import app_protocols
from apps.p2p.app_protocols import AppRefused
from tests.cadre.test_logs import _Host
from tests.core.threads.conftest import OtherNode, admit, other_node

# -- the source: A's logs, served as a mirror would --------------------------------------------


class Source:
    """What a mirror of the party serves: the logs it holds, to the party's proof only; what
    the party submits, kept."""

    def __init__(self, logs_: dict[bytes, list[bytes]], control_id: bytes, party: bytes) -> None:
        self.logs = logs_
        self.control_id = control_id
        self.party = party
        self.received: dict[bytes, list[bytes]] = {}
        self.host: _Host | None = None
        self.stall = False  # hostile: pages that never move on

    def _check(self, doc: dict[str, Any], purpose: str, peer_device: bytes) -> None:
        assert self.host is not None
        try:
            party = cadre_keys.party_proof_verify(
                doc.get("proof"),
                purpose=purpose,
                requester=peer_device,
                responder=self.host.node.device,
                now_ms=time.time_ns() // 1_000_000,
            )
        except cadre_keys.ProofError as exc:
            raise AppRefused(str(exc)) from exc
        if party != self.party:
            raise AppRefused("This mirror does not serve your party.")

    def serve_log(self, peer_device: bytes, request: bytes) -> bytes:
        doc = wire.decode(request, max_size=4096)
        if doc["op"] == "threads":
            self._check(doc, "threads", peer_device)
            listed = [
                {
                    "thread": t,
                    "app": "x",
                    "name": f"thread {i}",
                    "control": t == self.control_id,
                    "ops": len(raws),
                }
                for i, (t, raws) in enumerate(self.logs.items())
            ]
            return wire.encode({"threads": listed})
        self._check(doc, "page", peer_device)
        raws = self.logs[doc["thread"]]
        after = doc["after"]
        if self.stall:
            return wire.encode({"ops": [], "next": after, "done": False})
        page = raws[after : after + wire.PAGE_OPS]
        done = after + len(page) >= len(raws)
        return wire.encode({"ops": page, "next": after + len(page), "done": done})

    def serve_submit(self, peer_device: bytes, request: bytes) -> bytes:
        doc = wire.decode(request, max_size=logs.MAX_REQUEST)
        self._check(doc, "submit", peer_device)
        self.received.setdefault(doc["thread"], []).extend(doc["ops"])
        return wire.encode({"admitted": len(doc["ops"]), "refused": 0, "other": 0})

    def start(self, tmp_path: Path) -> Source:
        app_protocols.register(
            wire.LOG, self.serve_log, max_request=4096, max_response=4 << 20, rate=(100, 100)
        )
        app_protocols.register(
            wire.SUBMIT, self.serve_submit, max_request=1 << 20, max_response=4096, rate=(50, 50)
        )
        self.host = _Host(nacl.signing.SigningKey.generate(), tmp_path / "source")
        return self

    @property
    def where(self) -> dict[str, Any]:
        assert self.host is not None
        return self.host.where


# -- A, then R ------------------------------------------------------------------------------------


@dataclasses.dataclass
class World:
    master: bytes
    phrase: str
    chat: bytes
    control_id: bytes
    member: str  # A's member key in the chat (hex)
    bob: OtherNode
    source: Source
    r_device: bytes


def _log_of(thread: bytes) -> list[bytes]:
    rows = (
        thread_database(thread)
        .raw()
        .execute("SELECT raw FROM sereus_ops WHERE place = 'log' ORDER BY n")
    )
    return [bytes(raw) for (raw,) in rows]


def _forget(thread: bytes) -> None:
    """This process drops its handle and Django alias of ``thread`` (its file was A's)."""
    registry.forget(thread)
    alias = registry.thread_alias(thread)
    connections.settings.pop(alias, None)
    with contextlib.suppress(AttributeError):
        del connections[alias]


def _lose_a(settings, tmp_path: Path, threads: list[bytes]) -> None:
    """A is gone: its rows and files are no longer this node's; R starts on an empty dir."""
    Thread.objects.all().delete()
    for thread in threads:
        _forget(thread)
    worker.forget()
    settings.DATA_DIR = tmp_path / "r"
    settings.DATA_DIR.mkdir(mode=0o700)


@pytest.fixture
def world(node, tmp_path, settings, request) -> Iterator[World]:
    """A with a chat shared with Bob and its control thread; A lost; R restored from the
    phrase, with its p2p host running and a source serving A's logs."""
    from apps.p2p import client
    from apps.p2p.host import quiet_libp2p_logs

    quiet_libp2p_logs()
    chat = thread_services.thread_create(name="Chat")
    bob = other_node(tmp_path, chat.thread, "bob")
    admit(thread_database(chat.thread), bob, "writer")
    thread_database(chat.thread).write(lambda writer: writer.set_name("Alice"))
    ctl = control.control_ensure()
    tamper = getattr(request, "param", None)
    if tamper is not None:
        tamper(tmp_path)
    master = control.master_secret()
    held = [ctl.thread, chat.thread]
    held += [t.thread for t in Thread.objects.exclude(pk__in=[ctl.pk, chat.pk])]
    source = Source({t: _log_of(t) for t in held}, ctl.thread, cadre_keys.party_id(master))
    world = World(
        master,
        identity.recovery_phrase_from_secret(master),
        chat.thread,
        ctl.thread,
        chat.member_id,
        bob,
        source,
        b"",
    )
    _lose_a(settings, tmp_path, held)
    services.node_restore(phrase=world.phrase)
    r_key = identity.device_key_ensure(settings.DATA_DIR).signing_key
    world.r_device = bytes(r_key.verify_key)
    source.start(tmp_path)
    restore._not_before.clear()
    r_host = _Host(r_key, tmp_path / "r-host")
    client.local_set(r_host.bridge, r_host.node)
    try:
        yield world
    finally:
        client.local_clear()
        r_host.bridge.stop()
        if source.host is not None:
            source.host.bridge.stop()
        protocols.install()  # the node's own handlers again


def _run(sources: list[dict[str, Any]], *, rounds: int = 3) -> RestoreRun:
    run = restore.restore_queue(sources)
    for _ in range(rounds):
        restore.restore_step()
        run.refresh_from_db()
        if run.state in (RestoreRun.State.DONE, RestoreRun.State.FAILED):
            break
    return run


def _member_of(thread: bytes, device: bytes, database=None) -> str | None:
    database = database or thread_database(thread)
    with database.lock:
        member = database.replica().control.state.device_member(device)
    return None if member is None else member.hex()


def _standby(world: World, index: int) -> bytes:
    return bytes(cadre_keys.standby_key(world.master, index).verify_key)


# -- the whole restore ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_restored_node_becomes_a_device_of_its_party_everywhere(world: World) -> None:
    run = _run([world.source.where])
    assert run.state == RestoreRun.State.DONE, run.problem
    assert run.problem == ""
    progress = {row.thread_id: row for row in SyncProgress.objects.filter(run="restore")}
    assert {t: (r.state, r.ops_fetched) for t, r in progress.items()} == {
        t.hex(): ("done", len(raws)) for t, raws in world.source.logs.items()
    }
    # Both threads are this node's, for the same member as before; the chat is listed.
    chat = Thread.objects.get(pk=world.chat.hex())
    assert chat.member_id == world.member
    assert [t.pk for t in thread_services.thread_list()] == [chat.pk]
    for thread in (world.control_id, world.chat):
        member = cadre_keys_member(world, thread)
        assert _member_of(thread, world.r_device) == member
        # The standby is passed on: the next one certified everywhere.
        assert _member_of(thread, _standby(world, 1)) == member
    kinds = {(d.kind, d.standby_index, d.state) for d in control.party_devices(include_gone=True)}
    assert (PartyDevice.Kind.STANDBY, 0, PartyDevice.State.SPENT) in kinds
    assert (PartyDevice.Kind.STANDBY, 1, PartyDevice.State.ACTIVE) in kinds
    assert control.standby_current().standby_index == 1
    me = next(d for d in control.party_devices() if d.device == world.r_device.hex())
    assert me.kind == PartyDevice.Kind.FULL
    assert me.label == restore.RESTORED_LABEL
    # What R wrote went to the source; through it, Bob sees the same Alice on a new device.
    sent = world.source.received[world.chat]
    assert any(op_device(raw) == _standby(world, 0) for raw in sent)
    assert any(op_device(raw) == world.r_device for raw in sent)
    # (Bob had what the mirror holds of A's before.)
    world.bob.database.ingest(world.source.logs[world.chat] + sent)
    assert _member_of(world.chat, world.r_device, world.bob.database) == world.member
    # And R writes as Alice (her name in the thread): Bob takes it in.
    thread_database(world.chat).write(lambda writer: writer.set_name("Alice, restored"))
    world.bob.database.ingest(_log_of(world.chat))
    with world.bob.database.lock:
        names = world.bob.database.replica().control.state.names
    assert names[bytes.fromhex(world.member)] == "Alice, restored"


def op_device(raw: bytes) -> bytes:
    from apps.core.thread.op import op_decode

    return op_decode(raw).device


def cadre_keys_member(world: World, thread: bytes) -> str:
    return bytes(keys.member_key(world.master, thread).verify_key).hex()


@pytest.mark.django_db(transaction=True)
def test_the_takeover_runs_once_even_when_done_again(world: World) -> None:
    run = _run([world.source.where])
    assert run.state == RestoreRun.State.DONE, run.problem
    sizes = {t: len(_log_of(t)) for t in (world.chat, world.control_id)}
    # The node restarted before it noted the end: the takeover runs again and writes nothing.
    RestoreRun.objects.filter(pk=run.pk).update(state=RestoreRun.State.TAKEOVER)
    restore.restore_step()
    run.refresh_from_db()
    assert run.state == RestoreRun.State.DONE
    assert {t: len(_log_of(t)) for t in sizes} == sizes
    # It stopped after recording the next standby, before the spent one: the standby it acted
    # as is found by its certificate of this device, not taken for the newest one.
    control.device_record(device=_standby(world, 0), kind="standby", standby_index=0)
    RestoreRun.objects.filter(pk=run.pk).update(state=RestoreRun.State.TAKEOVER)
    restore.restore_step()
    standbys = {
        d.standby_index: d.state
        for d in control.party_devices(include_gone=True)
        if d.kind == PartyDevice.Kind.STANDBY
    }
    assert standbys == {0: PartyDevice.State.SPENT, 1: PartyDevice.State.ACTIVE}
    assert restore.restore_status()["state"] == "done"


# -- refusals and waits ---------------------------------------------------------------------------


def _fails(world: World, words: str) -> None:
    """The run ends refused, in these words, with nothing taken over."""
    run = _run([world.source.where])
    assert run.state == RestoreRun.State.FAILED
    assert words in run.problem
    assert not Thread.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_source_of_another_party_fails_the_run_in_words(world: World) -> None:
    world.source.party = nacl.utils.random(32)
    _fails(world, "serves your party")


@pytest.mark.django_db(transaction=True)
def test_a_source_away_is_tried_again_later(world: World) -> None:
    gone = {"peer": world.source.where["peer"], "addrs": ["/ip4/127.0.0.1/tcp/9"]}
    world.source.host.bridge.stop()
    world.source.host = None
    run = _run([gone], rounds=2)
    assert run.state == RestoreRun.State.LISTING
    assert run.attempts == 1  # the second round waited for the pause
    assert "reach" in run.problem
    assert restore.restore_status()["running"] is True


def _spend_standby(tmp_path: Path) -> None:
    """A's device list says its standby key was spent, and names no other."""
    standby = control.standby_current()
    control.device_record(
        device=bytes.fromhex(standby.device),
        kind=PartyDevice.Kind.STANDBY,
        standby_index=standby.standby_index,
        state=PartyDevice.State.SPENT,
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("world", [_spend_standby], indirect=True)
def test_a_party_without_a_standby_cannot_be_restored_from_the_phrase(world: World) -> None:
    _fails(world, "no recovery key")


@pytest.mark.django_db(transaction=True)
def test_a_log_without_the_device_list_fails_the_run(world: World) -> None:
    del world.source.logs[world.control_id]
    _fails(world, "device list")


@pytest.mark.django_db(transaction=True)
def test_a_forged_device_list_takes_nothing_over(world: World, tmp_path: Path) -> None:
    """A source that serves junk, or ops of another party's control thread, as this party's
    device list: nothing of it is taken in, so no standby is found."""
    from tests.core.threads.conftest import new_thread

    forged = new_thread(tmp_path, "forged")
    world.source.logs[world.control_id] = [b"junk", *_log_raws(forged)]
    _fails(world, "no recovery key")


def _log_raws(other: OtherNode) -> list[bytes]:
    rows = other.database.raw().execute("SELECT raw FROM sereus_ops WHERE place = 'log'")
    return [bytes(raw) for (raw,) in rows]


@pytest.mark.django_db(transaction=True)
def test_pages_that_never_move_on_are_left_and_tried_later(world: World) -> None:
    world.source.stall = True
    run = _run([world.source.where], rounds=2)
    assert run.state == RestoreRun.State.FETCHING
    assert run.attempts == 1
    assert "do not advance" in run.problem


def _leave_a_thread(tmp_path: Path) -> None:
    """Alice hands a thread of hers to Bob and leaves it (the mirror keeps its log)."""
    old = thread_services.thread_create(name="Old")
    bob = other_node(tmp_path, old.thread, "bob-old")
    admit(thread_database(old.thread), bob, "writer")
    from apps.core.thread import payloads

    member = bytes.fromhex(member_hex(bob))
    thread_database(old.thread).write(lambda w: w.control(payloads.TransferOwner(member)))
    thread_services.index_refresh(thread=old)
    old.refresh_from_db()
    thread_services.thread_leave(thread=old, wait=0)


def member_hex(other: OtherNode) -> str:
    member = other.database.member_public()
    assert member is not None
    return member.hex()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("world", [_leave_a_thread], indirect=True)
def test_a_thread_the_party_left_is_not_restored(world: World) -> None:
    run = _run([world.source.where])
    assert run.state == RestoreRun.State.DONE, run.problem
    assert run.problem == ""
    assert [t.name for t in thread_services.thread_list()] == ["Chat"]
    left = SyncProgress.objects.get(run="restore", name="thread 2")
    assert left.problem == restore.LEFT_WORDS


# -- node_restore --from, recovery_phrase ---------------------------------------------------------

PEER = identity.peer_id_from_public_key(b"\x01" * 32)


def test_restore_sources_are_grouped_by_peer_and_checked() -> None:
    found = restore.sources_parse(
        [
            f"/ip4/127.0.0.1/tcp/4001/p2p/{PEER}",
            f"/ip6/::1/tcp/4001/p2p/{PEER}",
            f"/ip4/127.0.0.1/tcp/4001/p2p/{PEER}",
        ]
    )
    assert found == [{"peer": PEER, "addrs": ["/ip4/127.0.0.1/tcp/4001", "/ip6/::1/tcp/4001"]}]
    for bad, words in (
        ("/ip4/127.0.0.1/tcp/4001", "must end in /p2p/"),
        ("/ip4/127.0.0.1/tcp/4001/p2p/notapeer", "peer id"),
        (f"/ip4/999.1.1.1/tcp/4001/p2p/{PEER}", "not a network address"),
        (f"/p2p/{PEER}", "must end in /p2p/"),
        (f"hello/p2p/{PEER}", "not a network address"),
    ):
        with pytest.raises(control.CadreError) as caught:
            restore.sources_parse([bad])
        assert words in caught.value.words, bad


def _phrase() -> tuple[bytes, str]:
    secret = nacl.utils.random(32)
    return secret, identity.recovery_phrase_from_secret(secret)


def test_node_restore_from_queues_the_restore(data_dir, db, monkeypatch) -> None:
    secret, phrase = _phrase()
    monkeypatch.setattr("sys.stdin", StringIO(phrase))
    out = StringIO()
    call_command("node_restore", "--from", f"/ip4/10.0.0.5/tcp/4001/p2p/{PEER}", stdout=out)
    assert "fetches your threads" in out.getvalue()
    assert identity.master_secret_load(data_dir) == secret
    run = RestoreRun.objects.get()
    assert run.sources == [{"peer": PEER, "addrs": ["/ip4/10.0.0.5/tcp/4001"]}]
    assert run.state == RestoreRun.State.PENDING


def test_node_restore_with_a_bad_source_writes_nothing(data_dir, db, monkeypatch) -> None:
    _secret, phrase = _phrase()
    monkeypatch.setattr("sys.stdin", StringIO(phrase))
    with pytest.raises(CommandError, match="must end in /p2p/"):
        call_command("node_restore", "--from", "/ip4/10.0.0.5/tcp/4001")
    assert not identity.master_secret_exists(data_dir)
    assert not RestoreRun.objects.exists()


def test_node_restore_refuses_a_mirror(data_dir, db, settings, monkeypatch) -> None:
    _secret, phrase = _phrase()
    monkeypatch.setattr("sys.stdin", StringIO(phrase))
    settings.SEREUS = dataclasses.replace(settings.SEREUS, mirror=True)
    with pytest.raises(CommandError, match="mirror"):
        call_command("node_restore", "--from", f"/ip4/10.0.0.5/tcp/4001/p2p/{PEER}")
    assert not identity.master_secret_exists(data_dir)


def test_node_restore_without_from_restores_the_secret_only(data_dir, db, monkeypatch) -> None:
    secret, phrase = _phrase()
    monkeypatch.setattr("sys.stdin", StringIO(phrase))
    call_command("node_restore", stdout=StringIO())
    assert identity.master_secret_load(data_dir) == secret
    assert not RestoreRun.objects.exists()


def test_recovery_phrase_prints_the_words_alone(data_dir, db) -> None:
    secret, phrase = _phrase()
    identity.master_secret_create(data_dir, secret)
    out, err = StringIO(), StringIO()
    call_command("recovery_phrase", stdout=out, stderr=err)
    assert out.getvalue().strip() == phrase
    assert "keep them" in err.getvalue()


def test_recovery_phrase_asks_for_the_passphrase(data_dir, db, monkeypatch) -> None:
    secret, phrase = _phrase()
    identity.master_secret_create(data_dir, secret, passphrase="correct horse", cost="interactive")
    monkeypatch.setattr("getpass.getpass", lambda prompt="": "wrong")
    with pytest.raises(CommandError, match="does not open"):
        call_command("recovery_phrase", stdout=StringIO(), stderr=StringIO())
    monkeypatch.setattr("getpass.getpass", lambda prompt="": "correct horse")
    out = StringIO()
    call_command("recovery_phrase", stdout=out, stderr=StringIO())
    assert out.getvalue().strip() == phrase


def test_recovery_phrase_refuses_a_mirror_and_a_node_without_a_secret(
    data_dir, db, settings
) -> None:
    with pytest.raises(CommandError, match="no recovery secret"):
        call_command("recovery_phrase", stdout=StringIO(), stderr=StringIO())
    identity.master_secret_create(data_dir, nacl.utils.random(32))
    settings.SEREUS = dataclasses.replace(settings.SEREUS, mirror=True)
    out = StringIO()
    with pytest.raises(CommandError, match="mirror"):
        call_command("recovery_phrase", stdout=out, stderr=StringIO())
    assert out.getvalue() == ""


# -- real nodes -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_lost_device_is_restored_from_another_full_device_of_the_party(tmp_path) -> None:
    """Real ``runnode`` processes: Alice's home node A lives on; her phone's replacement R is
    restored from the phrase with ``node_restore --from`` A (A's own LOG and SUBMIT serve it),
    lists A's thread with its history, writes, and A takes R's writes in."""
    from tests.support import cadre as real
    from tests.support.p2p import Peer

    started: list[Peer] = []
    try:
        (a,) = real.start_all(started, Peer(tmp_path / "a"))
        chat = a.thread_create("Chat-5e2a")
        a.note(chat, "from A")
        real.link_make(a)  # A's device list is made on the first cadre action
        phrase = real.recovery_phrase(a)
        r = Peer(tmp_path / "r")
        started.append(r)
        said = real.node_restore(r, phrase, [real.p2p_address(a)])
        assert "fetches your threads" in said
        r.start()
        done = real.restore_done(r)
        assert {row["state"] for row in done["threads"]} == {"done"}
        assert real.thread_ids(r) == {chat}
        assert real.member_id(r, chat) == real.member_id(a, chat)
        assert real.titles(r, chat) == {"from A"}
        r.note(chat, "from R")
        real.has_note(a, chat, "from R", timeout=60)
        assert real.device_here(r) in real.members(a, chat)[real.member_id(a, chat)]
    finally:
        for peer in started:
            peer.kill()
