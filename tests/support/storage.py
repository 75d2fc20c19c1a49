"""Backups across real nodes (issue 18): a deterministic tree of mixed files to back up, a
comparison of a restored tree with its source, the storage API of a running node, what a
holder keeps on its disk (counted, damaged, wiped) and requests to a holder from a peer that
is none of the party's nodes.

The tree carries markers a leak would show: every file with content holds a unique needle
(all starting with ``NEEDLE``) and every file name holds ``NAME_MARK``; a holder's data folder
that contains either has kept plaintext or a file name."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import socket
import sqlite3
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.api import ApiError, wait_for
from tests.support.cadre import api_of, join_thread, start_all
from tests.support.p2p import Peer

NEEDLE = b"needle-18c4e7a9:"  # every needle starts so: one search finds any of them
NAME_MARK = "bkq18z"  # in every file name of a tree
MB = 1 << 20
CHUNK_MAX = 4 << 20  # the engine's largest chunk (INTERFACES.md, H1)
JOB_WAIT = 600.0
HELD = Path("storage") / "held"  # under a node's data dir: <party hex>/<xx>/<digest hex>


# -- a tree of mixed files ------------------------------------------------------------------------


@dataclass
class Tree:
    """What ``tree_make`` wrote: the counts a snapshot should report and the leak markers."""

    root: Path
    needles: list[bytes] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # file names (each holds NAME_MARK)
    files: int = 0  # regular files
    size: int = 0  # their bytes
    duplicate_bytes: int = 0  # bytes of files that repeat another file's content
    random_files: list[Path] = field(default_factory=list)  # incompressible, largest first


def _words(rng: random.Random) -> list[str]:
    syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa", "qu", "den", "mar"]
    return ["".join(rng.choices(syllables, k=rng.randint(1, 4))) for _ in range(400)]


def _text(rng: random.Random, lines: list[str], size: int, needle: bytes) -> bytes:
    # Text-like: lines drawn from a small pool compress well (zstd) yet no chunk repeats.
    body = "\n".join(rng.choices(lines, k=size // 60 + 1)).encode()
    if size <= 2 * len(needle) + 2:
        return (needle + body)[:size]
    at = size // 2
    return (needle + b"\n" + body[:at] + needle + body[at:])[:size]


def _random(rng: random.Random, size: int, needle: bytes) -> bytes:
    # Incompressible, with the needle inside (a share of it must not show the needle either).
    data = bytearray(rng.randbytes(size))
    if size > len(needle):
        at = rng.randrange(size - len(needle))
        data[at : at + len(needle)] = needle
    return bytes(data)


def _times(rng: random.Random) -> tuple[int, int]:
    # Whole seconds in 2021-2024 plus nanoseconds: a restore must keep the nanoseconds too.
    ns = (1_610_000_000 + rng.randrange(100_000_000)) * 1_000_000_000 + rng.randrange(10**9)
    return ns, ns


def tree_make(root: Path, *, size: int, seed: int = 18) -> Tree:
    """About ``size`` bytes of files under ``root`` (made), always the same for a seed: about
    a third text-like (compressible), the rest random, a tenth duplicated under other names,
    nested folders (one 0o700), modes 0o600/0o640/0o755, set mtimes (with nanoseconds), an
    empty file, an empty folder, a relative symbolic link and names with spaces and accents."""
    rng = random.Random(seed)
    lines = [" ".join(rng.choices(_words(rng), k=rng.randint(6, 14))) for _ in range(600)]
    tree = Tree(root=root)
    folders = [
        "documents",
        "documents/letters/2024",
        "documents/taxes",
        "photos/2023/summer holiday",
        "photos/2024",
        "private",
        "scripts",
        "copies",
        "empty folder",
    ]
    for folder in folders:
        (root / folder).mkdir(parents=True, exist_ok=True)
    largest = max(64 << 10, min(24 * MB, size // 8))

    def name(stem: str, ext: str) -> str:
        made = f"{stem}-{NAME_MARK}{rng.getrandbits(32):08x}.{ext}"
        tree.names.append(made)
        return made

    def write(path: Path, data: bytes, mode: int = 0o644) -> None:
        path.write_bytes(data)
        path.chmod(mode)
        tree.files += 1
        tree.size += len(data)

    def needle() -> bytes:
        made = NEEDLE + f"{len(tree.needles):05d}:{rng.getrandbits(64):016x}".encode()
        tree.needles.append(made)
        return made

    text_budget, random_budget = size // 3, size - size // 3 - size // 10
    text_places = ["documents", "documents/letters/2024", "documents/taxes", "private"]
    made_text: list[Path] = []
    # Many small files: a file row each, most of them smaller than one chunk.
    for i in range(min(150, size // (64 << 10))):
        n = rng.randint(64, 16 << 10)
        path = root / folders[i % 3] / name("memo", "md")
        write(path, _text(rng, lines, n, needle()), rng.choice([0o644, 0o600]))
        text_budget -= n
    while text_budget > 0:
        n = min(text_budget, rng.randint(4 << 10, max(8 << 10, largest // 6)))
        folder = text_places[len(made_text) % len(text_places)]
        path = root / folder / name("letter Résumé" if not made_text else "notes", "txt")
        mode = 0o600 if folder == "private" else rng.choice([0o644, 0o640])
        write(path, _text(rng, lines, n, needle()), mode)
        made_text.append(path)
        text_budget -= n
    random_places = ["photos/2023/summer holiday", "photos/2024", "documents/taxes"]
    while random_budget > 0:
        n = min(random_budget, rng.randint(64 << 10, largest))
        folder = random_places[len(tree.random_files) % len(random_places)]
        path = root / folder / name("photo", "jpg")
        write(path, _random(rng, n, needle()))
        tree.random_files.append(path)
        random_budget -= n
    tree.random_files.sort(key=lambda p: p.stat().st_size, reverse=True)
    # Duplicates: the same content under other names (stored once).
    duplicates = size // 10
    for original in [*made_text[:3], *tree.random_files[::-1]]:
        if duplicates <= 0:
            break
        data = original.read_bytes()
        write(root / "copies" / name("copy of photo", "jpg"), data)
        tree.duplicate_bytes += len(data)
        duplicates -= len(data)
    write(root / "scripts" / name("backup-helper", "sh"), b"#!/bin/sh\necho hello\n", 0o755)
    write(root / "documents" / name("empty", "txt"), b"", 0o644)
    os.symlink(
        os.path.relpath(tree.random_files[0], root / "photos"),
        root / "photos" / name("latest", "lnk"),
    )
    (root / "private").chmod(0o700)
    _times_set(root, rng)
    return tree


def _times_set(root: Path, rng: random.Random) -> None:
    # Files first, then folders deepest first: writing in a folder changes its mtime.
    entries = sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True)
    for path in entries:
        if not path.is_symlink() and path.is_file():
            os.utime(path, ns=_times(rng))
    for path in entries:
        if not path.is_symlink() and path.is_dir():
            os.utime(path, ns=_times(rng))


def tree_change(tree: Tree, *, fraction: float = 0.01, seed: int = 1818) -> tuple[int, int]:
    """Overwrite ``fraction`` of the tree's bytes in place, in the middle of its two largest
    random files (same sizes, new mtimes). (bytes changed, regions changed)."""
    rng = random.Random(seed)
    files = tree.random_files[:2]
    each = int(tree.size * fraction) // len(files)
    changed = 0
    for path in files:
        data = bytearray(path.read_bytes())
        length = min(each, len(data) // 2)
        at = len(data) // 2 - length // 2
        data[at : at + length] = rng.randbytes(length)
        folder_times = path.parent.stat()
        path.write_bytes(bytes(data))
        later = path.stat().st_mtime_ns + 86_400 * 10**9
        os.utime(path, ns=(later, later))
        os.utime(path.parent, ns=(folder_times.st_atime_ns, folder_times.st_mtime_ns))
        changed += length
    return changed, len(files)


# -- comparing trees ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    kind: str  # file, dir, link, other
    mode: int
    mtime_ns: int
    size: int
    content: str  # a file's BLAKE2b, a link's target


def _digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=32)
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def tree_entries(root: Path) -> dict[str, Entry]:
    """Every entry under ``root`` (not following links), by its path relative to ``root``."""
    found: dict[str, Entry] = {}

    def walk(folder: Path) -> None:
        with os.scandir(folder) as listing:
            for item in listing:
                path = Path(item.path)
                rel = path.relative_to(root).as_posix()
                st = item.stat(follow_symlinks=False)
                if item.is_symlink():
                    found[rel] = Entry("link", 0, 0, 0, os.readlink(path))
                elif item.is_dir(follow_symlinks=False):
                    found[rel] = Entry("dir", stat.S_IMODE(st.st_mode), st.st_mtime_ns, 0, "")
                    walk(path)
                elif item.is_file(follow_symlinks=False):
                    found[rel] = Entry(
                        "file", stat.S_IMODE(st.st_mode), st.st_mtime_ns, st.st_size, _digest(path)
                    )
                else:
                    found[rel] = Entry("other", 0, 0, 0, "")

    walk(root)
    return found


def tree_diff(source: Path, restored: Path, *, most: int = 20) -> list[str]:
    """How ``restored`` differs from ``source``: missing or extra entries, other bytes, modes,
    mtimes (nanoseconds) or link targets. Empty when they are the same."""
    want, got = tree_entries(source), tree_entries(restored)
    out = [f"missing: {p}" for p in sorted(want.keys() - got.keys())]
    out += [f"extra: {p}" for p in sorted(got.keys() - want.keys())]
    for path in sorted(want.keys() & got.keys()):
        a, b = want[path], got[path]
        for what in ("kind", "size", "content", "mode", "mtime_ns"):
            if getattr(a, what) != getattr(b, what):
                shown = (oct if what == "mode" else str)(getattr(a, what))
                other = (oct if what == "mode" else str)(getattr(b, what))
                out.append(f"{path}: {what} {shown} != {other}")
                break
    return out[:most]


# -- the storage API ------------------------------------------------------------------------------


def _listed(found: Any) -> list[dict[str, Any]]:
    # A plain list, or a page ({"results": [...]}) of one.
    return found["results"] if isinstance(found, dict) and "results" in found else found


def api_or_skip(peer: Peer) -> None:
    """Skip the test while the node has no storage API yet (it is being built alongside)."""
    import pytest

    try:
        api_of(peer).get("/api/v1/storage/holders/")
    except ApiError as exc:
        if exc.status == 404:
            pytest.skip("the storage API (/api/v1/storage/holders/) is not there yet")
        raise


def backup_start(peer: Peer, path: Path, label: str = "") -> dict[str, Any]:
    return api_of(peer).post("/api/v1/storage/backups/", {"path": str(path), "label": label})


def job(peer: Peer, job_id: Any) -> dict[str, Any]:
    return api_of(peer).get(f"/api/v1/storage/jobs/{job_id}/")


def job_wait(
    peer: Peer, job_id: Any, *, timeout: float = JOB_WAIT, ok: bool = True
) -> dict[str, Any]:
    """Follow a job to its end, printing its progress as it moves; it must end done (``ok``)
    or failed. The job's last view, with ``percents``: each percent it showed, in order."""
    percents: list[int] = []
    last = ""
    deadline = time.monotonic() + timeout
    while True:
        found = job(peer, job_id)
        percent = found.get("percent")
        if percent is not None and (not percents or percents[-1] != percent):
            percents.append(percent)
        line = " ".join(
            f"{k}={found.get(k)}"
            for k in ("state", "percent", "files_done", "files_total", "bytes_done", "new_bytes")
        )
        if line != last:
            print(f"job {job_id} on {peer.peer_id[-6:]}: {line}", flush=True)
            last = line
        if found.get("state") in ("done", "failed"):
            break
        assert time.monotonic() < deadline, f"the job did not end in {timeout}s: {found}"
        time.sleep(0.5)
    found["percents"] = percents
    if ok:
        assert found["state"] == "done", found
    else:
        assert found["state"] == "failed", found
    return found


