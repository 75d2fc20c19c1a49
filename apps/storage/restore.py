"""A restore: a snapshot's files fetched back from the holders into a new, empty folder.

Everything it needs is in the storage thread and the keys derive from the master secret, so it
works on a node restored from the phrase. A chunk is fetched as any k good shares, nearest
holders first; a share that comes back damaged or missing is marked so (repair then sees it).
The manifest is data: every path is checked before anything is written (relative, no ``..``,
never through a link), so a damaged or forged manifest cannot write outside the target.
"""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from django.core.exceptions import ValidationError

from apps.core.models import Thread
from apps.storage import engine, jobs, keys, placement, space
from apps.storage.models import Chunk, FileEntry, Holder, Job, Share, Snapshot
from apps.storage.space import StorageError
from apps.storage.walk import inside, path_safe, paths_check, problems_words, target_check

logger = logging.getLogger(__name__)

PROGRESS_S = 0.5
FETCH_WORKERS = 4
RETRY_PAUSE = 1.0  # seconds before asking again the holders that could not be asked
_BEST = {Chunk.State.PLACED: 0, Chunk.State.PARTIAL: 1, Chunk.State.PENDING: 2, Chunk.State.LOST: 3}


def _thread() -> Thread:
    thread = space.storage_thread()
    if thread is None:
        raise StorageError(
            "not_found", "This node has no backups yet (nor has any device of yours)."
        )
    return thread


@dataclass(frozen=True)
class _Secrets:
    dedup: bytes
    seal: bytes


def _secrets() -> _Secrets:
    master = space.master_secret()
    return _Secrets(keys.dedup_key(master), keys.seal_root(master))


# -- fetching a chunk ---------------------------------------------------------------------------


def _speed(holder: Holder) -> int:
    """Nearest first: this device, the party's other devices, friends; active before the rest."""
    from apps.storage import client

    if holder.kind == Holder.Kind.DEVICE and client.is_self(client.target_of(holder)):
        return 0
    rank = 1 if holder.kind == Holder.Kind.DEVICE else 2
    return rank if holder.state == Holder.State.ACTIVE else rank + 2


def _ask(holder: Holder, shares: list[Share]) -> dict[bytes, bytes | str | None] | None:
    """The holder's answer for the shares' digests, or None when it could not be asked."""
    from apps.storage import client

    try:
        return client.get(client.target_of(holder), [bytes.fromhex(s.digest) for s in shares])
    except StorageError:
        return None
    except Exception:  # one holder's failure never stops the others being asked
        logger.exception("asking a holder for shares failed")
        return None


def holders_ranked(thread: Thread) -> dict:
    """The storage thread's holders by pk, nearest first (``_speed``)."""
    rows = list(Holder.objects.using(space.using(thread)).all())
    return {h.pk: h for h in sorted(rows, key=lambda h: (_speed(h), str(h.pk)))}


