"""The jobs runner: backups and restores this node runs, one at a time, oldest first.

One thread, started when the p2p node starts (``start``), like the cadre's worker; ``wake`` (a
page or the command queued a job) makes it look at once. A job left RUNNING by a node that
stopped is FAILED on start, in words. Without a running node the command runs its job in its
own process (``job_run``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from django.utils import timezone

from apps.storage.models import Job
from apps.storage.space import StorageError

logger = logging.getLogger(__name__)

IDLE_S = 2.0  # the runner looks for queued jobs this often (the command queues from outside)
STOPPED = {
    Job.Kind.BACKUP: "The node stopped during this backup; start it again.",
    Job.Kind.RESTORE: "The node stopped during this restore; start it again.",
}
UNEXPECTED = {
    Job.Kind.BACKUP: "The backup stopped on an unexpected error (the node's log says more).",
    Job.Kind.RESTORE: "The restore stopped on an unexpected error (the node's log says more).",
}

_wake = threading.Event()
_thread: threading.Thread | None = None
_lock = threading.Lock()
_current: int | None = None  # the job this process runs now


def job_finish(job: Job, state: str, problem: str = "") -> None:
    job.state = state
    job.problem = problem
    job.finished_at = timezone.now()
    job.save(update_fields=["state", "problem", "finished_at"])


def job_run(job: Job) -> None:
    """Run one job to its end (DONE or FAILED, with words); never raises."""
    global _current
    from apps.storage import backup, restore

    # Claimed in one update: a job is run once, whoever else looks at the queue.
    if not Job.objects.filter(pk=job.pk, state=Job.State.QUEUED).update(state=Job.State.RUNNING):
        return
    job.refresh_from_db()
    _current = job.pk
    try:
        if job.kind == Job.Kind.BACKUP:
            backup.backup_run(job)
        else:
            restore.restore_run(job)
    except StorageError as exc:
        job_finish(job, Job.State.FAILED, exc.words)
    except Exception:
        logger.exception("storage job %s failed", job.pk)
        job_finish(job, Job.State.FAILED, UNEXPECTED[job.kind])
    finally:
        _current = None
    job.refresh_from_db()
    if job.state == Job.State.RUNNING:  # a run that returned without saying: it is done
        job_finish(job, Job.State.DONE, job.problem)


def stale_fail() -> int:
    """Jobs left RUNNING by a node that stopped (not the one this process runs): FAILED."""
    count = 0
    for job in Job.objects.filter(state=Job.State.RUNNING).exclude(pk=_current or -1):
        job_finish(job, Job.State.FAILED, STOPPED[job.kind])
        count += 1
    return count


def next_job() -> Job | None:
    return Job.objects.filter(state=Job.State.QUEUED).order_by("created_at", "pk").first()


def run_queued() -> int:
    """Every queued job, oldest first (the runner's round; tests call it directly)."""
    count = 0
    while (job := next_job()) is not None:
        job_run(job)
        count += 1
    return count


def _p2p_running() -> bool:
    from django.conf import settings

    from apps.p2p import client

    return settings.SEREUS.scale_out or client._local is not None


def _run() -> None:
    global _thread
    from django.db import close_old_connections

    while True:
        if not _p2p_running():
            # The node stopped: so does its runner (the next start starts it again).
            with _lock:
                if _thread is threading.current_thread():
                    _thread = None
            return
        try:
            run_queued()
        except Exception:  # the database went away under the runner (a stopping node)
            logger.exception("the storage jobs runner failed a round")
        finally:
            try:
                close_old_connections()
            except Exception:
                logger.debug("closing the jobs runner's connections failed", exc_info=True)
        _wake.wait(IDLE_S)
        _wake.clear()


def start() -> None:
    """On node start: jobs a stopped node left RUNNING fail in words; the runner starts."""
    global _thread
    with _lock:
        if _thread is None or not _thread.is_alive():
            stale_fail()
            _thread = threading.Thread(target=_run, name="storage-jobs", daemon=True)
            _thread.start()
    _wake.set()


def wake() -> None:
    _wake.set()


def percent(done: int, total: int) -> int:
    if total <= 0:
        return 0
    return max(0, min(100, done * 100 // total))


def _words(job: Job) -> str:
    what = "Backup" if job.kind == Job.Kind.BACKUP else "Restore"
    if job.state == Job.State.QUEUED:
        return f"{what} waiting to start."
    if job.state == Job.State.RUNNING:
        if job.files_total == 0 and job.bytes_total == 0:
            return f"{what} starting: looking at the files."
        if job.files_total and job.files_done >= job.files_total:
            return f"{what} finishing: all {job.files_total} files read, saving the record of them."
        return f"{what} running: {job.files_done} of {job.files_total} files."
    if job.state == Job.State.DONE:
        done = f"{what} done: {job.files_done} files."
        return f"{done} {job.problem}" if job.problem else done
    return f"{what} failed: {job.problem}" if job.problem else f"{what} failed."


def job_view(job: Job) -> dict:
    """A job as pages, the API and the command show it."""
    if job.bytes_total:
        progress = percent(job.bytes_done, job.bytes_total)
    else:
        progress = percent(job.files_done, job.files_total)
    # The last step (committing the snapshot) comes after every byte is read: a full bar
    # beside "running" would tell the person it is over when it is not.
    progress = 100 if job.state == Job.State.DONE else min(progress, 99)
    return {
        "id": job.pk,
        "kind": job.kind,
        "state": job.state,
        "state_words": job.get_state_display(),
        "words": _words(job),
        "percent": progress,
        "source": job.source,
        "label": job.label,
        "target": job.target,
        "files_done": job.files_done,
        "files_total": job.files_total,
        "bytes_done": job.bytes_done,
        "bytes_total": job.bytes_total,
        "new_bytes": job.new_bytes,
        "stored_bytes": job.stored_bytes,
        "snapshot": job.snapshot,
        "problem": job.problem,
        "created_at": job.created_at,
        "finished_at": job.finished_at,
    }


# -- the commands' view of a job -------------------------------------------------------------------


def size_words(size: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def bar(view: dict, width: int = 30) -> str:
    """One line: ``[#########.....] 45%  120 of 500 files  12.0 MB of 45.0 MB``."""
    filled = width * view["percent"] // 100
    return (
        f"[{'#' * filled}{'.' * (width - filled)}] {view['percent']:3d}%  "
        f"{view['files_done']} of {view['files_total']} files  "
        f"{size_words(view['bytes_done'])} of {size_words(view['bytes_total'])}"
    )


def follow(job: Job, write: Callable[[str], None], *, poll: float = 0.5) -> Job:
    """Show ``job``'s progress on one line (``\\r``) until it is done or failed."""
    shown = ""
    while True:
        job.refresh_from_db()
        if job.state in (Job.State.DONE, Job.State.FAILED):
            break
        if job.state == Job.State.RUNNING:
            line = bar(job_view(job))
            if line != shown:
                write("\r" + line)
                shown = line
        time.sleep(poll)
    write("\r" + bar(job_view(job)) + "\n")
    return job


def _inline(job: Job) -> None:
    from django.db import connections

    try:
        job_run(job)
    finally:
        connections.close_all()  # this thread's own connections


def command_run(job: Job, write: Callable[[str], None], *, what: str, inline: str = "") -> Job:
    """The command's way to run a queued job: the running node runs it (followed here), or,
    with no node running, this process does (holding the p2p lock so no node starts meanwhile).
    """
    from django.conf import settings

    from apps.core import datadir_lock

    data_dir = Path(settings.DATA_DIR)
    if datadir_lock.record(data_dir, datadir_lock.P2P) is not None:
        write(f"The node is running: it runs this {what} now.\n")
        return follow(job, write)
    try:
        lock = datadir_lock.DataDirLock.acquire(data_dir, datadir_lock.P2P)
    except datadir_lock.DataDirBusy:
        write(f"The node started meanwhile: it runs this {what} now.\n")
        return follow(job, write)
    write(f"The node is not running: this process runs the {what}. {inline}".rstrip() + "\n")
    try:
        runner = threading.Thread(target=_inline, args=(job,), name="storage-job", daemon=True)
        runner.start()
        follow(job, write)
        runner.join()
    finally:
        lock.release()
    return job