def _followed(peer: Peer, start: Any, timeout: float) -> dict[str, Any]:
    # A job started by ``start()`` and followed to its end, with its seconds.
    started = time.monotonic()
    done = job_wait(peer, start()["id"], timeout=timeout)
    done["seconds"] = round(time.monotonic() - started, 1)
    return done


def backup(peer: Peer, path: Path, label: str = "", *, timeout: float = JOB_WAIT) -> dict:
    """A backup through the API, followed to its end: the finished job (with its timing)."""
    return _followed(peer, lambda: backup_start(peer, path, label), timeout)


def snapshots(peer: Peer) -> list[dict[str, Any]]:
    return _listed(api_of(peer).get("/api/v1/storage/snapshots/"))


def snapshot(peer: Peer, snapshot_id: str) -> dict[str, Any]:
    found = [s for s in snapshots(peer) if str(s["id"]) == str(snapshot_id)]
    assert found, f"no snapshot {snapshot_id} listed"
    return found[0]


def snapshot_files(peer: Peer, snapshot_id: str, path: str = "") -> list[dict[str, Any]]:
    """One folder of a snapshot (every page of it)."""
    from urllib.parse import quote

    out: list[dict[str, Any]] = []
    page, pages = 1, 1
    while page <= pages:
        found = api_of(peer).get(
            f"/api/v1/storage/snapshots/{snapshot_id}/files/?path={quote(path)}&page={page}"
        )
        out += found["entries"]
        pages = found["pages"]
        page += 1
    return out