def chunk_fetch(
    chunk: Chunk,
    *,
    thread: Thread | None = None,
    secrets: _Secrets | None = None,
    holders: dict | None = None,
) -> bytes:
    """The chunk's plaintext from any k good shares (this node's outbox first, then the
    nearest holders), verified against its id. Shares that came back damaged or missing are
    marked CORRUPT or MISSING. StorageError ("unavailable") in words when k cannot be had."""
    thread = thread or _thread()
    secrets = secrets or _secrets()
    alias = space.using(thread)
    shares = list(
        Share.objects.using(alias)
        .filter(chunk=chunk.pk)
        .exclude(state__in=[Share.State.CORRUPT, Share.State.MISSING])
        .order_by("index")
    )
    got: dict[int, bytes] = {}
    for share in shares:
        data = placement.outbox_get(bytes.fromhex(share.digest))
        if data is not None:
            got[share.index] = data
    if holders is None:
        holders = holders_ranked(thread)
    groups: dict = defaultdict(list)
    for share in shares:
        if share.index not in got and share.holder in holders:
            groups[share.holder].append(share)
    rank = {pk: i for i, pk in enumerate(holders)}
    queue = sorted(groups, key=lambda pk: rank[pk])
    marks: list[tuple[Share, str]] = []
    away: list = []  # holders that could not be asked this time
    retried = False
    while len(got) < chunk.k and (queue or (away and not retried)):
        if not queue:
            # Every holder left was unreachable or busy once: ask those again after a pause
            # before giving up on the chunk (a holder that is busy, or a connection being
            # redialled, is a moment's wait, not a failed restore).
            retried, queue, away = True, away, []
            time.sleep(RETRY_PAUSE)
        # Ask just enough holders at once to cover what is missing.
        needed, asking = chunk.k - len(got), []
        while queue and needed > 0:
            pk = queue.pop(0)
            asking.append(pk)
            needed -= len(groups[pk])
        with ThreadPoolExecutor(min(FETCH_WORKERS, len(asking)), "storage-get") as pool:
            answers = list(pool.map(lambda pk: _ask(holders[pk], groups[pk]), asking))
        for pk, answer in zip(asking, answers, strict=True):
            if answer is None:
                # Unreachable or busy (not the share's fault): asked last for the chunks
                # after this one, so a device that is gone costs one wait, not one per chunk.
                holders[pk] = holders.pop(pk)
                away.append(pk)
                continue
            for share in groups[pk]:
                data = answer.get(bytes.fromhex(share.digest))
                if isinstance(data, bytes) and keys.share_digest(data) == bytes.fromhex(
                    share.digest
                ):
                    got[share.index] = data
                elif data == "corrupt" or isinstance(data, bytes):
                    marks.append((share, Share.State.CORRUPT))
                else:
                    marks.append((share, Share.State.MISSING))
    if marks:
        _mark(thread, marks)
    if len(got) < chunk.k:
        raise StorageError(
            "unavailable",
            f"A part of this backup cannot be fetched now: {len(got)} of the {chunk.k} pieces it "
            "needs answered. Try again when more of your holders are online.",
        )
    chosen = dict(sorted(got.items())[: chunk.k])
    try:
        return engine.unpack(
            chosen,
            chunk=bytes.fromhex(chunk.key),
            dedup=secrets.dedup,
            seal_root=secrets.seal,
            k=chunk.k,
            n=chunk.n,
            packed=chunk.packed,
        )
    except engine.EngineError as exc:
        raise StorageError(
            "unavailable",
            "A part of this backup came back damaged and could not be opened; repair may "
            "rebuild it from other holders: try again later.",
        ) from exc


def _mark(thread: Thread, marks: list[tuple[Share, str]]) -> None:
    def write() -> None:
        for share, state in marks:
            Share.objects.filter(pk=share.pk).update(state=state)

    try:
        space.write(thread, write)
    except Exception:  # the restore goes on: the next audit finds them too
        logger.exception("marking shares damaged or missing failed")


def _chunks_of(alias: str, names: list[str]) -> dict[str, Chunk]:
    """The best Chunk row for each key (two devices may both have recorded one)."""
    best: dict[str, Chunk] = {}
    for row in Chunk.objects.using(alias).filter(key__in=set(names)):
        here = best.get(row.key)
        if here is None or _BEST.get(row.state, 9) < _BEST.get(here.state, 9):
            best[row.key] = row
    return best


def _file_chunks(
    entry: FileEntry, thread: Thread, secrets: _Secrets, holders: dict | None = None
) -> Iterator[bytes]:
    names = entry.chunks
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise StorageError("unavailable", "The backup's list of this file's parts is damaged.")
    found = _chunks_of(space.using(thread), names)
    holders = holders if holders is not None else holders_ranked(thread)
    for name in names:
        chunk = found.get(name)
        if chunk is None:
            raise StorageError(
                "unavailable", "The backup does not list every part of this file; it is lost."
            )
        yield chunk_fetch(chunk, thread=thread, secrets=secrets, holders=holders)


