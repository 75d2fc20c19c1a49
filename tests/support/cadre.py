"""One person on several real nodes (issue 17): device links, joins, removal, a mirror, recovery
from the phrase, driven through each node's API and ``manage.py``, plus what the hostile tests
need (a forged op of a removed device, a mirror's stored op tampered with, a data folder
searched for secrets).

Functions named ``*_print`` run inside a node's own ``manage.py shell`` (its settings, its data
dir), while that node is stopped, and print what the test reads back."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import base58
import pytest

from tests.support.api import Api, ApiError, wait_for
from tests.support.nodes import manage
from tests.support.p2p import Peer

JOIN_WAIT = 90.0  # a join or restore of a few small threads takes seconds; slack for a busy CI
REFUSED = (400, 403, 404, 409, 410)


@pytest.fixture
def peers() -> Iterator[list[Peer]]:
    """The nodes a test starts (``start_all``), killed when it ends, whatever happened."""
    started: list[Peer] = []
    yield started
    for peer in started:
        peer.kill()


def start_all(peers: list[Peer], *made: Peer) -> tuple[Peer, ...]:
    """Start several nodes at once (a node's start-up is mostly waiting on its own imports)."""
    peers.extend(made)
    with ThreadPoolExecutor(len(made)) as pool:
        return tuple(pool.map(Peer.start, made))


def api_of(peer: Peer) -> Api:
    assert peer.api is not None, "the node is not started"
    return peer.api


def device_of(peer_id: str) -> str:
    """The device key (hex) a peer id names: libp2p's identity multihash of the Ed25519 key."""
    return base58.b58decode(peer_id)[-32:].hex()


def device_here(peer: Peer) -> str:
    return device_of(peer.peer_id)


# -- threads and notes ----------------------------------------------------------------------------


def thread_ids(peer: Peer) -> set[str]:
    """The threads this node lists (the control thread never shows)."""
    return {t["id"] for t in api_of(peer).get("/api/v1/threads/")}


def thread_names(peer: Peer) -> dict[str, str]:
    return {t["id"]: t["name"] for t in api_of(peer).get("/api/v1/threads/")}


def member_id(peer: Peer, thread: str) -> str:
    return api_of(peer).get(f"/api/v1/threads/{thread}/")["member_id"]


def members(peer: Peer, thread: str) -> dict[str, list[str]]:
    """Each member of ``thread`` this node knows, with its certified devices (hex)."""
    listed = api_of(peer).get(f"/api/v1/threads/{thread}/members/")
    return {m["id"]: sorted(m["devices"]) for m in listed}


def titles(peer: Peer, thread: str) -> set[str]:
    try:
        return {n["title"] for n in peer.notes(thread)}
    except ApiError as exc:
        if exc.status in (403, 404):  # not (or no longer) a member here
            return set()
        raise


def has_note(peer: Peer, thread: str, title: str, *, timeout: float = 30.0) -> None:
    wait_for(
        lambda: title in titles(peer, thread),
        timeout=timeout,
        interval=0.25,
        what=f"{title!r} to reach {peer.peer_id[-6:]}",
    )


def join_thread(peer: Peer, link: str) -> str:
    """Redeem a thread invite and wait until the thread is active here; its id."""
    thread = peer.redeem(link)["id"]
    wait_for(
        lambda: api_of(peer).get(f"/api/v1/threads/{thread}/")["state"] == "active",
        timeout=60,
        what="the thread join",
    )
    return thread


def ops(peer: Peer, thread: str) -> list[dict[str, Any]]:
    """This node's op log of ``thread`` (hash, device, seq, kind, status, reason)."""
    found: list[dict[str, Any]] = []
    after = 0
    while True:
        page = api_of(peer).get(f"/api/v1/threads/{thread}/ops/?after={after}&limit=1000")
        found += page["ops"]
        if not page["ops"]:
            return found
        after = page["next"]


def op_decision(peer: Peer, thread: str, op_hash: str) -> tuple[str, str] | None:
    """The decision this node took on an op, once it holds it."""
    for op in ops(peer, thread):
        if op["hash"] == op_hash:
            return op["status"], op["reason"] or ""
    return None


# -- devices --------------------------------------------------------------------------------------


def link_make(peer: Peer, *, kind: str = "full", label: str = "") -> str:
    """A device link made on ``peer`` (its party's control thread is made on first use)."""
    return api_of(peer).post("/api/v1/devices/link/", {"kind": kind, "label": label})["link"]


def join_start(peer: Peer, link: str) -> dict[str, Any]:
    return api_of(peer).post("/api/v1/devices/join/", {"link": link})


def join_status(peer: Peer) -> dict[str, Any]:
    return api_of(peer).get("/api/v1/devices/join/")


def restore_status(peer: Peer) -> dict[str, Any]:
    return api_of(peer).get("/api/v1/devices/restore/")


def _ended(status: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any] | None]:
    def check() -> dict[str, Any] | None:
        found = status()
        return found if found.get("state") in ("done", "failed") else None

    return check