def restore_start(
    peer: Peer, snapshot_id: str, target: Path, paths: list[str] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"snapshot": str(snapshot_id), "target": str(target)}
    if paths is not None:
        body["paths"] = paths
    return api_of(peer).post("/api/v1/storage/restores/", body)


def restore(
    peer: Peer, snapshot_id: str, target: Path, *, timeout: float = JOB_WAIT
) -> dict[str, Any]:
    """A restore through the API, followed to its end: the finished job (with its timing)."""
    return _followed(peer, lambda: restore_start(peer, snapshot_id, target), timeout)


def holders(peer: Peer) -> list[dict[str, Any]]:
    found = api_of(peer).get("/api/v1/storage/holders/")
    if isinstance(found, dict) and "holders" in found:
        return found["holders"]
    return _listed(found)


def holders_totals(peer: Peer) -> dict[str, Any]:
    """The totals of the holders page: source and stored bytes, chunks, k and n."""
    return api_of(peer).get("/api/v1/storage/holders/")["totals"]


def holder_of(peer: Peer, holder: Peer) -> dict[str, Any] | None:
    """What ``peer`` lists about the holder node ``holder`` (by its device or peer id)."""
    from tests.support.cadre import device_here

    device = device_here(holder)
    for found in holders(peer):
        if found.get("device") == device or found.get("peer_id") == holder.peer_id:
            return found
    return None


