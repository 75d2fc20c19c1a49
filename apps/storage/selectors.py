"""What the storage pages and API read: the party's snapshots and their files, the holders and
how safe the backups are, the retention policy, this node's jobs, and (on a friend's node) the
parties it holds for. Reads only; the services (backup, restore, hold, audit, ...) write.

Rows are read through the storage thread's database (``space.using``); a node with no storage
thread yet simply has no snapshots and no holders."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db.models import Count, Sum

from apps.core.models import Thread
from apps.storage import space
from apps.storage.models import Chunk, FileEntry, HeldParty, Holder, Job, Retention, Share
from apps.storage.space import StorageError

FULL_WARN = 0.9  # a holder this full is named in the warning card
PAGE = 200  # entries of a folder per API page

NO_SNAPSHOT = "There is no such backup here: it may have been cleaned up. Pick one from the list."
NO_PATH = "There is no such file or folder in this backup."
NO_JOB = "There is no such backup or restore on this node."


def thread() -> Thread | None:
    return space.storage_thread()


def _alias() -> str | None:
    found = thread()
    return None if found is None else space.using(found)


# -- snapshots and their files -------------------------------------------------------------------


def snapshot_list() -> list[Any]:
    from apps.storage.models import Snapshot

    alias = _alias()
    if alias is None:
        return []
    return list(Snapshot.objects.using(alias).order_by("-started_ms"))


def snapshot_get(snapshot_id: str) -> Any:
    """The snapshot, or ``StorageError("not_found")`` (also for an id that is not a uuid)."""
    from apps.storage.models import Snapshot

    alias = _alias()
    if alias is None or not _is_uuid(snapshot_id):
        raise StorageError("not_found", NO_SNAPSHOT)
    found = Snapshot.objects.using(alias).filter(pk=snapshot_id).first()
    if found is None:
        raise StorageError("not_found", NO_SNAPSHOT)
    return found


_UUID = re.compile(r"^[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}$")


def _is_uuid(text: str) -> bool:
    return bool(_UUID.match(text or ""))


def clean_path(path: str | None) -> str:
    """A folder or file path of a snapshot as the manifest writes it: "/"-separated, relative,
    without "." or empty parts. ``..`` is refused (it names nothing in a snapshot)."""
    parts = [p for p in (path or "").replace("\\", "/").split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts) or any("\x00" in p for p in parts):
        raise StorageError("invalid", NO_PATH)
    return "/".join(parts)


def entry_get(snapshot_id: str, path: str) -> FileEntry:
    snapshot = snapshot_get(snapshot_id)
    clean = clean_path(path)
    found = (
        FileEntry.objects.using(_alias()).filter(snapshot=snapshot.pk, path=clean).first()
        if clean
        else None
    )
    if found is None:
        raise StorageError("not_found", NO_PATH)
    return found


@dataclass
class Listing:
    snapshot: Any
    path: str  # the folder shown ("" for the top)
    entries: list[FileEntry]  # folders first, then by name
    total: int  # entries in the folder (all pages)
    crumbs: list[tuple[str, str]] = field(default_factory=list)  # (name, path) from the top


def children(snapshot_id: str, path: str = "", *, page: int = 1, size: int = 0) -> Listing:
    """The folder ``path`` of a snapshot: its direct entries, folders first. A path that is a
    file or nothing is ``not_found``."""
    snapshot = snapshot_get(snapshot_id)
    clean = clean_path(path)
    alias = _alias()
    rows = FileEntry.objects.using(alias).filter(snapshot=snapshot.pk)
    if clean:
        folder = rows.filter(path=clean).first()
        if folder is None or folder.kind != FileEntry.Kind.DIR:
            if folder is None and not rows.filter(path__startswith=clean + "/").exists():
                raise StorageError("not_found", NO_PATH)
            if folder is not None:
                raise StorageError("not_found", "This is a file, not a folder: download it.")
        prefix = clean + "/"
        direct = rows.filter(path__startswith=prefix).filter(
            path__regex="^" + re.escape(prefix) + "[^/]+$"
        )
    else:
        direct = rows.filter(path__regex="^[^/]+$")
    total = direct.count()
    page, size = max(1, page), size or PAGE
    # Folders first ("dir" sorts before "file" and "link"), then by path.
    found = list(direct.order_by("kind", "path")[(page - 1) * size : page * size])
    crumbs: list[tuple[str, str]] = []
    walked: list[str] = []
    for part in clean.split("/") if clean else []:
        walked.append(part)
        crumbs.append((part, "/".join(walked)))
    return Listing(snapshot=snapshot, path=clean, entries=found, total=total, crumbs=crumbs)


def entry_name(entry: FileEntry) -> str:
    return entry.path.rsplit("/", 1)[-1]


# -- holders and how safe the backups are ---------------------------------------------------------


@dataclass
class HolderView:
    holder: Holder
    shares: int  # placed shares it holds
    bytes: int  # of those shares
    at_risk: int  # chunks with a share on it that has fewer than k good shares left

    @property
    def free(self) -> int:
        return max(0, self.holder.quota - self.holder.used)

    @property
    def fill(self) -> float:
        return self.holder.used / self.holder.quota if self.holder.quota else 0.0


def holder_list() -> list[HolderView]:
    alias = _alias()
    if alias is None:
        return []
    holders = list(Holder.objects.using(alias).exclude(state=Holder.State.LEFT))
    placed = Share.objects.using(alias).filter(state=Share.State.PLACED)
    counts = {
        row["holder"]: (row["n"], row["b"] or 0)
        for row in placed.values("holder").annotate(n=Count("id"), b=Sum("size"))
    }
    risky = set(_chunks_at_risk(alias))
    at_risk: dict[Any, int] = {}
    if risky:
        for row in (
            Share.objects.using(alias)
            .filter(chunk__in=risky)
            .values("holder")
            .annotate(n=Count("chunk", distinct=True))
        ):
            at_risk[row["holder"]] = row["n"]
    return [HolderView(h, *counts.get(h.pk, (0, 0)), at_risk=at_risk.get(h.pk, 0)) for h in holders]


def _chunks_at_risk(alias: str) -> list[Any]:
    """Chunks that cannot lose one more holder: at most k good shares left (or lost)."""
    placed: dict[Any, int] = {
        row["chunk"]: row["n"]
        for row in Share.objects.using(alias)
        .filter(state=Share.State.PLACED)
        .values("chunk")
        .annotate(n=Count("id"))
    }
    chunks = Chunk.objects.using(alias).values_list("pk", "k", "n", "state")
    return [
        pk
        for pk, k, n, state in chunks
        # a chunk with one share in all (n == k) is as safe as it can be made: not "at risk"
        if state == Chunk.State.LOST or (n > k and placed.get(pk, 0) <= k)
    ]


@dataclass
class Totals:
    source_bytes: int  # plaintext of every chunk the party keeps
    stored_bytes: int  # share bytes placed with holders
    chunks: int
    at_risk: int
    k: int | None  # the redundancy of most chunks
    n: int | None
    pending: int  # shares waiting for a holder


def totals() -> Totals:
    alias = _alias()
    if alias is None:
        return Totals(0, 0, 0, 0, None, None, 0)
    chunks = Chunk.objects.using(alias)
    source = chunks.aggregate(s=Sum("size"))["s"] or 0
    shares = Share.objects.using(alias)
    stored = shares.filter(state=Share.State.PLACED).aggregate(s=Sum("size"))["s"] or 0
    common = chunks.values("k", "n").annotate(c=Count("id")).order_by("-c").first()
    return Totals(
        source_bytes=source,
        stored_bytes=stored,
        chunks=chunks.count(),
        at_risk=len(_chunks_at_risk(alias)),
        k=common["k"] if common else None,
        n=common["n"] if common else None,
        pending=shares.filter(state=Share.State.PENDING).count(),
    )


def redundancy_words(found: Totals) -> str:
    if not found.k or not found.n:
        return "Nothing is backed up yet."
    if found.k == 1:
        if found.n == 1:
            return "One copy, on one holder: losing it loses the backup."
        return f"A full copy on each of {found.n} holders: any one of them restores everything."
    return f"Any {found.k} of {found.n} holders restore everything."


def warnings(views: list[HolderView] | None = None) -> list[str]:
    """What a person should do something about, one sentence each."""
    views = holder_list() if views is None else views
    said: list[str] = []
    usable = [v for v in views if v.holder.state != Holder.State.INVITED]
    if thread() is not None and len(usable) < 2:
        said.append(
            "Only this device holds your backups: add a friend or another device, or a disk "
            "failure loses them."
        )
    for view in usable:
        name = holder_name(view.holder)
        state = view.holder.state
        if state == Holder.State.UNREACHABLE:
            said.append(f"{name} has not answered lately: its copies cannot be checked.")
        elif state == Holder.State.FAILING:
            said.append(f"{name} failed a check: the shares it held are being placed again.")
        elif view.holder.quota and view.fill >= FULL_WARN:
            said.append(
                f"{name} is {min(100, round(view.fill * 100))}% full: ask for more room or add "
                "another holder."
            )
    return said


def holder_name(holder: Holder) -> str:
    if holder.label:
        return holder.label
    if holder.kind == Holder.Kind.DEVICE:
        return "This device" if holder.device == _this_device() else "Another device of yours"
    return "A friend's node"


def _this_device() -> str:
    try:
        return space.device_key().hex()
    except Exception:  # no keys yet: nothing is "this device"
        return ""


# -- retention, jobs, holding for others ----------------------------------------------------------


RETENTION_KEYS = ("keep_last", "keep_daily", "keep_weekly", "keep_monthly")


def retention() -> dict[str, int]:
    alias = _alias()
    row = Retention.objects.using(alias).first() if alias else None
    if row is None:
        row = Retention()  # the defaults, until someone sets it
    return {key: getattr(row, key) for key in RETENTION_KEYS}


def job_get(job_id: int | str) -> Job:
    try:
        pk = int(job_id)
    except (TypeError, ValueError):
        raise StorageError("not_found", NO_JOB) from None
    found = Job.objects.filter(pk=pk).first()
    if found is None:
        raise StorageError("not_found", NO_JOB)
    return found


def job_view(job: Job) -> dict[str, Any]:
    """The job as pages and the API show it (``jobs.job_view``, with the words pages use)."""
    from apps.storage.jobs import job_view as view

    found: dict[str, Any] = dict(view(job))
    percent = found.get("percent")
    if percent is None:
        percent = _percent(job)
    words = (found.get("words") or _job_words(job)).strip().rstrip(".")
    base = {
        "id": job.pk,
        "kind": job.kind,
        "state": job.state,
        "words": words,
        "percent": max(0, min(100, int(percent))),
        "files_done": job.files_done,
        "files_total": job.files_total,
        "bytes_done": job.bytes_done,
        "bytes_total": job.bytes_total,
        "new_bytes": job.new_bytes,
        "stored_bytes": job.stored_bytes,
        "snapshot": job.snapshot or None,
        "source": job.source,
        "target": job.target,
        "label": job.label,
        "problem": job.problem,
        "running": job.state in (Job.State.QUEUED, Job.State.RUNNING),
    }
    for key in ("files_done", "files_total", "bytes_done", "bytes_total", "new_bytes"):
        if found.get(key) is not None:
            base[key] = found[key]
    return base


def _percent(job: Job) -> int:
    if job.state == Job.State.DONE:
        return 100
    if job.bytes_total:
        return min(99, math.floor(100 * job.bytes_done / job.bytes_total))
    if job.files_total:
        return min(99, math.floor(100 * job.files_done / job.files_total))
    return 0


def _job_words(job: Job) -> str:
    what = "backup" if job.kind == Job.Kind.BACKUP else "restore"
    return {
        Job.State.QUEUED: f"The {what} is waiting to start",
        Job.State.RUNNING: f"The {what} is running",
        Job.State.DONE: f"The {what} is done",
        Job.State.FAILED: f"The {what} stopped",
    }.get(job.state, job.get_state_display())


def jobs_recent(limit: int = 5) -> list[Job]:
    return list(Job.objects.order_by("-created_at")[:limit])


def held_list() -> list[dict[str, Any]]:
    """Parties this node holds shares for (not its own)."""
    from apps.storage.hold import holding_for_others

    return [p for p in holding_for_others() if p.get("active", True)]


def held_get(party: str) -> HeldParty:
    found = HeldParty.objects.filter(party=(party or "").lower()[:64], active=True).first()
    if found is None or not found.hold_thread:
        raise StorageError("not_found", "This node holds no backups for them.")
    return found


def own_quota() -> int:
    return int(settings.SEREUS.storage_quota)
