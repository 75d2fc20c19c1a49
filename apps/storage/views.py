"""The backups pages (under /node/storage/, owner only): back up a folder and follow it, the
backups made, a backup's files (browse, download one, restore) and how far a backup or restore
is. The holders pages are ``holder_views.py``.

Thin: the forms check the shape, the services do the work and refuse in words
(``StorageError``), shown on the page. The services are imported where used: the URLconf loads
before all of them are ready, and a page still shows what the rows say without them."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from django.contrib import messages as flash
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET, require_POST

from apps.storage import selectors
from apps.storage.forms import BackupForm, RestoreForm
from apps.storage.models import FileEntry, Job
from apps.storage.space import StorageError

POLL = "every 1s"  # a running job's card asks this often how far it is
MB = 1 << 20


def at(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


def no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store"
    return response


# -- what rows look like on a page -----------------------------------------------------------------


SNAPSHOT_STATE = {"running": "still running", "complete": "complete", "failed": "stopped"}


def snapshot_page(snapshot: Any) -> dict[str, Any]:
    source = snapshot.source.rstrip("/") or "/"
    return {
        "id": str(snapshot.pk),
        "label": snapshot.label or source.rsplit("/", 1)[-1] or source,
        "source": source,
        "device": snapshot.device_label
        or ("this device" if snapshot.device == selectors._this_device() else "another device"),
        "at": at(snapshot.started_ms),
        "files": snapshot.files,
        "bytes": snapshot.bytes,
        "new_bytes": snapshot.new_bytes,
        "state": snapshot.state,
        "state_words": SNAPSHOT_STATE.get(snapshot.state, snapshot.state),
        "problem": snapshot.problem,
    }


def job_page(job: Job) -> dict[str, Any]:
    view = selectors.job_view(job)
    done, total = view["bytes_done"], view["bytes_total"]
    parts = [f"{view['percent']}%"] if view["running"] else []
    if view["files_total"]:
        parts.append(f"{view['files_done']} of {view['files_total']} files")
    if total:
        parts.append(f"{filesizeformat(done)} of {filesizeformat(total)}")
    if job.kind == Job.Kind.BACKUP and (view["new_bytes"] or view["state"] == Job.State.DONE):
        parts.append(f"new data: {filesizeformat(view['new_bytes'])}")
    return {
        **view,
        "progress": " · ".join(parts),
        "title": ("Backup of " + (job.label or job.source))
        if job.kind == Job.Kind.BACKUP
        else "Restore of " + (job.label or "a backup"),
        "live_url": reverse("storage:job_live", args=[job.pk]),
        "page_url": reverse("storage:job", args=[job.pk]),
        "snapshot_url": reverse("storage:snapshot", args=[view["snapshot"]])
        if view["snapshot"] and job.kind == Job.Kind.BACKUP
        else "",
        "poll": POLL,
    }


def entry_page(entry: FileEntry, snapshot_id: str) -> dict[str, Any]:
    folder = entry.kind == FileEntry.Kind.DIR
    return {
        "name": selectors.entry_name(entry),
        "path": entry.path,
        "folder": folder,
        "link": entry.kind == FileEntry.Kind.LINK,
        "size": entry.size,
        "at": datetime.fromtimestamp(entry.mtime_ns / 1e9, tz=UTC) if entry.mtime_ns else None,
        "target": entry.target,
    }


# -- backups ---------------------------------------------------------------------------------------


def _backups_context(form: BackupForm | None = None) -> dict[str, Any]:
    running = [job_page(j) for j in selectors.jobs_recent() if j.kind == Job.Kind.BACKUP]
    return {
        "form": form or BackupForm(),
        "jobs": [j for j in running if j["running"]][:3] or running[:1],
        "snapshots": [snapshot_page(s) for s in selectors.snapshot_list()],
        "warnings": selectors.warnings(),
    }


@require_GET
def backups(request: HttpRequest) -> HttpResponse:
    return render(request, "storage/backups.html", _backups_context())


@require_POST
def backup_start(request: HttpRequest) -> HttpResponse:
    form = BackupForm(request.POST)
    if form.is_valid():
        from apps.storage.backup import backup_start as start

        try:
            job = start(path=form.cleaned_data["path"], label=form.cleaned_data["label"])
        except StorageError as exc:
            form.add_error("path", exc.words)
        else:
            return redirect("storage:job", job.pk)
    return render(request, "storage/backups.html", _backups_context(form), status=400)


def _job_or_404(job_id: int) -> Job:
    try:
        return selectors.job_get(job_id)
    except StorageError as exc:
        raise Http404(exc.words) from exc


@require_GET
def job(request: HttpRequest, job_id: int) -> HttpResponse:
    """One backup or restore, live while it runs (without JavaScript, the page refreshes)."""
    found = job_page(_job_or_404(job_id))
    return render(request, "storage/job.html", {"job": found})


@require_GET
def job_live(request: HttpRequest, job_id: int) -> HttpResponse:
    found = job_page(_job_or_404(job_id))
    return render(request, "storage/_job.html", {"job": found})


# -- a snapshot ------------------------------------------------------------------------------------


def _page_number(text: str | None) -> int:
    try:
        return max(1, int(text or "1"))
    except ValueError:
        return 1  # a page that is not a number: the first


def _snapshot_context(
    snapshot_id: str, path: str, form: RestoreForm | None = None, page: int = 1
) -> dict:
    try:
        listing = selectors.children(snapshot_id, path, page=page)
    except StorageError as exc:
        raise Http404(exc.words) from exc
    shown = snapshot_page(listing.snapshot)
    pages = max(1, -(-listing.total // selectors.PAGE))
    folder = _folder_url(shown["id"], listing.path)
    joiner = "&" if "?" in folder else "?"
    return {
        "snapshot": shown,
        "path": listing.path,
        "crumbs": listing.crumbs,
        "entries": [entry_page(e, shown["id"]) for e in listing.entries],
        "page": min(page, pages),
        "pages": pages,
        "prev_url": f"{folder}{joiner}page={page - 1}" if 1 < page <= pages else "",
        "next_url": f"{folder}{joiner}page={page + 1}" if page < pages else "",
        "form": form or RestoreForm(initial={"path": listing.path}),
    }


@require_GET
def snapshot(request: HttpRequest, snapshot_id: str) -> HttpResponse:
    page = _page_number(request.GET.get("page"))
    context = _snapshot_context(snapshot_id, request.GET.get("path", ""), page=page)
    return render(request, "storage/snapshot.html", context)


@require_GET
def download(request: HttpRequest, snapshot_id: str) -> HttpResponse:
    """A file of the backup, decrypted as it streams; the name is the file's own."""
    from apps.storage.restore import file_stream

    try:
        entry = selectors.entry_get(snapshot_id, request.GET.get("path", ""))
    except StorageError as exc:
        raise Http404(exc.words) from exc
    if entry.kind != FileEntry.Kind.FILE:
        raise Http404("Only a file can be downloaded: open a folder to see what it holds.")
    try:
        stream = started(file_stream(snapshot_id, entry.path))
    except StorageError as exc:
        flash.error(request, exc.words)
        return redirect(_folder_url(snapshot_id, entry.path.rpartition("/")[0]))
    return file_response(stream, selectors.entry_name(entry), entry.size)


