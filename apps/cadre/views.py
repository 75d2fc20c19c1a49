"""The devices pages (issue 17 §5): this person's devices (what each is, when it was last seen,
how far it is in each thread), adding one with a single-use link and its QR code, removing one
after a confirm step that says what removal does, and the progress of a join or a recovery.
On a mirror the devices page is the mirror's own status instead (whose threads it keeps).

Thin: the forms check the shape, ``apps.cadre.link`` / ``devices`` do the work and refuse in
words, shown on the page. The modules doing the work are imported where used, so that the
URLconf loads before all of them are (a mirror has no use for some)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages as flash
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.utils.timesince import timesince
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.cadre.control import CadreError
from apps.cadre.forms import AddDeviceForm, JoinForm
from apps.cadre.models import DeviceLink, MirrorParty
from apps.core.threads.qr import qr_svg

# How often the progress and link pages ask whether something changed.
POLL = "every 2s"


def _no_store(response: HttpResponse) -> HttpResponse:
    # A device link gives whoever holds it this person's secret: never cached anywhere.
    response["Cache-Control"] = "no-store"
    return response


def fingerprint(device: str) -> str:
    """A few characters of a key, to tell two devices with the same name apart."""
    return f"{device[:4]} {device[4:8]}".upper()


# -- the devices page ----------------------------------------------------------------------------


# Short words for a list row; the selector's longer ones are in the row's folded part.
KIND_SHORT: dict[str, str] = {
    "full": "another device of yours",
    "mirror": "mirror (holds only encrypted copies)",
    "standby": "recovery key",
}
KIND_NAME = {"full": "A device", "mirror": "A mirror", "standby": "Recovery key"}


def _thread_words(certified: bool, behind: int | None) -> str:
    if not certified:
        return "not added yet"
    if behind is None:
        return "not known yet"
    if behind == 0:
        return "up to date"
    return f"{behind} change{'' if behind == 1 else 's'} behind"


def _seen_words(view: Any) -> str:
    """When the device last said how far it is, as a list row says it."""
    if view.kind == "standby":
        return ""  # a key, not a node: it is never seen
    if view.this_node:
        return "open now"
    if view.last_seen is None:
        return "not seen yet"
    ago = timezone.now() - view.last_seen
    if ago < timedelta(minutes=1):
        return "last seen just now"
    return f"last seen {timesince(view.last_seen)} ago"


def _summary(view: Any, threads: list[dict[str, Any]]) -> str:
    held = sum(1 for t in view.threads if t.certified)
    summary = f"in {held} of {len(threads)} thread{'' if len(threads) == 1 else 's'}"
    if view.kind == "standby":
        return summary  # nothing to sync: it only has to be certified everywhere
    behind = sum(1 for t in threads if t["words"] != "up to date")
    return summary + (f" · {behind} not up to date" if behind else " · up to date")


def _device_page(view: Any) -> dict[str, Any]:
    """A device as its row shows it (``selectors.DeviceView``)."""
    threads = [
        {"name": t.name or "A thread", "words": _thread_words(t.certified, t.behind)}
        for t in view.threads
    ]
    if view.this_node:
        label, short = view.label or "This device", "this device" if view.label else ""
    else:
        label, short = view.label or KIND_NAME.get(view.kind, "A device"), KIND_SHORT[view.kind]
    if view.kind == "standby":
        short = "used only for a recovery"
    return {
        "device": view.device,
        "label": label,
        "kind": view.kind,
        "sub": " · ".join(part for part in (short, _seen_words(view)) if part),
        "kind_words": view.kind_words,
        "this_node": view.this_node,
        "state": view.state,
        "fingerprint": fingerprint(view.device),
        "threads": [] if view.kind == "standby" else threads,
        "summary": _summary(view, threads) if threads else "",
        "removable": view.removable,
        # This device first, the recovery key last.
        "order": 0 if view.this_node else 2 if view.kind == "standby" else 1,
    }


def _devices() -> list[dict[str, Any]]:
    from apps.cadre.selectors import device_list

    shown = [_device_page(view) for view in device_list(include_gone=True)]
    return sorted(shown, key=lambda device: device["order"])


@require_GET
def devices(request: HttpRequest) -> HttpResponse:
    if settings.SEREUS.mirror:
        return _mirror_page(request)
    return render(request, "cadre/devices.html", _devices_context(AddDeviceForm()))


def _devices_context(form: AddDeviceForm) -> dict[str, Any]:
    shown = _devices()
    return {
        "devices": [d for d in shown if d["state"] == "active"],
        "gone": [d for d in shown if d["state"] != "active"],
        "form": form,
        "join": _join_state(),
    }


def _mirror_page(request: HttpRequest) -> HttpResponse:
    from apps.cadre.mirror_store import status

    labels = dict(MirrorParty.objects.values_list("party", "label"))
    parties: dict[str, dict[str, Any]] = {}
    for row in status():
        party = parties.setdefault(
            row["party"],
            {
                "fingerprint": fingerprint(row["party"]),
                "label": labels.get(row["party"], ""),
                "threads": [],
            },
        )
        party["threads"].append(
            {
                "name": "Their device list"
                if row.get("control")
                else f"Thread {fingerprint(row['thread'])}",
                "ops": row["ops"],
                "last_received": row["last_received"],
                "roster": row["roster"],
            }
        )
    context = {"parties": list(parties.values()), "join": _join_state()}
    return render(request, "cadre/mirror.html", context)


# -- adding a device -------------------------------------------------------------------------------


@require_POST
def device_add(request: HttpRequest) -> HttpResponse:
    """Make a device link and show it once, as text and QR code: only the link's public half is
    kept on this node, so the page cannot be drawn again (make a new link instead)."""
    from apps.cadre.link import link_create

    form = AddDeviceForm(request.POST)
    if not form.is_valid():
        return render(request, "cadre/devices.html", _devices_context(form), status=400)
    kind, label = form.cleaned_data["kind"], form.cleaned_data["label"]
    try:
        made = link_create(kind=kind, label=label)
    except CadreError as exc:
        flash.error(request, exc.words)
        return redirect("cadre:devices")
    mirror = kind == "mirror"
    share = {
        "link": made.link,
        "qr": mark_safe(qr_svg(made.link)),  # noqa: S308 - segno's SVG: no script, escaped
        "title": "Add a mirror" if mirror else "Add a device",
        "label": "The mirror link" if mirror else "The device link",
        "rows": 6,
        "scan": "On the new "
        + ("mirror" if mirror else "device")
        + ": open its claim page, choose “This is another device of mine”, and scan this "
        "code there or paste the link.",
    }
    context = {
        "share": share,
        "made": made,
        "mirror": mirror,
        "label": label,
        "expires_iso": made.expires_at.isoformat(),
        "status_url": reverse("cadre:link_status", args=[made.id]),
        "poll": POLL,
    }
    return _no_store(render(request, "cadre/link.html", context))


@require_GET
def link_status(request: HttpRequest, link_id: str) -> HttpResponse:
    """Asked by the link page: 204 while the link is open, else what became of it."""
    link = DeviceLink.objects.filter(pk=link_id.lower()[:32]).first()
    if link is None:
        raise Http404("no device link made by this node with this id")
    if link.used_at is None and link.expires_at > timezone.now():
        return HttpResponse(status=204)
    context = {"link": link, "used": link.used_at is not None}
    return _no_store(render(request, "cadre/_link_closed.html", context))


# -- removing one ---------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def device_remove(request: HttpRequest, device: str) -> HttpResponse:
    from apps.cadre.devices import device_remove as remove

    found = next((d for d in _devices() if d["device"] == device.lower()), None)
    if found is None or found["state"] != "active":
        raise Http404("no such device of yours")
    error = ""
    if request.method == "POST":
        try:
            remove(device=found["device"])
        except CadreError as exc:
            error = exc.words
        else:
            flash.success(request, f"{found['label']} is removed: it receives nothing new.")
            return redirect("cadre:devices")
    context = {"device": found, "error": error}
    return render(request, "cadre/remove.html", context, status=400 if error else 200)


# -- joining and restoring ------------------------------------------------------------------------


def _join_state() -> dict[str, Any]:
    from apps.cadre.selectors import join_status

    return join_status()


def _restore_state() -> dict[str, Any]:
    from apps.cadre.selectors import restore_status

    return restore_status()


def _progress(status: dict[str, Any], live_url: str) -> dict[str, Any]:
    state = "" if status.get("state") in (None, "none") else status["state"]
    return {
        "status": status,
        "state": state,
        "rows": status.get("progress") or [],
        "live": bool(status.get("running")),
        "live_url": live_url,
        "poll": POLL,
    }


@require_http_methods(["GET", "POST"])
def join(request: HttpRequest) -> HttpResponse:
    """How far this node is in joining the person's other device; with no join under way, the
    form to start one by pasting a device link."""
    from apps.cadre.link import join_start

    form = JoinForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            join_start(link=form.cleaned_data["link"])
        except CadreError as exc:
            form.add_error("link", exc.words)
        else:
            return redirect("cadre:join")
    progress = _progress(_join_state(), reverse("cadre:join_live"))
    context = {**progress, "form": form, "mirror": settings.SEREUS.mirror}
    return render(request, "cadre/join.html", context, status=400 if form.errors else 200)


@require_GET
def join_live(request: HttpRequest) -> HttpResponse:
    progress = _progress(_join_state(), reverse("cadre:join_live"))
    return render(request, "cadre/_join_progress.html", progress)


@require_GET
def restore(request: HttpRequest) -> HttpResponse:
    progress = _progress(_restore_state(), reverse("cadre:restore_live"))
    return render(request, "cadre/restore.html", progress)


@require_GET
def restore_live(request: HttpRequest) -> HttpResponse:
    progress = _progress(_restore_state(), reverse("cadre:restore_live"))
    return render(request, "cadre/_restore_progress.html", progress)