def holders_wait(peer: Peer, expected: list[Peer], *, timeout: float = 90.0) -> list[dict]:
    """Wait until ``peer`` lists each of ``expected`` as an active holder."""

    def ready() -> list[dict] | None:
        found = [holder_of(peer, h) for h in expected]
        if all(f is not None and f.get("state") == "active" for f in found):
            return found  # type: ignore[return-value]
        return None

    return wait_for(ready, timeout=timeout, interval=0.5, what="the holders to be active")


def holder_invite(peer: Peer, *, quota_mb: int, label: str = "") -> str:
    body = {"quota_mb": quota_mb, "label": label}
    return api_of(peer).post("/api/v1/storage/holders/invite/", body)["link"]


def holders_join(owner: Peer, friends: list[Peer], *, quota_mb: int) -> None:
    """Each friend's node redeems a holder invite of ``owner``'s, like any invite; the owner
    names each holder after its data folder ("carol" is "Carol")."""
    for friend in friends:
        label = friend.data_dir.name.capitalize()
        join_thread(friend, holder_invite(owner, quota_mb=quota_mb, label=label))


def check_now(peer: Peer) -> dict[str, Any]:
    """ "Check holders now": audits every holder and repairs what it finds (bounded)."""
    return api_of(peer).post("/api/v1/storage/holders/check/", timeout=180)


def held(peer: Peer) -> list[dict[str, Any]]:
    """On a holder: the parties it holds backups for."""
    found = api_of(peer).get("/api/v1/storage/held/")
    return found.get("parties", found) if isinstance(found, dict) else found


def held_grant(peer: Peer, party: str, quota_mb: int) -> Any:
    return api_of(peer).request("PUT", f"/api/v1/storage/held/{party}/", {"quota_mb": quota_mb})


def api_refusal(call: Any) -> tuple[int, str]:
    """The status and words of an API call that must be refused."""
    try:
        call()
    except ApiError as exc:
        body = exc.body
        words = body.get("detail") or body.get("error") if isinstance(body, dict) else body
        return exc.status, str(words)
    raise AssertionError("the call was not refused")


# -- a holder's disk ------------------------------------------------------------------------------


def held_files(peer: Peer, party: str | None = None) -> list[Path]:
    """The share files a node keeps (for one party, or all), sorted."""
    root = peer.data_dir / HELD
    if party is not None:
        root = root / party
    if not root.exists():
        return []
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and len(p.name) == 64 and all(c in "0123456789abcdef" for c in p.name)
    )


