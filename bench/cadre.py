"""Cadre (issue 17): a party's new device, recovery through a mirror, the mirror's throughput.

- Mirror throughput (in one process of a fresh data dir, ``manage.py shell``): one thread of
  ``OPS`` one-note ops written by a party's node; the same log ingested, in ``FRAME``-op frames
  as sync delivers them, by the mirror's store (``mirror_store.ingest``: signatures and chains,
  stored as ciphertext) and by a full node of the same party (``ThreadDatabase.ingest``:
  signatures, chains, decryption, rules, tables), alternating, best of ``ROUNDS``; then the
  mirror serves the whole log in pages (``mirror_store.ops_after``, ``wire.PAGE_OPS`` /
  ``wire.PAGE_BYTES``), against the full node reading its own log in pages of the same size.
- New device (real ``runnode`` processes on 127.0.0.1): A holds ``THREADS`` threads with
  ``OPS`` one-note ops in all; a fresh B redeems A's device link (``POST /api/v1/devices/join/``)
  and the figure runs until B holds every op of every one of them. The floor, in the same run:
  a fresh C joins a thread of ``OPS`` ops by invite (the existing catch-up path), from its
  redeem until it holds every op; the faster of ``FLOOR_SAMPLES`` such threads.
- Recovery through a mirror: a mirror M (``SEREUS_MIRROR=on``) joins A's party by a mirror link
  and holds every op; A and B stop; a fresh R is restored from A's phrase with ``--from`` M and
  started; the figure runs from R's start until R holds every op of every thread.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from apps.cadre import wire
from apps.core import identity
from bench.report import figure
from tests.support.api import wait_for
from tests.support.nodes import REPO, manage, node_env
from tests.support.p2p import NODE_SETTINGS, Peer

OPS = 10_000
THREADS = 20
FRAME = 256  # ops per sync frame
ROUNDS = 3
FLOOR_SAMPLES = 2
WAIT_S = 300  # the longest a node may take to hold what it waits for


# -- mirror throughput, run inside ``manage.py shell`` of a fresh data dir -----------------------


def _notes_log(count: int) -> tuple[bytes, bytes, list[bytes]]:
    """A thread of ``count`` one-note ops written by a party's node (in memory, as
    ``thread_validation`` does): (thread, master secret, its log in admission order)."""
    import nacl.signing
    import nacl.utils
    from django.utils import timezone

    from apps.core.thread import payloads as p
    from apps.core.thread.rowid import row_id_new
    from apps.core.thread.writer import ThreadWriter
    from apps.core.threads import coltypes
    from tests.support.offline import NOTE

    master = nacl.utils.random(32)
    writer = ThreadWriter.create(
        master_secret=master, device_key=nacl.signing.SigningKey.generate(), name="bench"
    )
    schema, created = coltypes.schema_of({NOTE}), timezone.now().isoformat()
    for i in range(count):
        note = row_id_new(writer.member).hex
        cols = {"id": note, "title": f"bench {i}", "body": "", "pinned": False, "stars": 0}
        writer.write_data([p.RowChange(NOTE, note, p.UPSERT, cols | {"created": created})], schema)
    return writer.thread, master, [op.raw for op in writer.replica.admitted]


def mirror_probe(count: int) -> None:
    """Print (JSON, last line) the mirror's and a full node's ingest and serve rates."""
    import nacl.signing
    from django.conf import settings
    from django.core.management import call_command

    from apps.cadre import mirror_store
    from apps.cadre.models import MirrorOp, MirrorParty, MirrorThread
    from apps.core.thread import keys
    from apps.core.threads.database import NodeKeys, ThreadDatabase

    call_command("migrate", interactive=False, verbosity=0)
    folder = Path(settings.DATA_DIR) / "bench"
    folder.mkdir(exist_ok=True)
    started = time.perf_counter()
    thread, master, log = _notes_log(count)
    written_s = time.perf_counter() - started
    frames = [log[i : i + FRAME] for i in range(0, len(log), FRAME)]
    size = sum(len(raw) for raw in log)

    member = bytes(keys.member_key(master, thread).verify_key).hex()
    party = MirrorParty.objects.create(party=bytes(32).hex(), label="bench")
    MirrorThread.objects.create(thread_id=thread.hex(), party=party, member=member)

    def full_round(index: int) -> float:
        node = NodeKeys(nacl.signing.SigningKey.generate(), master)
        alias = f"thread_{thread.hex()}_full{index}"
        path = folder / f"full{index}.sqlite3"
        target = ThreadDatabase(thread, path=path, alias=alias, node=node)
        target.open()
        begun = time.perf_counter()
        for frame in frames:
            target.ingest(frame)
        took = time.perf_counter() - begun
        assert target.replica().store.log_size() >= len(log), "the full node refused ops"
        return took

    def mirror_round() -> float:
        MirrorOp.objects.filter(thread_id=thread.hex()).delete()
        mirror_store.forget()  # its heads, kept in memory
        begun = time.perf_counter()
        for frame in frames:
            mirror_store.ingest(thread, frame, notify=False)  # no p2p node to tell
        took = time.perf_counter() - begun
        held = MirrorOp.objects.filter(thread_id=thread.hex()).count()
        assert held == len(log), f"the mirror holds {held} of {len(log)} ops"
        return took

    full_s, mirror_s = [], []
    for index in range(ROUNDS):
        full_s.append(full_round(index))
        mirror_s.append(mirror_round())

    def mirror_serve() -> tuple[float, int]:
        begun, after, served = time.perf_counter(), 0, 0
        while True:
            raws, after, done = mirror_store.ops_after(
                thread, after, limit_ops=wire.PAGE_OPS, limit_bytes=wire.PAGE_BYTES
            )
            served += len(raws)
            if done or not raws:
                break
        return time.perf_counter() - begun, served

    full_path = folder / "full0.sqlite3"

    def full_serve() -> tuple[float, int]:
        import sqlite3

        connection = sqlite3.connect(full_path)
        begun, after, served = time.perf_counter(), 0, 0
        while True:
            rows = connection.execute(
                "SELECT n, raw FROM sereus_ops WHERE n > ? AND place = 'log' ORDER BY n LIMIT ?",
                (after, wire.PAGE_OPS),
            ).fetchall()
            if not rows:
                break
            after, served = rows[-1][0], served + len(rows)
        connection.close()
        return time.perf_counter() - begun, served

    serve_s, served = min(mirror_serve() for _ in range(ROUNDS))
    read_s, read = min(full_serve() for _ in range(ROUNDS))
    assert served == len(log), f"the mirror served {served} of {len(log)} ops"
    print(
        json.dumps(
            {
                "ops": len(log),
                "bytes": size,
                "written_s": round(written_s, 2),
                "full_ingest_s": [round(s, 3) for s in full_s],
                "mirror_ingest_s": [round(s, 3) for s in mirror_s],
                "mirror_serve_s": round(serve_s, 4),
                "full_read_s": round(read_s, 4),
                "full_read_ops": read,
            }
        )
    )


def _shell(data_dir: Path, code: str, *, timeout: float, env: dict | None = None) -> dict:
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-v", "0", "-c", code],
        cwd=REPO,
        env=node_env(data_dir, {"DJANGO_SETTINGS_MODULE": NODE_SETTINGS, **(env or {})}),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def _mirror(folder: Path, count: int) -> dict[str, Any]:
    data_dir = folder / "mirror-probe"
    data_dir.mkdir()
    code = f"from bench.cadre import mirror_probe; mirror_probe({count})"
    made = _shell(data_dir, code, timeout=1800)
    ops = made["ops"]
    full = ops / min(made["full_ingest_s"])
    mirror = ops / min(made["mirror_ingest_s"])
    serve = ops / made["mirror_serve_s"]
    read = made["full_read_ops"] / made["full_read_s"]
    print(
        f"   {ops} ops ({made['bytes'] / ops:.0f} bytes each), {FRAME}-op frames, best of "
        f"{ROUNDS}: mirror ingests {mirror:.0f} ops/s, a full node {full:.0f} ops/s "
        f"({mirror / full:.2f}x); the mirror serves {serve:.0f} ops/s in pages of "
        f"{min(ops, wire.PAGE_OPS)}, a full node reads its log at {read:.0f} ops/s",
        flush=True,
    )
    floor = f"a full node's ingest of the same ops {full:.0f} ops/s"
    return made | {
        "mirror_ingest_ops_per_s": round(mirror),
        "full_ingest_ops_per_s": round(full),
        "mirror_serve_ops_per_s": round(serve),
        "full_read_ops_per_s": round(read),
        "figures": [
            figure(f"mirror ingest, {ops} ops in {FRAME}-op frames", mirror, "ops/s", floor=floor),
            figure("mirror ingest / full node ingest", mirror / full, "x", target=1.0),
            figure(
                "mirror serves pages of its log",
                serve,
                "ops/s",
                floor=f"a full node reading its own log in pages {read:.0f} ops/s",
            ),
        ],
    }


# -- real nodes: a new device, recovery through a mirror ------------------------------------------


def _ops(peer: Peer) -> dict[str, int]:
    """Ops in ``peer``'s log of each thread it runs (its p2p node's status)."""
    return {t["thread"]: t["ops"] for t in peer.network().get("threads", ())}


def _filled(peer: Peer, threads: int, ops: int, name: str) -> list[str]:
    """``threads`` threads on ``peer`` holding ``ops`` one-note ops in all (written with the
    node stopped, many ops to a transaction: no pushes meanwhile)."""
    made = [peer.thread_create(f"{name} {i + 1}") for i in range(threads)]
    peer.stop()
    each = [ops // threads + (1 if i < ops % threads else 0) for i in range(threads)]
    calls = "; ".join(f"notes_bulk('{t}', {n})" for t, n in zip(made, each, strict=True))
    result = manage(
        peer.data_dir, "shell", "-v", "0", "-c",
        f"from tests.support.offline import notes_bulk; {calls}", env=peer.env,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-3000:])
    peer.start()
    return made


def _holds(peer: Peer, want: dict[str, int]) -> bool:
    have = _ops(peer)
    return all(have.get(thread, 0) >= ops for thread, ops in want.items())


def _catch_up_floor(folder: Path, count: int) -> list[float]:
    """Seconds for a fresh node to hold a thread of ``count`` ops joined by invite: two such
    threads, one after the other (one sample swings with the machine's load)."""
    d, c = Peer(folder / "d"), Peer(folder / "c")
    _start(d, c)
    try:
        made = _filled(d, FLOOR_SAMPLES, FLOOR_SAMPLES * count, "catch-up")
        wait_for(lambda: _holds(d, dict.fromkeys(made, count)), timeout=120, what="D to run them")
        samples = []
        for thread in made:
            want = _ops(d)[thread]
            started = time.perf_counter()
            c.redeem(d.invite(thread))
            _until(c, lambda t=thread, n=want: _holds(c, {t: n}), "the catch-up")
            samples.append(time.perf_counter() - started)
        return samples
    finally:
        _stop(d, c)


def _link(peer: Peer, kind: str) -> str:
    assert peer.api is not None
    return peer.api.post("/api/v1/devices/link/", {"kind": kind, "label": f"bench {kind}"})["link"]


def _join(peer: Peer, link: str) -> None:
    assert peer.api is not None
    peer.api.post("/api/v1/devices/join/", {"link": link})


def _mirror_holds(mirror: Peer, want: dict[str, int]) -> bool:
    """Whether the mirror's store holds ``want`` ops of each thread (read from its database:
    a mirror's p2p status is its own)."""
    path = mirror.data_dir / "node.sqlite3"
    if not path.exists():
        return False
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        rows = connection.execute(
            "SELECT thread_id, count(*) FROM cadre_mirrorop GROUP BY thread_id"
        ).fetchall()
    except sqlite3.OperationalError:
        return False
    finally:
        connection.close()
    have = dict(rows)
    return all(have.get(thread, 0) >= ops for thread, ops in want.items())


def _run_state(peer: Peer, table: str = "cadre_restorerun") -> str:
    """The state of the node's newest restore run or join (and its problem, if any), read
    from its database."""
    connection = sqlite3.connect(f"file:{peer.data_dir / 'node.sqlite3'}?mode=ro", uri=True)
    try:
        row = connection.execute(
            f"SELECT state, problem FROM {table} ORDER BY id DESC LIMIT 1"  # noqa: S608
        ).fetchone()
    except sqlite3.OperationalError as exc:
        return f"unknown ({exc})"
    finally:
        connection.close()
    return "none" if row is None else (f"{row[0]}: {row[1]}" if row[1] else row[0])


class _Phases:
    """Seconds from ``started`` at which each state of a node's join or restore run was
    first seen (polled with the figure's own wait, so within about 0.1 s)."""

    def __init__(self, peer: Peer, table: str, started: float) -> None:
        self.peer, self.table, self.started = peer, table, started
        self.seen: dict[str, float] = {}

    def __call__(self) -> str:
        state = _run_state(self.peer, self.table).split(":")[0]
        self.seen.setdefault(state, round(time.perf_counter() - self.started, 2))
        return state

    def words(self) -> str:
        return ", ".join(f"{state} at {at:.1f} s" for state, at in self.seen.items())


def _until(peer: Peer, check: Any, what: str, timeout: float = WAIT_S) -> None:
    """Poll ``check``; past ``timeout`` fail with the tail of the waiting node's log."""
    try:
        wait_for(check, timeout=timeout, interval=0.1, what=what)
    except AssertionError as exc:
        tail = "\n".join(line for line in peer.process.output if "GET /api" not in line)
        raise AssertionError(f"{exc}\n{peer.data_dir.name}'s log:\n{tail[-4000:]}") from None


def _start(*peers: Peer) -> None:
    with ThreadPoolExecutor(len(peers)) as pool:
        for future in [pool.submit(p.start) for p in peers]:
            future.result()


def _stop(*peers: Peer) -> None:
    for peer in peers:
        if peer.process.proc is not None and peer.process.proc.poll() is None:
            try:
                peer.stop()
            except AssertionError:
                peer.kill()


def _new_device(a: Peer, b: Peer, count: int, threads: int, floor_s: float) -> dict[str, Any]:
    """Seconds from B's join request until B holds every op of every thread of A's."""
    made = _filled(a, threads, count, "party")
    _link(a, "full")  # the first link makes the control thread, certifies the standby: untimed
    wait_for(lambda: set(made) <= set(_ops(a)), timeout=60, what="A to run its threads")
    link = _link(a, "full")
    started = time.perf_counter()
    _join(b, link)
    phases = _Phases(b, "cadre_pendingjoin", started)
    _until(b, lambda: phases() and _holds(b, _ops(a)), "B to hold every thread")
    joined_s = time.perf_counter() - started
    want = _ops(a)
    held = sum(want.values())
    print(
        f"   new device: B holds {len(want)} threads ({held} ops, the control thread among "
        f"them) {joined_s:.2f} s after its join; one {count}-op thread joined by invite: "
        f"{floor_s:.2f} s ({joined_s / floor_s:.2f}x); B's join: {phases.words()}",
        flush=True,
    )
    return {
        "threads": len(want),
        "ops": held,
        "join_s": round(joined_s, 2),
        "join_phases": phases.seen,
        "figures": _against(
            f"new device holds {threads} threads, {count} ops in all",
            "new device",
            joined_s,
            floor_s,
            count,
        ),
    }


def _recovery(a: Peer, b: Peer, m: Peer, r: Peer, floor_s: float, count: int) -> dict[str, Any]:
    """A mirror M of A's party holds every op; A and B stop; seconds from the start of R,
    restored from the phrase with M as its source, until R holds every op of every thread."""
    _join(m, _link(a, "mirror"))
    started = time.perf_counter()
    _until(m, lambda: _mirror_holds(m, _ops(a)), "the mirror to hold every thread")
    mirrored_s = time.perf_counter() - started
    want = _ops(a)
    phrase = identity.recovery_phrase_from_secret(identity.master_secret_load(a.data_dir))
    _stop(a, b)
    address = next(x for x in m.network()["addresses"] if "127.0.0.1" in x)
    if "/p2p/" not in address:
        address = f"{address}/p2p/{m.peer_id}"
    restored = manage(r.data_dir, "node_restore", "--from", address, stdin=phrase, env=r.env)
    if restored.returncode != 0:
        raise RuntimeError(restored.stderr[-3000:])
    token = manage(r.data_dir, "node_token", env=r.env)  # the API's token: not R's recovery
    if token.returncode != 0:
        raise RuntimeError(token.stderr[-3000:])
    r.token = token.stdout.strip()
    started = time.perf_counter()
    r.start()
    ready_s = time.perf_counter() - started
    phases = _Phases(r, "cadre_restorerun", started)
    _until(r, lambda: phases() and _holds(r, want), "R to hold every thread")
    restore_s = time.perf_counter() - started
    state = _run_state(r)
    # Then the run ends: the standby spent, the next certified, R's own ops sent to the mirror.
    ended = lambda: phases() in ("done", "failed")  # noqa: E731
    try:
        wait_for(ended, timeout=120, interval=0.1)
        ended_s: float | None = time.perf_counter() - started
    except AssertionError:
        ended_s = None
    last = _run_state(r)
    held = sum(want.values())
    print(
        f"   recovery: R, restored from the phrase with the mirror as its source, holds "
        f"{len(want)} threads ({held} ops) {restore_s:.2f} s after its start ({ready_s:.2f} s "
        f"to serve its API; its restore then {state}, then {last} at "
        f"{'-' if ended_s is None else f'{ended_s:.2f}'} s; {phases.words()}); the mirror took "
        f"{mirrored_s:.2f} s to hold them",
        flush=True,
    )
    return {
        "threads": len(want),
        "ops": held,
        "restore_s": round(restore_s, 2),
        "ready_s": round(ready_s, 2),
        "restore_state": state,
        "restore_ended_s": None if ended_s is None else round(ended_s, 2),
        "restore_last_state": last,
        "restore_phases": phases.seen,
        "mirror_filled_s": round(mirrored_s, 2),
        "figures": _against(
            "recovery from the phrase through a mirror", "recovery", restore_s, floor_s, count
        ),
    }


def _against(name: str, short: str, seconds: float, floor_s: float, count: int) -> list[dict]:
    """A figure in seconds and its ratio to the catch-up of one thread of the same ops."""
    floor = f"one {count}-op thread joined by invite {floor_s:.2f} s (faster of {FLOOR_SAMPLES})"
    return [
        figure(name, seconds, "s", higher=False, floor=floor),
        figure(f"{short} / catch-up of one thread", seconds / floor_s, "x", higher=False),
    ]


def run(*, quick: bool = False) -> dict[str, Any]:
    count = 2_000 if quick else OPS
    threads = 5 if quick else THREADS
    folder = Path(tempfile.mkdtemp(prefix="sereus-bench-cadre-"))
    result: dict[str, Any] = {"mirror": _mirror(folder, count)}
    samples = _catch_up_floor(folder, count)
    floor_s = min(samples)
    result["catch_up_s"] = [round(s, 2) for s in samples]
    a, b, r = Peer(folder / "a"), Peer(folder / "b"), Peer(folder / "r")
    m = Peer(folder / "m", env={"SEREUS_MIRROR": "on"})
    try:
        _start(a, b, m)
        result["new_device"] = _new_device(a, b, count, threads, floor_s)
        result["recovery"] = _recovery(a, b, m, r, floor_s, count)
    finally:
        _stop(a, b, m, r)
    return result