def _done(status: Callable[[], dict[str, Any]], what: str, timeout: float) -> dict[str, Any]:
    found = wait_for(_ended(status), timeout=timeout, interval=0.5, what=what)
    assert found["state"] == "done", found
    return found


def _failed(status: Callable[[], dict[str, Any]], what: str, timeout: float) -> str:
    found = wait_for(_ended(status), timeout=timeout, interval=0.5, what=what)
    assert found["state"] == "failed", found
    assert found.get("problem"), found
    return str(found["problem"])


def join_done(peer: Peer, *, timeout: float = JOIN_WAIT) -> dict[str, Any]:
    """Wait for this node's join to end; it must have succeeded."""
    return _done(lambda: join_status(peer), "the join", timeout)


def join_failed(peer: Peer, *, timeout: float = JOIN_WAIT) -> str:
    """Wait for this node's join to end; it must have been refused. The words it shows."""
    return _failed(lambda: join_status(peer), "the join", timeout)


def restore_done(peer: Peer, *, timeout: float = JOIN_WAIT) -> dict[str, Any]:
    return _done(lambda: restore_status(peer), "the restore", timeout)


def restore_failed(peer: Peer, *, timeout: float = JOIN_WAIT) -> str:
    return _failed(lambda: restore_status(peer), "the restore", timeout)


def device_add(inviter: Peer, newcomer: Peer, *, kind: str = "full", label: str = "") -> None:
    """``newcomer`` (a fresh node) becomes a device of ``inviter``'s party, its join finished."""
    join_start(newcomer, link_make(inviter, kind=kind, label=label))
    join_done(newcomer)


def device_remove(peer: Peer, device: str) -> None:
    api_of(peer).delete(f"/api/v1/devices/{device}/")


def devices(peer: Peer) -> list[dict[str, Any]]:
    return api_of(peer).get("/api/v1/devices/")


def refusal(call: Callable[[], Any]) -> str:
    """The words of a call the API refuses as a person's mistake."""
    with pytest.raises(ApiError) as refused:
        call()
    body = refused.value.body
    assert refused.value.status in REFUSED, (refused.value.status, body)
    words = (body.get("detail") or body.get("error")) if isinstance(body, dict) else body
    assert words, body
    return json.dumps(body) if isinstance(body, dict) else str(body)


# -- recovery -------------------------------------------------------------------------------------


def recovery_phrase(peer: Peer) -> str:
    """The party's 24 words, as the node's own shell prints them (its node may be running)."""
    result = manage(peer.data_dir, "recovery_phrase", env=peer.env)
    assert result.returncode == 0, result.stderr
    words = [w for w in result.stdout.split() if w.isalpha() and w.islower()]
    # The command may say a few words around the phrase: the phrase is the 24 BIP-39 words.
    from mnemonic import Mnemonic

    known = set(Mnemonic("english").wordlist)
    phrase = [w for w in words if w in known]
    assert len(phrase) >= 24, result.stdout
    return " ".join(phrase[-24:])


def p2p_address(peer: Peer) -> str:
    """One multiaddr of the running node on 127.0.0.1, ending in its peer id."""
    addrs = peer.network(wait=True)["addresses"]
    addr = next(a for a in addrs if "/ip4/127.0.0.1/" in a)
    return addr if "/p2p/" in addr else f"{addr}/p2p/{peer.peer_id}"


