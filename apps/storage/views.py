"""The storage pages (under /node/storage/, owner only): back up a folder and follow it, the
backups made, a backup's files (browse, download one, restore), the holders that keep the
encrypted shares and how safe that is, inviting a friend to hold, what to keep, and on a
friend's node the parties it holds for.

Thin: the forms check the shape, the services do the work and refuse in words
(``StorageError``), shown on the page. The services are imported where used: the URLconf loads
before all of them are ready, and a page still shows what the rows say without them."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib import messages as flash
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.utils.safestring import mark_safe
from django.utils.timesince import timesince
from django.views.decorators.http import require_GET, require_POST

from apps.core.threads.qr import qr_svg
from apps.storage import selectors
from apps.storage.forms import BackupForm, GrantForm, InviteForm, RestoreForm, RetentionForm
from apps.storage.models import FileEntry, Holder, Job
from apps.storage.space import StorageError

POLL = "every 1s"  # a running job's card asks this often how far it is
MB = 1 << 20


def at(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


def _no_store(response: HttpResponse) -> HttpResponse:
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


HOLDER_STATE = {
    Holder.State.INVITED: "invited: waiting for them to accept",
    Holder.State.ACTIVE: "holding",
    Holder.State.UNREACHABLE: "not reachable lately",
    Holder.State.FAILING: "failed a check",
    Holder.State.FULL: "full",
}


def checked_words(when: datetime | None) -> str:
    if when is None:
        return "not checked yet"
    ago = timezone.now() - when
    if ago < timedelta(minutes=1):
        return "checked just now"
    return f"checked {timesince(when)} ago"


def holder_page(view: selectors.HolderView) -> dict[str, Any]:
    holder = view.holder
    return {
        "name": selectors.holder_name(holder),
        "kind": "your device" if holder.kind == Holder.Kind.DEVICE else "a friend's node",
        "key": holder.device or str(holder.pk),
        "quota": holder.quota,
        "used": holder.used,
        "free": view.free,
        "percent": min(100, round(view.fill * 100)),
        "verified": at(holder.verified_ms),
        "checked": checked_words(at(holder.verified_ms)),
        "state": holder.state,
        "state_words": HOLDER_STATE.get(holder.state, holder.get_state_display()),
        "ok": holder.state == Holder.State.ACTIVE,
        "problem": holder.problem,
        "shares": view.shares,
        "at_risk": view.at_risk,
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
    return _no_store(response)


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


# -- holders ---------------------------------------------------------------------------------------


def _holders_context(**forms: Any) -> dict[str, Any]:
    views = selectors.holder_list()
    totals = selectors.totals()
    held = [
        {
            **party,
            "name": party.get("label") or "Someone",
            "form": GrantForm(
                initial={"quota_mb": party["quota"] // MB}, auto_id=f"id_grant{n}_%s"
            ),
        }
        for n, party in enumerate(selectors.held_list())
    ]
    return {
        "holders": [holder_page(v) for v in views],
        "totals": totals,
        "redundancy": selectors.redundancy_words(totals),
        "warnings": selectors.warnings(views),
        "invite": forms.get("invite") or InviteForm(),
        "retention": forms.get("retention") or RetentionForm(initial=selectors.retention()),
        "held": held,
        "has_thread": selectors.thread() is not None,
    }


@require_GET
def holders(request: HttpRequest) -> HttpResponse:
    return render(request, "storage/holders.html", _holders_context())


@require_POST
def holder_invite(request: HttpRequest) -> HttpResponse:
    """The invite link for a friend, shown once (with its QR code)."""
    form = InviteForm(request.POST)
    if form.is_valid():
        from apps.storage.hold import holder_invite as invite

        try:
            made = invite(quota_mb=form.cleaned_data["quota_mb"], label=form.cleaned_data["label"])
        except StorageError as exc:
            form.add_error("quota_mb", exc.words)
        else:
            share = {
                "link": made["link"],
                "qr": mark_safe(qr_svg(made["link"])),  # noqa: S308 - segno's SVG, escaped
                "title": "Hold my backups",
                "label": "The invite link",
                "about": "Send it to your friend: on their node they open it (Join a thread) "
                "and it starts keeping encrypted shares of your backups. They can read none "
                "of it.",
            }
            context = {"share": share, "label": form.cleaned_data["label"]}
            return _no_store(render(request, "storage/invite.html", context))
    return render(request, "storage/holders.html", _holders_context(invite=form), status=400)


@require_POST
def holders_check(request: HttpRequest) -> HttpResponse:
    """Ask every holder now for proof it still has its shares, and repair what failed."""
    try:
        said = check_now()
    except StorageError as exc:
        flash.error(request, exc.words)
    else:
        flash.success(request, said)
    back = request.POST.get("next", "")
    return redirect(back if back in (reverse("storage:backups"),) else "storage:holders")


def check_now() -> str:
    from apps.storage.audit import audit_step
    from apps.storage.repair import repair_step

    if selectors.thread() is None:
        raise StorageError("conflict", "Nothing is backed up yet: there is nothing to check.")
    audited = audit_step(force=True)
    repaired = repair_step()
    return check_words(audited, repaired)


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def check_words(audited: dict[str, Any], repaired: dict[str, Any]) -> str:
    """What a check found, in words (``audit.audit_step`` and ``repair.repair_step`` figures)."""
    asked = int(audited.get("holders", 0))
    if not asked:
        return "No holder was due or able to be checked: nothing to check yet."
    said = f"Checked {_count(asked, 'holder', 'holders')}: "
    said += _count(int(audited.get("verified", 0)), "share", "shares") + " proved held"
    for key, words in (("missing", "missing"), ("corrupt", "damaged")):
        if int(audited.get(key, 0)):
            said += f", {audited[key]} {words}"
    unreachable = int(audited.get("unreachable", 0))
    if unreachable:
        said += f", {_count(unreachable, 'holder', 'holders')} not reachable"
    fixed, lost = int(repaired.get("repaired", 0)), int(repaired.get("lost", 0))
    if fixed:
        said += f"; {_count(fixed, 'share', 'shares')} placed again"
    if lost:
        said += f"; {_count(lost, 'piece', 'pieces')} of data could not be recovered"
    return said + "."


@require_POST
def retention_save(request: HttpRequest) -> HttpResponse:
    form = RetentionForm(request.POST)
    if form.is_valid():
        from apps.storage.retention import retention_set

        try:
            retention_set(**form.cleaned_data)
        except StorageError as exc:
            form.add_error(None, exc.words)
        else:
            flash.success(request, "Saved: older backups are cleaned up to match.")
            return redirect("storage:holders")
    return render(request, "storage/holders.html", _holders_context(retention=form), status=400)


@require_POST
def prune(request: HttpRequest) -> HttpResponse:
    try:
        said, _ = prune_now()
    except StorageError as exc:
        flash.error(request, exc.words)
    else:
        flash.success(request, said)
    return redirect("storage:holders")


def prune_now() -> tuple[str, dict[str, int]]:
    """Prune now: what it did in words, and its figures."""
    from apps.storage.retention import prune as run

    done = run()
    dropped = int(done.get("snapshots", 0))
    freed = int(done.get("chunks", 0))
    if not dropped and not freed:
        return "Cleaned up: every backup is still one to keep.", done
    said = (
        f"Cleaned up: {dropped} older backup{'' if dropped == 1 else 's'} removed, "
        f"{freed} piece{'' if freed == 1 else 's'} of data freed."
    )
    return said, done


@require_POST
def held_grant(request: HttpRequest, party: str) -> HttpResponse:
    """On a friend's node: change the room it gives a party."""
    try:
        found = selectors.held_get(party)
    except StorageError as exc:
        raise Http404(exc.words) from exc
    form = GrantForm(request.POST)
    if not form.is_valid():
        flash.error(request, " ".join(form.errors["quota_mb"]))
        return redirect("storage:holders")
    try:
        grant(found.hold_thread, form.cleaned_data["quota_mb"])
    except StorageError as exc:
        flash.error(request, exc.words)
    else:
        name = found.label or "them"
        flash.success(request, f"Saved: you give {name} {form.cleaned_data['quota_mb']} MB.")
    return redirect("storage:holders")


def grant(hold_thread: str, quota_mb: int) -> None:
    from apps.core.threads.app_kit import app_thread_find
    from apps.storage.hold import quota_grant

    thread = app_thread_find(hold_thread)
    if thread is None:
        raise StorageError("not_found", "This node no longer holds backups for them.")
    quota_grant(thread=thread, quota_mb=quota_mb)
