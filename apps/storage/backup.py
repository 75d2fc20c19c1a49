"""A backup: walk a folder, cut its files into chunks, seal and erasure-code the chunks the party
lacks, place their shares on holders, and record it all as a snapshot in the storage thread.

Rows are written in batches, one transaction (one signed op) per ~200 rows: the Snapshot first
(RUNNING) and last (COMPLETE with its totals). A file whose path, size and mtime match the
previous complete snapshot of the same folder on this device reuses its chunks without being
read. What was placed before a failure stays placed: the next backup dedups against it.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from apps.core.models import Thread
from apps.storage import engine, jobs, keys, placement, space
from apps.storage.models import LABEL, Chunk, FileEntry, Holder, Job, Share, Snapshot
from apps.storage.space import StorageError
from apps.storage.walk import (
    DIR,
    FILE,
    LINK,
    Entry,
    Walked,
    problems_words,
    source_check,
    walk,
)

logger = logging.getLogger(__name__)

BATCH_ROWS = 200  # rows per op
BATCH_BYTES = 400 << 10  # about this much row data per op (an op is at most 1 MiB)
MAX_FILE_CHUNKS = 12_000  # a file's row must fit one op (1 MiB): about 12 GB at 1 MiB a chunk
PROGRESS_S = 0.5
PUT_CHUNKS = 64  # new chunks whose shares go out together
PUT_BYTES = 16 << 20  # or this many share bytes, whichever comes first
PACK_WORKERS = 2


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# -- starting -----------------------------------------------------------------------------------


def backup_start(*, path: str, label: str = "") -> Job:
    """Queue a backup of the folder ``path``; the jobs runner (or the command) runs it."""
    source = str(source_check(path))
    busy = Job.objects.filter(
        kind=Job.Kind.BACKUP, source=source, state__in=[Job.State.QUEUED, Job.State.RUNNING]
    )
    if busy.exists():
        raise StorageError(
            "conflict", "A backup of this folder is already under way; wait for it to finish."
        )
    job = Job.objects.create(kind=Job.Kind.BACKUP, source=source, label=label.strip()[:LABEL])
    jobs.wake()
    return job


# -- running ------------------------------------------------------------------------------------


@dataclass
class _File:
    entry: Entry
    chunks: list[str] = field(default_factory=list)
    size: int = 0  # bytes read
    failed: bool = False


def _device_label(device: str) -> str:
    """This device's name as the party's devices list calls it ("" when it has none)."""
    try:
        from apps.cadre.control import control_thread
        from apps.cadre.models import PartyDevice

        control = control_thread()
        if control is None:
            return ""
        row = PartyDevice.objects.using(space.using(control)).filter(device=device).first()
    except Exception:  # a label is a nicety: the backup goes on without it
        logger.debug("this device's label could not be read", exc_info=True)
        return ""
    return (row.label if row is not None else "")[:LABEL]


def _base(alias: str, source: str, device: str) -> dict[str, FileEntry]:
    """The files of the last complete snapshot of ``source`` made on this device, by path."""
    last = (
        Snapshot.objects.using(alias)
        .filter(source=source, device=device, state=Snapshot.State.COMPLETE)
        .order_by("-started_ms")
        .first()
    )
    if last is None:
        return {}
    rows = FileEntry.objects.using(alias).filter(snapshot=last.pk, kind=FileEntry.Kind.FILE)
    return {row.path: row for row in rows}


class _Run:
    """One backup under way (``backup_run``)."""

    def __init__(self, job: Job, thread: Thread, master: bytes) -> None:
        self.job = job
        self.thread = thread
        self.alias = space.using(thread)
        self.root = Path(job.source)
        self.dedup = keys.dedup_key(master)
        self.seal = keys.seal_root(master)
        self.audit = keys.audit_key(master)
        self.walked = Walked()
        self.notes: list[str] = []  # words for the job besides the walk's problems
        self.snapshot: Snapshot | None = None
        self.files: list[dict] = []  # FileEntry fields waiting for the next op
        self.chunks: list[placement.Placed] = []
        self.rows = 0
        self.row_bytes = 0
        self.known: set[str] = set()
        self.order: deque[tuple[_File, int, bool]] = deque()
        self.waiting: list[engine.Packed] = []  # new chunks not yet pushed
        self.waiting_bytes = 0
        self.holders: list[Holder] = []
        self.k = self.n = 1
        self.pending = 0  # shares left in the outbox
        self.counts = {"files": 0, "dirs": 0, "bytes": 0}
        self.new_bytes = 0
        self.stored_bytes = 0
        self.files_done = 0
        self.bytes_done = 0
        self.shown = 0.0

    # -- rows --

    def flush(self) -> None:
        if not self.files and not self.chunks:
            return
        files, chunks = self.files, self.chunks
        self.files, self.chunks, self.rows, self.row_bytes = [], [], 0, 0
        snapshot = self.snapshot

        def write() -> None:
            made, shares = [], []
            for new in chunks:
                packed = new.packed
                chunk = Chunk(
                    key=packed.chunk.hex(),
                    size=packed.size,
                    packed=packed.packed,
                    k=packed.k,
                    n=packed.n,
                    state=new.state,
                )
                made.append(chunk)
                shares.extend(Share(chunk=chunk.pk, **fields) for fields in new.shares)
            Chunk.objects.bulk_create(made)
            Share.objects.bulk_create(shares)
            FileEntry.objects.bulk_create(
                [FileEntry(snapshot=snapshot.pk, **fields) for fields in files]
            )

        space.write(self.thread, write)

    def _added(self, rows: int, size: int) -> None:
        self.rows += rows
        self.row_bytes += size
        if self.rows >= BATCH_ROWS or self.row_bytes >= BATCH_BYTES:
            self.flush()

    def entry_add(self, entry: Entry, chunks: list[str] | None = None, size: int = 0) -> None:
        fields = {
            "path": entry.path,
            "kind": {FILE: FileEntry.Kind.FILE, DIR: FileEntry.Kind.DIR, LINK: FileEntry.Kind.LINK}[
                entry.kind
            ],
            "mode": entry.mode,
            "mtime_ns": entry.mtime_ns,
            "size": size,
            "chunks": chunks or [],
            "target": entry.target,
        }
        if entry.kind == FILE:
            self.counts["files"] += 1
            self.counts["bytes"] += size
        elif entry.kind == DIR:
            self.counts["dirs"] += 1
        size = 160 + len(entry.path) + len(entry.target) + 68 * len(fields["chunks"])
        if self.row_bytes + size > BATCH_BYTES:
            self.flush()  # a large file's row goes in an op of its own rather than overfill one
        self.files.append(fields)
        self._added(1, size)

    # -- progress --

    def progress(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.shown < PROGRESS_S:
            return
        self.shown = now
        Job.objects.filter(pk=self.job.pk).update(
            files_done=self.files_done,
            bytes_done=self.bytes_done,
            new_bytes=self.new_bytes,
            stored_bytes=self.stored_bytes,
        )

    # -- chunks --

    def skip(self, chunk: bytes) -> bool:
        # Called in piece order: the first piece with new content is packed, its repeats
        # (in this backup or any before) are not.
        name = chunk.hex()
        if name in self.known:
            return True
        self.known.add(name)
        return False

    def place(self, packed: engine.Packed) -> None:
        """Queue a new chunk's shares; they go out in batches (one put per holder for many
        chunks: a holder's answer costs more than a share's bytes)."""
        self.waiting.append(packed)
        self.waiting_bytes += sum(len(s) for s in packed.shares)
        if len(self.waiting) >= PUT_CHUNKS or self.waiting_bytes >= PUT_BYTES:
            self.place_waiting()

    def place_waiting(self) -> None:
        waiting, self.waiting, self.waiting_bytes = self.waiting, [], 0
        if not waiting:
            return
        placed, problems = placement.place_batch(waiting, self.holders, audit=self.audit)
        self.notes.extend(p for p in dict.fromkeys(problems) if p not in self.notes)
        for item in placed:
            self.pending += item.pending
            self.stored_bytes += sum(share["size"] for share in item.shares)
            self.new_bytes += item.packed.size
            self.chunks.append(item)
            self._added(1 + len(item.shares), 120 + 420 * len(item.shares))

    # -- files --

    def _open(self, entry: Entry) -> int | None:
        path = self.root / entry.path
        try:
            # No link followed, no fifo waited on: the file may have changed since the walk.
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            self.walked.problem(f"{entry.path}: it vanished before it was read.")
            return None
        except OSError:
            self.walked.problem(f"{entry.path}: it could not be read (no permission?).")
            return None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            self.walked.problem(f"{entry.path}: it is no longer a file; skipped.")
            return None
        return fd

    def pieces(self, files: list[_File]) -> Iterator[tuple[bytes, int, int]]:
        """Every file's pieces in order; ``self.order`` says whose each is (and whether it is
        the file's last). A file that cannot be read is reported and dropped."""
        for work in files:
            fd = self._open(work.entry)
            if fd is None:
                work.failed = True
                continue
            with os.fdopen(fd, "rb") as handle:
                held: bytes | None = None
                try:
                    for piece in engine.chunks_of(handle):
                        if held is not None:
                            self.order.append((work, len(held), False))
                            yield held, self.k, self.n
                        held = piece
                except OSError:
                    work.failed = True
                    self.walked.problem(f"{work.entry.path}: reading it failed part way; skipped.")
                    continue
            if held is None:  # an empty file
                self.file_done(work)
                continue
            self.order.append((work, len(held), True))
            yield held, self.k, self.n

    def file_done(self, work: _File) -> None:
        if len(work.chunks) > MAX_FILE_CHUNKS:
            self.walked.problem(
                f"{work.entry.path}: too large for one backup entry (over about 12 GB); skipped."
            )
            return
        if work.size != work.entry.size:
            self.walked.problem(
                f"{work.entry.path}: it changed while it was read; the backup holds what was read."
            )
        self.entry_add(work.entry, work.chunks, work.size)
        self.files_done += 1

    def read_all(self, files: list[_File]) -> None:
        packer = engine.Packer(
            dedup=self.dedup, seal_root=self.seal, workers=PACK_WORKERS, audit=self.audit
        )
        for chunk, packed in packer.pack_all(self.pieces(files), skip=self.skip):
            work, size, last = self.order.popleft()
            if packed is not None:
                self.place(packed)
            work.chunks.append(chunk.hex())
            work.size += size
            self.bytes_done += size
            if last and not work.failed:
                self.file_done(work)
            self.progress()
        self.place_waiting()

    # -- the whole --

    def run(self) -> None:
        job = self.job
        device = space.device_key().hex()
        self.holders = placement.holders_now(refresh=True)
        if self.holders:
            self.k, self.n = engine.redundancy(min(len(self.holders), engine.MAX_N))
        else:
            self.notes.append("No holder has room now: the shares wait on this node until one has.")
        self.notes.extend(placement.nearly_full(self.holders))
        started, label = now_ms(), _device_label(device)
        self.snapshot = space.write(
            self.thread,
            lambda: Snapshot.objects.create(
                label=job.label,
                source=job.source,
                device=device,
                device_label=label,
                started_ms=started,
            ),
        )
        job.snapshot = str(self.snapshot.pk)
        job.save(update_fields=["snapshot"])
        try:
            self._body(device)
        except StorageError as exc:
            self._failed(exc.words)
            raise
        except Exception:
            self._failed(jobs.UNEXPECTED[Job.Kind.BACKUP])
            raise

    def _body(self, device: str) -> None:
        base = _base(self.alias, self.job.source, device)
        self.known = set(
            Chunk.objects.using(self.alias)
            .exclude(state=Chunk.State.LOST)
            .values_list("key", flat=True)
        )
        entries = list(walk(self.root, self.walked, skip=(Path(settings.DATA_DIR),)))
        regular = [e for e in entries if e.kind == FILE]
        self.job.files_total = len(regular)
        self.job.bytes_total = sum(e.size for e in regular)
        self.job.save(update_fields=["files_total", "bytes_total"])
        to_read: list[_File] = []
        for entry in entries:
            if entry.kind != FILE:
                self.entry_add(entry)
                continue
            before = base.get(entry.path)
            if (
                before is not None
                and before.size == entry.size
                and before.mtime_ns == entry.mtime_ns
                and all(name in self.known for name in before.chunks)
            ):
                self.entry_add(entry, list(before.chunks), entry.size)
                self.files_done += 1
                self.bytes_done += entry.size
                continue
            to_read.append(_File(entry))
        self.progress(force=True)
        self.read_all(to_read)
        self.flush()
        self.progress(force=True)
        if self.pending:
            self.notes.append(
                "1 share waits on this node until a holder can take it."
                if self.pending == 1
                else f"{self.pending} shares wait on this node until a holder can take them."
            )
        problem = "\n".join(
            filter(None, [problems_words(self.walked.problems, self.walked.special), *self.notes])
        )
        totals = dict(self.counts, new_bytes=self.new_bytes, stored_bytes=self.stored_bytes)
        snapshot = self.snapshot
        space.write(
            self.thread,
            lambda: Snapshot.objects.filter(pk=snapshot.pk).update(
                state=Snapshot.State.COMPLETE, finished_ms=now_ms(), problem=problem, **totals
            ),
        )
        job = self.job
        job.files_done, job.bytes_done = self.files_done, self.bytes_done
        job.new_bytes, job.stored_bytes = self.new_bytes, self.stored_bytes
        job.save(update_fields=["files_done", "bytes_done", "new_bytes", "stored_bytes"])
        jobs.job_finish(job, Job.State.DONE, problem)

    def _failed(self, words: str) -> None:
        snapshot = self.snapshot
        try:
            self.place_waiting()
            self.flush()  # what was placed is recorded: the next backup dedups against it
        except Exception:
            logger.exception("recording a failed backup's last rows failed")
        try:
            space.write(
                self.thread,
                lambda: Snapshot.objects.filter(pk=snapshot.pk).update(
                    state=Snapshot.State.FAILED, finished_ms=now_ms(), problem=words
                ),
            )
        except Exception:
            logger.exception("marking a backup failed failed")
        self.progress(force=True)


def backup_run(job: Job) -> None:
    """Run a queued backup (the jobs runner, or the command without a running node)."""
    source = Path(job.source)
    if not source.is_dir():
        raise StorageError("invalid", f"The folder {source} is no longer there.")
    thread = space.storage_ensure()
    _Run(job, thread, space.master_secret()).run()
    try:
        from apps.storage import worker

        worker.wake()  # shares to place, the storage thread to deposit
    except Exception:
        logger.debug("the storage worker could not be woken", exc_info=True)
