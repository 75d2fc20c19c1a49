"""The Lifts page (/ledger/lifts/): what a lift is, a form to start one (the amount, and
optionally the tally it starts in and the one it comes back by), my lifts newest first with their
state in words, and this node's lift settings. Thin: ``lifts`` starts, decides and refuses in
words. While a lift looks for a way around, the list asks every 2 s whether anything changed
(an empty answer when not), so a decision shows without a reload."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from django import forms
from django.contrib import messages as flash
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.core.models import Thread
from apps.ledger import display, lifts, selectors
from apps.ledger.amounts import AmountError, Unit, format_amount, parse_amount, unit_parse
from apps.ledger.models import Lift
from apps.ledger.views import said

CHOOSE = ""  # the selects' first choice: "Let my node choose"
SHOWN = 50  # lifts listed; older ones stay in the API
# Django's own words would repeat the value sent: a tally's id.
NOT_LISTED = "Choose one of the tallies listed: that one cannot take this end of a lift now."


@dataclass(frozen=True)
class End:
    """A tally a lift can start in (where I owe) or come back by (where I am owed)."""

    thread: Thread
    unit: Unit
    balance: int  # mine: + the partner owes me
    label: str  # "Bob and me: You owe Bob 30.000 CHIP"


def _ends() -> tuple[list[End], list[End]]:
    """(where I owe, where I am owed): my open tallies, as ``lifts`` may use them."""
    owing, owed = [], []
    for thread in selectors.tallies():
        if thread.state != Thread.State.ACTIVE:
            continue
        state = selectors.tally(thread)
        if state is None or state.state != "open" or state.balance == 0:
            continue
        partner = display.partner_name(thread, state)
        label = f"{thread.name}: {display.owed(state.balance, state.unit, partner)}"
        end = End(thread, state.unit, state.balance, label)
        (owing if state.balance < 0 else owed).append(end)
    return owing, owed


class LiftForm(forms.Form):
    amount = forms.CharField(
        max_length=64,
        label="Amount",
        help_text="How much to clear on every tally around, like 20.",
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )
    first = forms.ChoiceField(
        required=False,
        error_messages={"invalid_choice": NOT_LISTED},
        label="It starts in",
        help_text="A tally where you owe: your debt there goes down.",
    )
    last = forms.ChoiceField(
        required=False,
        error_messages={"invalid_choice": NOT_LISTED},
        label="It comes back by",
        help_text="A tally where you are owed: what you are owed there goes down as much.",
    )

    def __init__(self, *args, owing: list[End], owed: list[End], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        choose = [(CHOOSE, "Let my node choose")]
        self.fields["first"].choices = choose + [(e.thread.id, e.label) for e in owing]
        self.fields["last"].choices = choose + [(e.thread.id, e.label) for e in owed]


class SettingsForm(forms.Form):
    enabled = forms.BooleanField(
        required=False, label="Carry other people's lifts through my tallies"
    )
    most = forms.CharField(
        max_length=64,
        required=False,
        label="The most one lift may clear",
        help_text="Optional: leave it empty for no limit.",
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )


def _route(amount: int, first: str, last: str, owing: list[End], owed: list[End]) -> list[str]:
    """The two ends to pass to ``lift_start`` (empty: let the node choose both). With only one
    chosen, the other is the tally of the same unit that can take the most."""
    if not first and not last:
        return []
    if first and last:
        return [first, last]
    chosen, others = (first, owed) if first else (last, owing)
    unit = next(e.unit for e in owing + owed if e.thread.id == chosen)
    fits = [e for e in others if e.unit == unit and abs(e.balance) >= amount]
    if not fits:
        where = "you are owed" if first else "you owe"
        raise lifts.LiftError(
            f"none of your tallies where {where} {format_amount(amount, unit)} goes with the one "
            "you chose: choose another, or let your node choose"
        )
    best = max(fits, key=lambda e: abs(e.balance)).thread.id
    return [chosen, best] if first else [best, chosen]


def _start(form: LiftForm, owing: list[End], owed: list[End]) -> Lift | None:
    """Start the form's lift; its problems go on the form, in words."""
    data = form.cleaned_data
    try:
        amount = parse_amount(data["amount"])
        route = _route(amount, data["first"], data["last"], owing, owed)
        return lifts.lift_start(amount=amount, route=route or None)
    except (lifts.LiftError, AmountError) as exc:
        form.add_error(None, said(exc))
        return None


# -- my lifts, in words ------------------------------------------------------------------------


@dataclass(frozen=True)
class LiftRow:
    id: str
    text: str  # "20.000 CHIP"
    state: str  # seeking, committed, voided
    state_text: str  # "looking for a way around"
    reason: str  # why it was called off, as a sentence
    first: str  # the tally it started in, by name
    last: str
    at: datetime


