"""Storage (issue 18): backup and restore throughput of the engine against borg, same data.

- Data: ``SIZE`` bytes of mixed files, made deterministically in a temp dir (``--quick``:
  ``QUICK_SIZE``): text-like files (zstd keeps about half), log files (zstd keeps a tenth),
  random incompressible files (photos, archives), three large random files, a few hundred small
  files, and copies of some of them (dedup finds them).
- Ours, backup: walk the tree, cut each file with FastCDC (``engine.chunks_of``), name, compress
  (zstd 3), seal and split k=2 of n=4 (``engine.Packer``, two workers), a chunk already seen is
  skipped, each share written as a file to one of four local holder directories (as a holder
  keeps it: ``<digest[:2]>/<digest>``, written then renamed), the manifest (files → chunk ids)
  written at the end, then ``os.sync()``.
- Ours, restore: read the manifest, read k shares of each chunk from the holder directories,
  decode, open, decompress, check the chunk id, write the files; then ``os.sync()``.
- borg (``borgbackup==1.4.5`` in ``bench/.venv-borg``, made on first run): ``borg init
  --encryption=repokey-blake2`` (keyed BLAKE2b ids and authenticated encryption, like ours),
  ``borg create --compression zstd,3 --chunker-params buzhash,18,22,20,4095`` (zstd 3 and
  256 KiB..4 MiB chunks of 1 MiB on average: the same as ours), ``borg extract``; each followed
  by ``os.sync()``. borg keeps one copy; we keep n/k = 2 (any two of four holders restore), so
  the stored bytes are reported beside n/k.
- Both read the source from the page cache (it was just written); the figures are the better of
  ``ROUNDS`` runs, ours and borg's alternating.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from apps.storage import engine, keys
from bench.report import figure

SIZE = 1 << 30
QUICK_SIZE = 64 << 20
ROUNDS = 2
K, N = 2, 4
WORKERS = 2
BORG_VERSION = "1.4.5"
BORG_VENV = Path(__file__).resolve().parent / ".venv-borg"
BORG_ENV = {
    "BORG_PASSPHRASE": "bench-storage-not-a-secret",
    "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes",
    "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes",
}
MB = 1_000_000


# -- the data ------------------------------------------------------------------------------------

# Text-like bytes: words of a made-up 5 000-word vocabulary (letters at English frequencies,
# English-like word lengths), chosen at random; zstd 3 keeps about two fifths of it.
_VOCAB_RNG = random.Random(1)
_VOCAB = [
    "".join(
        _VOCAB_RNG.choices(
            "etaoinshrdlucmfwypvbgkjqxz",
            [12, 9, 8, 8, 7, 7, 6, 6, 6, 4, 4, 3, 3, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1],
            k=_VOCAB_RNG.choice([1, 2, 2, 3, 3, 3, 4, 4, 5, 5, 6, 7, 8, 9, 10]),
        )
    ).encode()
    for _ in range(5000)
]


def _text(rng: random.Random, size: int) -> bytes:
    return b" ".join(rng.choices(_VOCAB, k=size // 5 + 16))[:size]


def _log(rng: random.Random, size: int) -> bytes:
    out, i = [], rng.randrange(1 << 20)
    total = 0
    while total < size:
        line = (
            f"2026-12-07T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d} INFO request "
            f"{i} from 10.0.{i % 251}.{i % 13} served in {i * 7 % 997} ms\n"
        ).encode()
        out.append(line)
        total += len(line)
        i += rng.randrange(1, 5)
    return b"".join(out)[:size]


def make_data(root: Path, size: int, seed: int = 18) -> int:
    """Writes the mixed tree under ``root``; returns its total bytes."""
    rng = random.Random(seed)
    made: list[Path] = []
    total = 0

    def put(rel: str, data: bytes) -> None:
        nonlocal total
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        made.append(path)
        total += len(data)

    big = size // 64 * 4  # three large random files: 3/16 of the whole
    for i in range(3):
        put(f"video/big-{i}.bin", rng.randbytes(big))
    small = 0
    i = 0
    while small < size // 32:  # small files, 1..32 KiB: a source tree
        data = _text(rng, rng.randrange(1 << 10, 32 << 10))
        put(f"src/mod{i % 17}/file{i}.txt", data)
        small += len(data)
        i += 1
    kinds = [("docs", _text, 0.35), ("logs", _log, 0.15), ("photos", None, 0.2)]
    for folder, maker, share in kinds:
        want, got, i = int(size * share), 0, 0
        while got < want:
            n = min(rng.randrange(64 << 10, 6 << 20), want - got)
            data = maker(rng, n) if maker else rng.randbytes(n)
            put(f"{folder}/{i // 50}/f{i}", data)
            got += n
            i += 1
    # Copies of some files (a folder copied, a download saved twice) until the size is reached.
    i = 0
    while total < size:
        src = rng.choice(made[3:])
        data = src.read_bytes()[: size - total]
        put(f"copies/{i}-{src.name}", data)
        i += 1
    return total


def _walk(root: Path) -> Iterator[Path]:
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            yield Path(folder) / name


def _bytes_under(root: Path) -> int:
    return sum(p.stat().st_size for p in _walk(root))


# -- ours ----------------------------------------------------------------------------------------


class _Holders:
    """Four local holder directories, each keeping shares as a holder does."""

    def __init__(self, root: Path, count: int) -> None:
        self.dirs = [root / f"holder-{i}" for i in range(count)]
        self._made: set[Path] = set()

    def path(self, holder: int, digest: bytes) -> Path:
        hexd = digest.hex()
        return self.dirs[holder] / hexd[:2] / hexd

    def put(self, holder: int, digest: bytes, share: bytes) -> None:
        path = self.path(holder, digest)
        if path.parent not in self._made:  # a set: safe enough across the writer threads
            path.parent.mkdir(parents=True, exist_ok=True)
            self._made.add(path.parent)
        tmp = path.with_suffix(".part")
        with open(tmp, "wb") as f:
            f.write(share)
        os.replace(tmp, path)


def our_backup(source: Path, dest: Path, master: bytes) -> dict[str, Any]:
    """Backs ``source`` up into holder directories under ``dest``; returns counts."""
    dedup, root = keys.dedup_key(master), keys.seal_root(master)
    holders = _Holders(dest, N)
    files: list[dict[str, Any]] = []
    order: deque[list[str]] = deque()  # each piece's file's chunk list, in the Packer's order
    chunks: dict[bytes, dict[str, Any]] = {}

    def pieces() -> Iterator[tuple[bytes, int, int]]:
        for path in _walk(source):
            ids: list[str] = []
            files.append({"path": str(path.relative_to(source)), "chunks": ids})
            with open(path, "rb", buffering=0) as f:
                for piece in engine.chunks_of(f):
                    order.append(ids)
                    yield piece, K, N

    packer = engine.Packer(dedup=dedup, seal_root=root, workers=WORKERS)
    new = 0
    # Shares are written on their own threads (as they would be sent to holders), so the
    # chunking and packing do not wait on the file system; a bounded number in flight.
    writes: deque[Any] = deque()
    with ThreadPoolExecutor(WORKERS, thread_name_prefix="bench-write") as writer:
        for chunk, packed in packer.pack_all(pieces(), skip=chunks.__contains__):
            order.popleft().append(chunk.hex())
            if packed is None:
                continue
            new += 1
            digests = packed.digests
            chunks[chunk] = {"packed": packed.packed, "digests": [d.hex() for d in digests]}
            for i, share in enumerate(packed.shares):
                writes.append(writer.submit(holders.put, i, digests[i], share))
            while len(writes) > 4 * N:
                writes.popleft().result()
        for fut in writes:
            fut.result()
    manifest = {
        "files": files,
        "chunks": {c.hex(): v for c, v in chunks.items()},
    }
    (dest / "manifest.json").write_text(json.dumps(manifest))
    return {"files": len(files), "chunks": new}


def our_restore(dest: Path, target: Path, master: bytes) -> None:
    """Restores every file of the manifest under ``dest`` into ``target``."""
    dedup, root = keys.dedup_key(master), keys.seal_root(master)
    holders = _Holders(dest, N)
    manifest = json.loads((dest / "manifest.json").read_text())
    chunks = manifest["chunks"]

    def fetch(chunk_hex: str) -> bytes:
        info = chunks[chunk_hex]
        shares = {}
        for i in range(N):  # the primary shares first: decoding them is a copy
            try:
                shares[i] = holders.path(i, bytes.fromhex(info["digests"][i])).read_bytes()
            except FileNotFoundError:
                continue
            if len(shares) == K:
                break
        return engine.unpack(
            shares,
            chunk=bytes.fromhex(chunk_hex),
            dedup=dedup,
            seal_root=root,
            k=K,
            n=N,
            packed=info["packed"],
        )

    def wanted() -> Iterator[tuple[int, str]]:
        for f_index, entry in enumerate(manifest["files"]):
            for c in entry["chunks"]:
                yield f_index, c

    # Files are written in order; chunks are fetched ahead on the workers, a bounded window.
    window: deque[tuple[int, Any]] = deque()
    source = wanted()
    current, out = -1, None
    with ThreadPoolExecutor(WORKERS) as pool:

        def fill() -> None:
            while len(window) < 2 * WORKERS:
                try:
                    f_index, c = next(source)
                except StopIteration:
                    return
                window.append((f_index, pool.submit(fetch, c)))

        for entry in manifest["files"]:
            if not entry["chunks"]:
                path = target / entry["path"]
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"")
        fill()
        while window:
            f_index, fut = window.popleft()
            if f_index != current:
                if out is not None:
                    out.close()
                path = target / manifest["files"][f_index]["path"]
                path.parent.mkdir(parents=True, exist_ok=True)
                out = open(path, "wb")  # noqa: SIM115 -- kept open across chunks of the file
                current = f_index
            out.write(fut.result())
            fill()
        if out is not None:
            out.close()


# -- borg ----------------------------------------------------------------------------------------


def borg_path() -> tuple[Path | None, str]:
    """borg in the benchmark's own venv, made on first run; (None, why) when it cannot be."""
    borg = BORG_VENV / "bin" / "borg"
    if not borg.exists():
        try:
            if not (BORG_VENV / "bin" / "pip").exists():
                subprocess.run([sys.executable, "-m", "venv", str(BORG_VENV)], check=True)
            subprocess.run(
                [str(BORG_VENV / "bin" / "pip"), "install", "-q", f"borgbackup=={BORG_VERSION}"],
                check=True,
                capture_output=True,
                timeout=900,
            )
        except (subprocess.SubprocessError, OSError) as exc:
            tail = getattr(exc, "stderr", b"") or b""
            words = tail.decode(errors="replace").strip().splitlines()[-1:] or [str(exc)]
            return None, (
                f"borg {BORG_VERSION} could not be installed into {BORG_VENV} ({words[0]}); "
                "building it needs the lz4, zstd, xxhash and acl headers (Debian: apt-get "
                "install liblz4-dev libzstd-dev libxxhash-dev libacl1-dev)"
            )
    return borg, ""