def started(stream: Iterator[bytes]) -> Iterator[bytes]:
    """The stream with its first piece already fetched: a file none of whose holders answers is
    refused in words before any byte is sent. A failure later cuts the download short of its
    Content-Length, which the browser shows as a failed download, never as a whole file."""
    first = next(stream, b"")
    return itertools.chain([first], stream)


def file_response(stream: Any, name: str, size: int) -> StreamingHttpResponse:
    response = StreamingHttpResponse(stream, content_type="application/octet-stream")
    # RFC 6266 with filename*: any name, quotes, slashes or non-ASCII, arrives intact and safe.
    response["Content-Disposition"] = content_disposition_header(True, name)
    response["Content-Length"] = str(size)
    response["X-Content-Type-Options"] = "nosniff"
    return no_store(response)


def _folder_url(snapshot_id: str, path: str) -> str:
    from urllib.parse import urlencode

    url = reverse("storage:snapshot", args=[snapshot_id])
    return url + ("?" + urlencode({"path": path}) if path else "")


@require_POST
def restore_start(request: HttpRequest, snapshot_id: str) -> HttpResponse:
    form = RestoreForm(request.POST)
    path = request.POST.get("path", "")
    if form.is_valid():
        from apps.storage.restore import restore_start as start

        here = form.cleaned_data["path"] if form.cleaned_data["scope"] == "here" else ""
        try:
            paths = [selectors.clean_path(here)] if here else None
            job = start(snapshot=snapshot_id, target=form.cleaned_data["target"], paths=paths)
        except StorageError as exc:
            form.add_error("target", exc.words)
        else:
            return redirect("storage:job", job.pk)
    context = _snapshot_context(snapshot_id, path, form)
    return render(request, "storage/snapshot.html", context, status=400)