def _name(names: dict[str, str], thread_id: str) -> str:
    return names.get(thread_id, "a tally you left")


def lift_rows() -> list[LiftRow]:
    names = {t.id: t.name for t in selectors.tallies()}
    found = []
    for lift in Lift.objects.order_by("-created_at", "-pk")[:SHOWN]:
        try:
            amount = format_amount(lift.amount, unit_parse(lift.unit))
        except AmountError:
            amount = f"{format_amount(lift.amount)} {lift.unit}"
        reason = said(lifts.LiftError(lift.reason)) if lift.reason else ""
        found.append(
            LiftRow(
                id=lift.id,
                text=amount,
                state=lift.state,
                state_text=Lift.State(lift.state).label,
                reason=reason,
                first=_name(names, lift.first),
                last=_name(names, lift.last),
                at=lift.created_at,
            )
        )
    return found


def _seen(rows: list[LiftRow]) -> str:
    """A short digest of what the list shows, so a poll can answer "nothing changed"."""
    text = "|".join(f"{r.id}:{r.state}:{r.first}:{r.last}" for r in rows)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def live_context() -> dict:
    rows = lift_rows()
    seeking = any(r.state == Lift.State.SEEKING for r in rows)
    waiting = ",".join(r.id for r in rows if r.state == Lift.State.SEEKING)
    return {
        "lifts": rows,
        "seeking": seeking,
        "seen": _seen(rows),
        "waiting": waiting,
        "said_now": "",
    }


def _decided(waiting: set[str], rows: list[LiftRow]) -> str:
    """What to announce after a poll: the lifts the page showed seeking that are decided now."""
    said_now = []
    for row in rows:
        if row.id in waiting and row.state != Lift.State.SEEKING:
            why = f" {row.reason}" if row.reason else ""
            said_now.append(f"Your lift of {row.text}: {row.state_text}.{why}")
    return " ".join(said_now)


# -- the pages ---------------------------------------------------------------------------------


def _settings_form() -> SettingsForm:
    row = lifts.settings()
    most = format_amount(row.most).replace(",", "") if row.most is not None else ""
    return SettingsForm(prefix="settings", initial={"enabled": row.enabled, "most": most})


@require_http_methods(["GET", "POST"])
def lifts_page(request: HttpRequest) -> HttpResponse:
    owing, owed = _ends()
    form = LiftForm(request.POST or None, owing=owing, owed=owed, prefix="lift")
    if request.method == "POST" and form.is_valid():
        made = _start(form, owing, owed)
        if made is not None:
            amount = format_amount(made.amount, unit_parse(made.unit))
            flash.success(request, f"Your lift of {amount} is looking for a way around.")
            return redirect(reverse("ledger:lifts") + "#my-lifts")
    context = {
        **live_context(),
        "form": form,
        "settings_form": _settings_form(),
        "owing": owing,
        "owed": owed,
    }
    return render(request, "ledger/lifts.html", context, status=400 if form.errors else 200)


@require_POST
def lift_settings(request: HttpRequest) -> HttpResponse:
    form = SettingsForm(request.POST, prefix="settings")
    back = redirect(reverse("ledger:lifts") + "#lift-settings")
    if not form.is_valid():
        problems = " ".join(e for errors in form.errors.values() for e in errors)
        flash.error(request, f"Your lift settings did not change: {problems}")
        return back
    text = form.cleaned_data["most"].strip()
    try:
        most = parse_amount(text) if text else None
        saved = lifts.settings_save(enabled=form.cleaned_data["enabled"], most=most)
    except (lifts.LiftError, AmountError) as exc:
        flash.error(request, f"Your lift settings did not change: {said(exc)}")
        return back
    if not saved.enabled:
        flash.success(request, "Saved: your tallies carry no one else's lifts.")
    elif saved.most is None:
        flash.success(request, "Saved: your tallies carry other people's lifts.")
    else:
        flash.success(
            request,
            f"Saved: your tallies carry other people's lifts of up to {format_amount(saved.most)}.",
        )
    return back


@require_GET
def lifts_live(request: HttpRequest) -> HttpResponse:
    """The list of my lifts for the page's poll; 204 (htmx keeps the page) when it is as seen."""
    context = live_context()
    if request.GET.get("seen") == context["seen"]:
        return HttpResponse(status=204)
    waiting = set(request.GET.get("waiting", "").split(","))
    context["said_now"] = _decided(waiting, context["lifts"])
    return render(request, "ledger/_lifts_live.html", {**context, "oob": True})