def _borg(borg: Path, *args: str, cwd: Path, base: Path) -> None:
    # borg's keys, cache and security notes live under BORG_BASE_DIR: the run's temp dir.
    env = os.environ | BORG_ENV | {"BORG_BASE_DIR": str(base / "borg-home")}
    subprocess.run([str(borg), *args], check=True, env=env, cwd=cwd, capture_output=True)


def borg_backup(borg: Path, source: Path, repo: Path, base: Path) -> None:
    _borg(borg, "init", "--encryption=repokey-blake2", str(repo), cwd=base, base=base)
    _borg(
        borg,
        "create",
        "--compression",
        "zstd,3",
        "--chunker-params",
        "buzhash,18,22,20,4095",
        f"{repo}::bench",
        ".",
        cwd=source,
        base=base,
    )


def borg_restore(borg: Path, repo: Path, target: Path, base: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    _borg(borg, "extract", f"{repo}::bench", cwd=target, base=base)


# -- the run -------------------------------------------------------------------------------------


def _same_tree(a: Path, b: Path) -> bool:
    left = [p.relative_to(a) for p in _walk(a)]
    right = [p.relative_to(b) for p in _walk(b)]
    if left != right:
        return False
    for rel in left:
        with open(a / rel, "rb") as x, open(b / rel, "rb") as y:
            if (
                hashlib.file_digest(x, "blake2b").digest()
                != hashlib.file_digest(y, "blake2b").digest()
            ):
                return False
    return True


def _cpu() -> float:
    # This process's threads and the borg processes it waited for: on a shared machine the CPU
    # seconds say what each pipeline costs when the wall clock says mostly how busy it was.
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _timed(cpu: list[float], syncs: list[float], fn, *args) -> float:
    """Wall seconds of ``fn`` and of the ``os.sync()`` after it (the bytes on disk: a backup
    is done when it is durable); the sync's share is kept apart too."""
    started, used = time.perf_counter(), _cpu()
    fn(*args)
    worked = time.perf_counter()
    os.sync()
    ended = time.perf_counter()
    cpu.append(_cpu() - used)
    syncs.append(ended - worked)
    return ended - started


def run(*, quick: bool = False) -> dict[str, Any]:
    size = QUICK_SIZE if quick else SIZE
    base = Path(tempfile.mkdtemp(prefix="sereus-bench-storage-"))
    master = bytes(range(32))
    result: dict[str, Any] = {"k": K, "n": N, "workers": WORKERS}
    try:
        source = base / "source"
        started = time.perf_counter()
        total = make_data(source, size)
        result["source_bytes"] = total
        print(
            f"   data: {total / MB:.0f} MB in {sum(1 for _ in _walk(source))} files, "
            f"made in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
        os.sync()  # the source on disk before any clock starts: no run pays for writing it
        borg, why = borg_path()
        if borg is None:
            print(f"   {why}", flush=True)
            result["borg"] = why
        ours_b, ours_r, borg_b, borg_r = [], [], [], []
        cpu: dict[str, list[float]] = {"ours_b": [], "ours_r": [], "borg_b": [], "borg_r": []}
        syncs: dict[str, list[float]] = {key: [] for key in cpu}
        for round_ in range(ROUNDS):
            dest, back = base / f"ours-{round_}", base / f"ours-out-{round_}"
            ours_b.append(_timed(cpu["ours_b"], syncs["ours_b"], our_backup, source, dest, master))
            ours_r.append(_timed(cpu["ours_r"], syncs["ours_r"], our_restore, dest, back, master))
            if round_ == 0:
                if not _same_tree(source, back):
                    raise RuntimeError("our restore does not match the source")
                result["ours_stored_bytes"] = _bytes_under(dest)
            shutil.rmtree(back)
            if round_ < ROUNDS - 1:
                shutil.rmtree(dest)
            if borg is not None:
                repo, out = base / f"borg-{round_}", base / f"borg-out-{round_}"
                borg_b.append(
                    _timed(cpu["borg_b"], syncs["borg_b"], borg_backup, borg, source, repo, base)
                )
                borg_r.append(
                    _timed(cpu["borg_r"], syncs["borg_r"], borg_restore, borg, repo, out, base)
                )
                if round_ == 0:
                    if not _same_tree(source, out):
                        raise RuntimeError("borg's restore does not match the source")
                    result["borg_stored_bytes"] = _bytes_under(repo)
                shutil.rmtree(out)
                shutil.rmtree(repo)
            os.sync()
            print(
                f"   round {round_ + 1}: ours {ours_b[-1]:.1f} s / {ours_r[-1]:.1f} s, borg "
                + (f"{borg_b[-1]:.1f} s / {borg_r[-1]:.1f} s" if borg_b else "-"),
                flush=True,
            )
        mb = total / MB
        result["ours_backup_s"], result["ours_restore_s"] = ours_b, ours_r
        result["borg_backup_s"], result["borg_restore_s"] = borg_b, borg_r
        # CPU seconds per GB of source, the lower of the rounds.
        result["cpu_s_per_gb"] = {k: round(min(v) / (total / 1e9), 1) for k, v in cpu.items() if v}
        print(f"   CPU seconds per GB: {result['cpu_s_per_gb']}", flush=True)
        result["sync_s"] = {k: [round(x, 1) for x in v] for k, v in syncs.items() if v}
        print(f"   of the wall seconds, the final os.sync(): {result['sync_s']}", flush=True)
        result["load_average"] = os.getloadavg()
        # Without borg the figures print alone (no target), and the reason stands in the floor.
        bb = br = borg_ratio = None
        if borg_b:
            borg_ratio = result["borg_stored_bytes"] / total
            bb, br = mb / min(borg_b), mb / min(borg_r)
        result["backup"] = figure(
            f"Storage backup, {mb:.0f} MB mixed, k={K} n={N}",
            mb / min(ours_b),
            "MB/s",
            target=bb,
            floor=f"borg create (repokey-blake2, zstd,3): {bb:.0f} MB/s" if bb else "no borg",
        )
        result["restore"] = figure(
            f"Storage restore, {mb:.0f} MB",
            mb / min(ours_r),
            "MB/s",
            target=br,
            floor=f"borg extract: {br:.0f} MB/s" if br else "no borg",
        )
        result["stored"] = figure(
            f"Stored / source bytes, n/k = {N / K:g}",
            result["ours_stored_bytes"] / total,
            "x",
            target=borg_ratio * N / K if borg_ratio else None,
            higher=False,
            floor=f"borg's one copy: {borg_ratio:.2f} x" if borg_ratio else "no borg",
        )
        return result
    finally:
        shutil.rmtree(base, ignore_errors=True)