def node_restore(peer: Peer, phrase: str, sources: Iterable[str]) -> str:
    """``manage.py node_restore --from <addr>...`` on the (empty, stopped) node's data dir."""
    args: list[str] = []
    for source in sources:
        args += ["--from", source]
    result = manage(peer.data_dir, "node_restore", *args, stdin=phrase + "\n", env=peer.env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


# -- what a data folder holds ---------------------------------------------------------------------


def folder_holds(folder: Path, needle: bytes) -> list[str]:
    """The files under a node's data folder whose bytes contain ``needle`` (databases, their
    write-ahead logs, blobs, logs): what someone with the disk could read."""
    found = []
    for path in folder.rglob("*"):
        try:
            if path.is_file() and needle in path.read_bytes():
                found.append(str(path.relative_to(folder)))
        except FileNotFoundError:  # a journal the running node just removed
            continue
    return found


def secrets_forms(secret: bytes) -> list[bytes]:
    """How a key could sit in a file: raw, hex (either case), base64, base64url."""
    import base64

    return [
        secret,
        secret.hex().encode(),
        secret.hex().upper().encode(),
        base64.b64encode(secret).rstrip(b"="),
        base64.urlsafe_b64encode(secret).rstrip(b"="),
    ]


def key_material_print(thread_hexes: str) -> None:
    """Run in a stopped full node's shell: every secret key this node holds for the threads
    (comma-separated hex ids, the control thread's included): the master secret, each member
    key's seed, each epoch's secret, data and control keys. One hex per line."""
    from pathlib import Path

    from django.conf import settings

    from apps.core import identity
    from apps.core.thread import keys
    from apps.core.threads.registry import thread_database

    master = identity.master_secret_load(Path(settings.DATA_DIR))
    found = {master}
    for thread_hex in thread_hexes.split(","):
        thread = bytes.fromhex(thread_hex)
        found.add(bytes(keys.member_key(master, thread)))
        database = thread_database(thread)
        database.open()
        with database.lock:
            keyring = database.replica().keyring
            for held in keyring.by_keys_op.values():
                for epoch_keys in held:
                    found |= {
                        k for k in (epoch_keys.secret, epoch_keys.data, epoch_keys.control) if k
                    }
    print("\n".join(sorted(k.hex() for k in found)))


def key_material(peer: Peer, threads: Iterable[str]) -> list[bytes]:
    """``key_material_print`` in ``peer``'s (stopped) data folder."""
    out = shell(peer, f"key_material_print({','.join(threads)!r})")
    return [bytes.fromhex(line) for line in out.split()]


def shell(peer: Peer, call: str) -> str:
    """Run ``call`` (a function of this module) in ``peer``'s own ``manage.py shell``."""
    return shell_code(peer, f"from tests.support.cadre import *; {call}")


def shell_code(peer: Peer, code: str) -> str:
    result = manage(peer.data_dir, "shell", "-v", "0", "-c", code, env=peer.env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


# -- hostile ---------------------------------------------------------------------------------------


def late_op_push(removed: Peer, thread: str, targets: Iterable[Peer]) -> str:
    """What a removed device's modified node sends: a note signed by its device after it saw
    its removal (``tests.support.offline.late_note_forge``, in its stopped data folder), pushed
    by a bare peer with its device key into a sync session with each target. The op's hash."""
    from apps.core import identity
    from apps.core.thread.op import op_decode
    from tests.support.rogue import RoguePeer

    late = bytes.fromhex(
        shell_code(
            removed, f"from tests.support.offline import late_note_forge as f; print(f({thread!r}))"
        )
    )
    op = op_decode(late)
    vv = {op.device: op.seq}
    rogue = RoguePeer(identity.device_key_load(removed.data_dir).signing_key).start()
    try:
        for target in targets:
            rogue.call(rogue.connect, target.peer_id, target.network()["addresses"])
            rogue.call(rogue.sync, target.peer_id, bytes.fromhex(thread), vv, [late])
    finally:
        rogue.stop()
    return op.hash.hex()


def mirror_ops(mirror: Peer, thread: str) -> dict[str, bytes]:
    """The ops a mirror keeps of ``thread`` (hash hex -> raw), read from its database file."""
    with sqlite3.connect(f"file:{mirror.data_dir / 'node.sqlite3'}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT hash, raw FROM cadre_mirrorop WHERE thread_id = ?", (thread,)
        ).fetchall()
    return {bytes(h).hex(): bytes(r) for h, r in rows}


def mirror_holds(mirror: Peer, thread: str, hashes: Iterable[str], *, timeout: float = 30) -> None:
    wanted = set(hashes)
    wait_for(
        lambda: wanted <= set(mirror_ops(mirror, thread)),
        timeout=timeout,
        interval=0.25,
        what="the mirror to hold the ops",
    )


def mirror_tamper(mirror: Peer, op_hash: str) -> bytes:
    """Flip one byte in the middle of a stored op's ciphertext, in the (stopped) mirror's
    database: a mirror that serves a modified op. The tampered raw bytes."""
    from apps.core.thread.op import op_decode

    path = mirror.data_dir / "node.sqlite3"
    with sqlite3.connect(path) as db:
        (raw,) = db.execute(
            "SELECT raw FROM cadre_mirrorop WHERE hash = ?", (bytes.fromhex(op_hash),)
        ).fetchone()
        raw = bytes(raw)
        body = op_decode(raw).body
        at = raw.index(body) + len(body) // 2
        tampered = raw[:at] + bytes([raw[at] ^ 0x01]) + raw[at + 1 :]
        db.execute(
            "UPDATE cadre_mirrorop SET raw = ? WHERE hash = ?",
            (tampered, bytes.fromhex(op_hash)),
        )
    return tampered


def expire_links(peer: Peer) -> int:
    """Make every device link of ``peer`` expired (its own database, written beside the
    running node as an admin could): the link then stands for one older than ten minutes."""
    with sqlite3.connect(peer.data_dir / "node.sqlite3", timeout=10) as db:
        return db.execute("UPDATE cadre_devicelink SET expires_at = '2000-01-01 00:00:00'").rowcount


def settle(seconds: float) -> None:
    """Give a change that must NOT arrive the time it would have taken to arrive."""
    time.sleep(seconds)
