"""Control ops at scale (issue 20, item 5): a thread of N members and M role changes.

The owner's node (a ``ThreadDatabase``, as a node runs it: SQLite store, one transaction per
write) admits N members by invite (create invite, redeem, rotate: three ops each) and then
makes M role changes, one transaction each; then a fresh replica (a new member's node, its own
``ThreadDatabase``) takes the whole log in 256-op frames, as sync delivers it.

Figures: the fresh replica's time for the large case (target <= 2 s), the owner's rate of
writing role changes (target >= 1 000 ops/s), and how the per-op cost grows from the small case
to the large one (target <= 1.3: linear). The small case of the same run is the floor; so is
plain SQLite committing one row per transaction with the same durability (one fsync each),
which bounds any write of one op per transaction on this machine. The fresh replica's store
floor is plain SQLite keeping the same log in the same frames (one transaction a frame, the same
durability, a unique index on each op's hash), measured beside each round: the log's bytes grow
faster than its ops (each admission's rotation seals keys to every member: the large case's 201
keys ops are 21 MB of its 25 MB), so storing them alone costs more per op in the large case.
"""

from __future__ import annotations

import hashlib
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import nacl.signing
import nacl.utils

from apps.core.thread import keys
from apps.core.thread.replica import Replica
from apps.core.thread.writer import ThreadWriter, redemption_request
from apps.core.threads.database import NodeKeys, ThreadDatabase
from bench.report import figure

FRAME = 256  # ops per sync frame
ROUNDS = 3
ROLES = ("writer", "reader")
SMALL, LARGE = (50, 2_000), (200, 10_000)
QUICK = (10, 400), (40, 2_000)  # the same ratios, a fifth of the size


def _node() -> NodeKeys:
    return NodeKeys(nacl.signing.SigningKey.generate(), nacl.utils.random(32))


def _database(folder: Path, thread: bytes, name: str, node: NodeKeys) -> ThreadDatabase:
    return ThreadDatabase(
        thread, path=folder / f"{name}.sqlite3", alias=f"thread_{thread.hex()}_{name}", node=node
    )


def _commit_floor(path: Path, count: int) -> float:
    """Single-row transactions per second on plain SQLite with the thread's durability (WAL,
    synchronous=FULL: one fsync per commit): what no write of one op per transaction beats."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, body BLOB)")
    body = bytes(600)  # about the size of a role change op
    started = time.perf_counter()
    for _ in range(count):
        connection.execute("BEGIN")
        connection.execute("INSERT INTO t (body) VALUES (?)", (body,))
        connection.execute("COMMIT")
    rate = count / (time.perf_counter() - started)
    connection.close()
    return rate


def _store_floor(path: Path, log: list[bytes], hashes: list[bytes]) -> float:
    """Seconds for plain SQLite to keep ``log`` in FRAME-op transactions with the thread's
    durability (WAL, synchronous=FULL) and a unique index on the op hash: what storing the fresh
    replica's log costs before any validation."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute(
        "CREATE TABLE t (n INTEGER PRIMARY KEY, hash BLOB NOT NULL UNIQUE, raw BLOB)"
    )
    started = time.perf_counter()
    for start in range(0, len(log), FRAME):
        connection.execute("BEGIN")
        connection.executemany(
            "INSERT INTO t (hash, raw) VALUES (?, ?)",
            zip(hashes[start : start + FRAME], log[start : start + FRAME], strict=True),
        )
        connection.execute("COMMIT")
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed


def _case(folder: Path, members: int, changes: int) -> dict[str, Any]:
    owner = _node()
    writer = ThreadWriter.create(
        master_secret=owner.master_secret, device_key=owner.device, name="bench"
    )
    thread = writer.thread
    name = f"{members}x{changes}"
    source = _database(folder, thread, f"owner{name}", owner)
    source.ingest(op.raw for op in writer.replica.admitted)
    expiry = time.time_ns() // 1_000_000 + 3_600_000
    parties = [_node() for _ in range(members)]
    started = time.perf_counter()
    for party in parties:
        invite = source.write(
            lambda w: w.invite_create(role="writer", expiry=expiry, inviter="bench")
        )
        request = redemption_request(
            invite, master_secret=party.master_secret, device_key=party.device
        )
        source.write(lambda w, request=request: w.admit(request))
    admit_s = time.perf_counter() - started
    targets = [bytes(keys.member_key(p.master_secret, thread).verify_key) for p in parties]
    # The commit floor just before and just after the writes (the machine is shared: the
    # floor is only comparable measured alongside).
    floor_path, floor_count = folder / f"floor{name}.sqlite3", max(500, changes // 5)
    commits = _commit_floor(floor_path, floor_count)
    started = time.perf_counter()
    for i in range(changes):
        target = targets[i % members]
        role = ROLES[(i // members) % len(ROLES)]
        source.write(lambda w, target=target, role=role: w.set_role(target, role))
    write_s = time.perf_counter() - started
    commits = (commits + _commit_floor(floor_path, floor_count)) / 2
    log = [
        raw
        for (raw,) in source.raw().execute(
            "SELECT raw FROM sereus_ops WHERE place = 'log' ORDER BY n"
        )
    ]
    print(
        f"   {members} members, {changes} role changes ({len(log)} ops): admitting "
        f"{3 * members / admit_s:.0f} ops/s, role changes written {changes / write_s:.0f} ops/s "
        f"(plain SQLite one-row commits {commits:.0f}/s)",
        flush=True,
    )
    return {
        "members": members,
        "changes": changes,
        "ops": len(log),
        "write_ops_per_s": round(changes / write_s),
        "plain_commits_per_s": round(commits),
        # For ``_fresh`` (not in the results).
        "_log": log,
        "_hashes": [hashlib.blake2b(raw, digest_size=32).digest() for raw in log],
        "_source": source,
        "_newcomer": parties[-1],
        "_fresh_s": [],
        "_memory_s": [],
        "_store_s": [],
    }


def _fresh(folder: Path, case: dict[str, Any], round_: int) -> None:
    """A new member's node takes the owner's log in sync frames: one timed round."""
    log, source = case["_log"], case["_source"]
    fresh = _database(folder, source.thread, f"fresh{source.alias}r{round_}", case["_newcomer"])
    started = time.perf_counter()
    for start in range(0, len(log), FRAME):
        fresh.ingest(log[start : start + FRAME])
    case["_fresh_s"].append(time.perf_counter() - started)
    theirs = fresh.replica()
    assert theirs.snapshot() == source.replica().snapshot(), "the fresh replica disagrees"
    assert len(theirs.accepted_hashes()) == len(log)
    # The same without SQLite (a replica over the in-memory store): the resolution's own share.
    newcomer = case["_newcomer"]
    member_key = keys.member_key(newcomer.master_secret, source.thread)
    memory = Replica.for_members(source.thread, [member_key])
    started = time.perf_counter()
    for start in range(0, len(log), FRAME):
        memory.ingest_many(log[start : start + FRAME])
    case["_memory_s"].append(time.perf_counter() - started)
    assert memory.snapshot() == theirs.snapshot()
    floor_path = folder / f"store{source.alias}r{round_}.sqlite3"
    case["_store_s"].append(_store_floor(floor_path, log, case["_hashes"]))


def _settled(case: dict[str, Any]) -> dict[str, Any]:
    fresh_s, memory_s = min(case["_fresh_s"]), min(case["_memory_s"])
    store_s = min(case["_store_s"])
    result = {k: v for k, v in case.items() if not k.startswith("_")}
    result |= {
        "fresh_s": round(fresh_s, 3),
        "fresh_ops_per_s": round(case["ops"] / fresh_s),
        "memory_s": round(memory_s, 3),
        "store_floor_s": round(store_s, 3),
        "log_bytes": sum(map(len, case["_log"])),
    }
    print(
        f"   {case['members']} members, {case['changes']} role changes: fresh replica "
        f"{fresh_s:.2f} s ({case['ops'] / fresh_s:.0f} ops/s; in memory, no SQLite, "
        f"{memory_s:.2f} s; plain SQLite keeping the same {result['log_bytes'] / 1e6:.1f} MB "
        f"in the same frames {store_s:.3f} s), best of {ROUNDS}",
        flush=True,
    )
    return result


def run(*, quick: bool = False) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="sereus-bench-control-"))
    small_case, large_case = QUICK if quick else (SMALL, LARGE)
    cases = [_case(folder, *small_case), _case(folder, *large_case)]
    # The two sizes taken by fresh replicas in turn, best of ROUNDS each: the machine is
    # shared, and the per-op ratio is only fair between runs made side by side.
    for round_ in range(ROUNDS):
        for case in cases:
            _fresh(folder, case, round_)
    small, large = (_settled(case) for case in cases)
    commits = large["plain_commits_per_s"]
    per_op = (large["fresh_s"] / large["ops"]) / (small["fresh_s"] / small["ops"])
    # Each case's write rate as a share of the commit floor measured alongside it: fsync time
    # swings with the other work on the machine, the share much less.
    write_growth = (small["write_ops_per_s"] / small["plain_commits_per_s"]) / (
        large["write_ops_per_s"] / large["plain_commits_per_s"]
    )
    floor = (
        f"{small['ops']} ops: {small['fresh_s']:.2f} s, writing {small['write_ops_per_s']} ops/s"
    )
    stored = f"plain SQLite keeping the same log in the same frames: {large['store_floor_s']:.3f} s"
    store_growth = (large["store_floor_s"] / large["ops"]) / (small["store_floor_s"] / small["ops"])
    return {
        "small": small,
        "large": large,
        "figures": [
            figure(
                f"control: fresh replica, {large['members']} members + {large['changes']} "
                "role changes",
                large["fresh_s"],
                "s",
                target=2.0 * large["ops"] / 10_602,
                higher=False,
                floor=f"{floor}; {stored}",
            ),
            figure(
                "control: role changes written on the owner's node",
                large["write_ops_per_s"],
                "ops/s",
                target=1_000,
                floor=f"{floor}; plain SQLite one-row transactions {commits:.0f}/s",
            ),
            figure(
                "control: role changes written, share of plain SQLite one-row commits",
                large["write_ops_per_s"] / commits,
                "x",
                floor=f"plain SQLite one-row transactions {commits:.0f}/s (the fsync per commit)",
            ),
            figure(
                "control: fresh replica per-op cost, large / small",
                per_op,
                "x",
                target=1.3,
                higher=False,
                floor=floor,
            ),
            figure(
                "control: plain SQLite keeping the same log in the same frames, per-op cost, "
                "large / small",
                store_growth,
                "x",
                floor=f"{small['ops']} ops ({small['log_bytes'] / 1e6:.1f} MB): "
                f"{small['store_floor_s']:.3f} s; {large['ops']} ops "
                f"({large['log_bytes'] / 1e6:.1f} MB): {large['store_floor_s']:.3f} s",
            ),
            figure(
                "control: fresh in-memory replica (no SQLite) per-op cost, large / small",
                (large["memory_s"] / large["ops"]) / (small["memory_s"] / small["ops"]),
                "x",
                target=1.3,
                higher=False,
                floor=f"{small['ops']} ops in memory: {small['memory_s']:.2f} s",
            ),
            figure(
                "control: writing per-op cost, large / small (each over its commit floor)",
                write_growth,
                "x",
                target=1.3,
                higher=False,
                floor=floor,
            ),
        ],
    }