def held_count(peer: Peer, party: str | None = None) -> int:
    return len(held_files(peer, party))


def held_bytes(peer: Peer) -> int:
    return sum(p.stat().st_size for p in held_files(peer))


def held_parties(peer: Peer) -> list[str]:
    root = peer.data_dir / HELD
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.exists() else []


def held_corrupt(peer: Peer, *, count: int) -> list[str]:
    """Flip one byte in the middle of ``count`` of the node's share files, as a failing disk (or
    a holder that keeps something else) would: the digests of the shares altered."""
    altered = []
    for path in held_files(peer)[:count]:
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x5A
        path.chmod(0o600)
        path.write_bytes(bytes(data))
        altered.append(path.name)
    return altered


def held_wipe(peer: Peer) -> None:
    """Everything the (stopped) node keeps of others' shares, gone: a holder back empty."""
    shutil.rmtree(peer.data_dir / HELD, ignore_errors=True)


def leaks(folder: Path, markers: list[bytes]) -> dict[str, list[str]]:
    """Each marker found in any file under ``folder`` (each file read once): marker -> files."""
    found: dict[str, list[str]] = {}
    for path in folder.rglob("*"):
        try:
            if path.is_symlink() or not path.is_file():
                continue
            data = path.read_bytes()
        except (FileNotFoundError, PermissionError):  # a journal just removed
            continue
        for marker in markers:
            if marker in data:
                found.setdefault(marker.decode(errors="replace"), []).append(
                    str(path.relative_to(folder))
                )
    return found


def storage_thread(peer: Peer) -> str:
    """The id of the party's storage thread on this node (its database)."""
    with sqlite3.connect(f"file:{peer.data_dir / 'node.sqlite3'}?mode=ro", uri=True) as db:
        row = db.execute("SELECT id FROM core_thread WHERE app = 'backups'").fetchone()
    assert row, "no storage thread on this node"
    return row[0]


@contextmanager
def nodes(work: Path, *names: str, env: dict[str, str] | None = None) -> Iterator[list[Peer]]:
    """Nodes named ``names`` under ``work``, started at once on fixed ports, killed at the end
    whatever happened (with any node the test appends to the list)."""
    started: list[Peer] = []
    try:
        start_all(started, *(peer_at(work / name, env=env) for name in names))
        yield started
    finally:
        for peer in started:
            peer.kill()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now: a holder restarted on it keeps its address."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peer_at(folder: Path, **kwargs: Any) -> Peer:
    """A node that listens on one fixed port, whatever restarts it goes through."""
    return Peer(folder, p2p_listen=f"/ip4/127.0.0.1/tcp/{free_port()}", **kwargs)


# -- a peer that is none of the party's nodes -----------------------------------------------------


@dataclass
class Answer:
    ok: bool
    body: dict[str, Any] | None = None  # the answer, decoded, when ok
    code: str = ""  # the refusal's code (refused, busy, malformed, unavailable)
    words: str = ""


async def _storage_ask(host: Any, peer_id: str, payload: bytes) -> bytes:
    """One request of the holder protocol over a fresh stream; the raw answer frame."""
    import trio
    from libp2p.custom_types import TProtocol
    from libp2p.network.stream.exceptions import StreamEOF
    from libp2p.peer.id import ID

    from apps.p2p.app_protocols import varint
    from apps.storage import wire

    with trio.fail_after(30):
        stream = await host.new_stream(ID.from_base58(peer_id), [TProtocol(wire.PROTOCOL)])
        await stream.write(varint(len(payload)) + payload)
        data = bytearray()
        try:
            while chunk := await stream.read(1 << 16):
                data.extend(chunk)
        except StreamEOF:
            pass
    size, shift, at = 0, 0, 0
    while True:
        byte = data[at]
        at += 1
        size |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    assert len(data) - at == size, "a cut answer"
    return bytes(data[at:])