def snapshot_find(ref: str) -> Snapshot:
    """A complete snapshot by its id, or "latest" (the newest complete one)."""
    alias = space.using(_thread())
    complete = Snapshot.objects.using(alias).filter(state=Snapshot.State.COMPLETE)
    ref = (ref or "").strip()
    if ref == "latest":
        found = complete.order_by("-started_ms").first()
        if found is None:
            raise StorageError("not_found", "There is no complete backup to restore yet.")
        return found
    try:
        return complete.get(pk=ref)
    except (Snapshot.DoesNotExist, ValueError, ValidationError) as exc:
        raise StorageError(
            "not_found", "There is no complete backup by that name: pick one from the list."
        ) from exc


def file_stream(snapshot: str, path: str) -> Iterator[bytes]:
    """A file of a snapshot, chunk by chunk (the download)."""
    thread = _thread()
    found = snapshot_find(snapshot)
    entry = (
        FileEntry.objects.using(space.using(thread))
        .filter(snapshot=found.pk, path=path.strip("/"), kind=FileEntry.Kind.FILE)
        .first()
    )
    if entry is None:
        raise StorageError("not_found", "That backup holds no file by that name.")
    size = 0
    for data in _file_chunks(entry, thread, _secrets()):
        size += len(data)
        yield data
    if size != entry.size:
        raise StorageError("unavailable", "The file came back a different size than backed up.")


# -- starting -----------------------------------------------------------------------------------


def restore_start(*, snapshot: str, target: str, paths: list[str] | None = None) -> Job:
    """Queue a restore of ``snapshot`` (an id or "latest") into the new folder ``target``."""
    found = snapshot_find(snapshot)
    folder = str(target_check(target))
    wanted = paths_check(paths)
    busy = Job.objects.filter(
        kind=Job.Kind.RESTORE, target=folder, state__in=[Job.State.QUEUED, Job.State.RUNNING]
    )
    if busy.exists():
        raise StorageError("conflict", "A restore into that folder is already under way.")
    job = Job.objects.create(
        kind=Job.Kind.RESTORE,
        snapshot=str(found.pk),
        target=folder,
        paths=wanted,
        label=found.label,
        source=found.source,
    )
    jobs.wake()
    return job


# -- running ------------------------------------------------------------------------------------


def _wanted(path: str, paths: list[str]) -> bool:
    return not paths or any(path == p or path.startswith(p + "/") for p in paths)


