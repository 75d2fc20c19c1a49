"""The holders pages (under /node/storage/holders/, owner only): the holders that keep the
encrypted shares and how safe the backups are, inviting a friend to hold, checking every holder
now, which backups to keep and cleaning up; on a friend's node the parties it holds for and the
room it gives each. The backups pages are ``views.py``; the same thin shape."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.contrib import messages as flash
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.utils.timesince import timesince
from django.views.decorators.http import require_GET, require_POST

from apps.core.threads.qr import qr_svg
from apps.storage import selectors
from apps.storage.forms import GrantForm, InviteForm, RetentionForm
from apps.storage.models import Holder
from apps.storage.space import StorageError
from apps.storage.views import MB, at, no_store

# -- what a holder looks like on a page ------------------------------------------------------------


HOLDER_STATE = {
    Holder.State.INVITED: "invited: waiting for them to accept",
    Holder.State.ACTIVE: "holding",
    Holder.State.UNREACHABLE: "not reachable lately",
    Holder.State.FAILING: "failed a check",
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
            return no_store(render(request, "storage/invite.html", context))
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