def storage_request(
    rogue: Any, target: Peer, *, master: bytes, op: str, purpose: str, **fields: Any
) -> Answer:
    """Ask ``target`` over the holder protocol from ``rogue`` (a started ``RoguePeer``: its own
    device key), with a party proof of the party whose master secret is ``master``."""
    from apps.cadre import keys as cadre_keys
    from apps.p2p import frames
    from apps.storage import wire
    from tests.support.cadre import device_here

    rogue.call(rogue.connect, target.peer_id, target.network()["addresses"])
    proof = cadre_keys.party_proof_sign(
        master,
        purpose=purpose,
        requester=bytes(rogue.key.verify_key),
        responder=bytes.fromhex(device_here(target)),
        at_ms=int(time.time() * 1000),
    )
    payload = wire.encode({"op": op, "proof": proof, **fields})
    raw = rogue.call(_storage_ask, rogue.host, target.peer_id, payload)
    if raw[:1] == b"\x00":
        return Answer(True, wire.decode(raw[1:], max_size=wire.MAX_ANSWER))
    frame = frames.decode(raw)
    assert isinstance(frame, frames.Error), frame
    return Answer(False, code=frame.code, words=frame.detail)


def figures(**values: Any) -> None:
    """Print the figures a test measured (seen with ``-s`` and in the report)."""
    shown = []
    for name, value in values.items():
        shown.append(
            f"{name}={value / MB:.1f} MB"
            if isinstance(value, int) and value > MB
            else f"{name}={value}"
        )
    print("FIGURES " + " ".join(shown), flush=True)


# -- a holder that lies ---------------------------------------------------------------------------


async def _frame(stream: Any, limit: int) -> bytes:
    size, shift = 0, 0
    for _ in range(10):
        byte = await stream.read(1)
        if not byte:
            raise EOFError("the stream ended")
        size |= (byte[0] & 0x7F) << shift
        shift += 7
        if not byte[0] & 0x80:
            break
    if size > limit:
        raise ValueError("a frame too large")
    data = bytearray()
    while len(data) < size:
        chunk = await stream.read(size - len(data))
        if not chunk:
            raise EOFError("the stream ended")
        data.extend(chunk)
    return bytes(data)


class LyingHolder:
    """A friend's node swapped for one that keeps nothing yet still answers: at the same peer id
    (its device key) and address, every audit is answered with a wrong proof, every get with
    damaged bytes, every put with nothing kept. ``asked`` counts the requests by op."""

    def __init__(self, peer: Peer) -> None:
        from apps.core import identity
        from apps.p2p.bridge import TrioThread

        self.key = identity.device_key_load(peer.data_dir).signing_key
        self.listen = peer.process.p2p_listen
        self.bridge = TrioThread("lying-holder")
        self.asked: dict[str, int] = {}

    def start(self) -> LyingHolder:
        from apps.p2p.host import quiet_libp2p_logs

        quiet_libp2p_logs()
        self.bridge.start(self._run)
        return self

    def stop(self) -> None:
        self.bridge.stop()

    async def _run(self, *, task_status: Any = None) -> None:
        import multiaddr
        import trio
        from libp2p.custom_types import TProtocol

        from apps.p2p.host import host_build
        from apps.storage import wire

        host = host_build(self.key)
        host.set_stream_handler(TProtocol(wire.PROTOCOL), self._serve)
        async with host.run(listen_addrs=[multiaddr.Multiaddr(self.listen)]):
            (task_status or trio.TASK_STATUS_IGNORED).started()
            await trio.sleep_forever()

    async def _serve(self, stream: Any) -> None:
        import contextlib

        from apps.p2p.app_protocols import varint
        from apps.storage import wire

        try:
            request = wire.decode(await _frame(stream, wire.MAX_REQUEST), max_size=wire.MAX_REQUEST)
            op = str(request.get("op"))
            self.asked[op] = self.asked.get(op, 0) + 1
            answer = wire.encode(self._answer(op, request))
            await stream.write(varint(len(answer) + 1) + b"\x00" + answer)
        except Exception:  # noqa: S110 - a liar does not care
            pass
        finally:
            with contextlib.suppress(Exception):
                await stream.close()

    @staticmethod
    def _answer(op: str, request: dict[str, Any]) -> dict[str, Any]:
        if op == "audit":
            return {"answers": [os.urandom(32) for _ in request.get("items", [])]}
        if op == "get":
            return {"shares": [os.urandom(4096) for _ in request.get("digests", [])]}
        if op == "put":
            return {"kept": [], "used": 0, "quota": 1 << 30}
        if op == "release":
            return {"released": 0, "used": 0}
        return {"used": 0, "quota": 1 << 30, "shares": 0}