class _Restore:
    def __init__(self, job: Job, thread: Thread) -> None:
        self.job = job
        self.thread = thread
        self.alias = space.using(thread)
        self.root = Path(job.target)
        self.secrets = _secrets()
        self.holders = holders_ranked(thread)
        self.problems: list[str] = []
        self.shown = 0.0
        self.files_done = 0
        self.bytes_done = 0
        self.made = 0

    def progress(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.shown < PROGRESS_S:
            return
        self.shown = now
        Job.objects.filter(pk=self.job.pk).update(
            files_done=self.files_done, bytes_done=self.bytes_done
        )

    def place(self, path: str) -> Path | None:
        """Where ``path`` goes, its folders made, or None (a problem) when that would leave the
        target (through a link the manifest made) or something is already there."""
        final = self.root / path
        parent = final.parent
        # The nearest folder that exists must be inside the target (a link the manifest made
        # could lead out): checked before a folder is made, so nothing is made outside either.
        here = parent
        while not os.path.lexists(here) and here != self.root:
            here = here.parent
        if not inside(here, self.root):
            self.problems.append(f"{path}: it would be written outside the folder; skipped.")
            return None
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError:
            self.problems.append(f"{path}: its folder could not be made.")
            return None
        if not inside(parent, self.root):
            self.problems.append(f"{path}: it would be written outside the folder; skipped.")
            return None
        if os.path.lexists(final):
            self.problems.append(f"{path}: listed twice in the backup; the first was kept.")
            return None
        return final

    def folder(self, entry: FileEntry) -> None:
        final = self.place(entry.path)
        if final is None:
            return
        try:
            final.mkdir()
        except OSError:
            self.problems.append(f"{entry.path}: the folder could not be made.")

    def file(self, entry: FileEntry) -> None:
        final = self.place(entry.path)
        if final is None:
            return
        # A short temporary name: the file's own may be as long as a name can be.
        self.made += 1
        temp = final.with_name(f".sereus-restoring-{os.getpid()}-{self.made}")
        written = 0
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as handle:
                for data in _file_chunks(entry, self.thread, self.secrets, self.holders):
                    handle.write(data)
                    written += len(data)
                    self.bytes_done += len(data)
                    self.progress()
            if written != entry.size:
                raise StorageError("unavailable", "it came back a different size than backed up")
            os.chmod(temp, entry.mode & 0o777)
            os.utime(temp, ns=(entry.mtime_ns, entry.mtime_ns))
            os.rename(temp, final)
        except StorageError as exc:
            temp.unlink(missing_ok=True)
            self.problems.append(f"{entry.path}: {exc.words[:1].lower()}{exc.words[1:]}")
            return
        except (OSError, OverflowError, ValueError):  # a forged mode or time is no crash
            temp.unlink(missing_ok=True)
            self.problems.append(f"{entry.path}: it could not be written.")
            return
        self.files_done += 1
        self.progress()

    def link(self, entry: FileEntry) -> None:
        final = self.place(entry.path)
        if final is None:
            return
        if not entry.target or "\x00" in entry.target:
            self.problems.append(f"{entry.path}: the link has no valid target; skipped.")
            return
        try:
            os.symlink(entry.target, final)
            os.utime(final, ns=(entry.mtime_ns, entry.mtime_ns), follow_symlinks=False)
        except (OSError, OverflowError, ValueError):
            self.problems.append(f"{entry.path}: the link could not be made.")

    def run(self) -> None:
        job = self.job
        try:
            snapshot = Snapshot.objects.using(self.alias).get(pk=job.snapshot)
        except (Snapshot.DoesNotExist, ValueError, ValidationError) as exc:
            raise StorageError("not_found", "That backup is no longer listed.") from exc
        target_check(str(self.root))  # still empty: never overwrite
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                "invalid", f"This node cannot make the folder {self.root}: check its permissions."
            ) from exc
        entries = [
            e
            for e in FileEntry.objects.using(self.alias).filter(snapshot=snapshot.pk)
            if _wanted(e.path, job.paths or [])
        ]
        good = []
        for entry in entries:
            if path_safe(entry.path):
                good.append(entry)
            else:
                self.problems.append(f"{entry.path!a}: not a safe path; skipped.")
        if not good and job.paths:
            raise StorageError("not_found", "The backup holds nothing under those paths.")
        files = [e for e in good if e.kind == FileEntry.Kind.FILE]
        job.files_total = len(files)
        job.bytes_total = sum(e.size for e in files)
        job.save(update_fields=["files_total", "bytes_total"])
        depth = lambda e: e.path.count("/")  # noqa: E731 - a sort key
        dirs = sorted((e for e in good if e.kind == FileEntry.Kind.DIR), key=depth)
        for entry in dirs:
            self.folder(entry)
        for entry in files:
            self.file(entry)
        # Links last: no file is written through a link the manifest made.
        for entry in good:
            if entry.kind == FileEntry.Kind.LINK:
                self.link(entry)
        # Folders' modes and times last, deepest first: writing into them changed their times.
        for entry in reversed(dirs):
            final = self.root / entry.path
            if final.is_dir() and not final.is_symlink() and inside(final, self.root):
                try:
                    os.chmod(final, entry.mode & 0o777)
                    os.utime(final, ns=(entry.mtime_ns, entry.mtime_ns))
                except (OSError, OverflowError, ValueError):
                    self.problems.append(f"{entry.path}: its permissions could not be set.")
        self.progress(force=True)
        if self.problems:
            missing = len(files) - self.files_done
            head = (
                f"Restored {self.files_done} of {len(files)} files into {self.root}; "
                f"{missing} could not be."
                if missing
                else f"Restored into {self.root}, but:"
            )
            jobs.job_finish(job, Job.State.FAILED, head + "\n" + problems_words(self.problems))
            return
        jobs.job_finish(job, Job.State.DONE, "")


def restore_run(job: Job) -> None:
    """Run a queued restore (the jobs runner, or the command without a running node)."""
    _Restore(job, _thread()).run()
