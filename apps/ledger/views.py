"""The tally pages: Money (my tallies, open a tally with someone, open a payment request by its
link) and a tally (its balance in words, sign, pay, ask for payment with a link and QR code,
change the credit I give, close, its history). Money's list is asked for again every few seconds
(an empty answer when nothing changed). Thin: forms check shapes, the services write and
refuse in words, shown as messages; every action is a form that posts and redirects, and the
live socket only saves the reload."""

from __future__ import annotations

from django.contrib import messages as flash
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.core.models import Thread
from apps.core.threads.pages import tabs
from apps.core.threads.qr import qr_svg
from apps.core.threads.services import ThreadServiceError
from apps.ledger import display, rules, selectors, services
from apps.ledger.amounts import format_amount
from apps.ledger.forms import AskForm, LimitForm, PayForm, PayLinkForm, TallyForm
from apps.ledger.policy import APP


def said(exc: Exception) -> str:
    """A service's refusal (or a lift's, or an amount's) as a sentence for the page."""
    text = str(exc).strip() or "The tally refused this."
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?", ")")) else text + "."


def _thread(thread_id: str) -> Thread:
    thread = selectors.thread_find(thread_id)
    if thread is None:
        raise Http404("no such tally on this node")
    return thread


def _to_tally(thread: Thread, query: str = "", anchor: str = "") -> HttpResponse:
    return redirect(reverse("ledger:tally", args=[thread.id]) + query + anchor)


def _share(link: str, about: str, title: str, **named: str | int) -> dict:
    """What ``core/_share_sheet.html`` shows (``named``: its label, rows and scan hint)."""
    qr = mark_safe(qr_svg(link))  # noqa: S308 - segno's SVG: no script, the link escaped
    return {"link": link, "qr": qr, "about": about, "title": title, **named}


# -- Money: my tallies -------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def tallies(request: HttpRequest) -> HttpResponse:
    form = TallyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            made = services.tally_create(**form.cleaned_data)
        except ThreadServiceError as exc:
            form.add_error(None, said(exc))
        else:
            flash.success(request, "Your tally is proposed: send the invite to your partner.")
            return _to_tally(made.thread)
    status = 400 if form.errors else 200
    context = {**_rows_context(), "form": form, "link_form": PayLinkForm()}
    return render(request, "ledger/tallies.html", context, status=status)


def _rows_context() -> dict:
    rows = display.rows()
    return {"rows": rows, "seen": display.rows_seen(rows)}


@require_GET
def tallies_live(request: HttpRequest) -> HttpResponse:
    """My tallies for Money's poll; 204 (htmx keeps the page) when they are as the page shows."""
    context = _rows_context()
    if request.GET.get("seen") == context["seen"]:
        return HttpResponse(status=204)
    return render(request, "ledger/_tallies_live.html", context)


@require_http_methods(["GET", "POST"])
def open_link(request: HttpRequest) -> HttpResponse:
    """A payment request's link, pasted or scanned: its tally's page with the request ready."""
    form = PayLinkForm(request.POST or request.GET or None)
    if form.is_bound and form.is_valid():
        try:
            thread_id, invoice = display.pay_link_parse(form.cleaned_data["link"])
        except ValueError as exc:
            form.add_error("link", str(exc))
        else:
            thread = selectors.thread_find(thread_id)
            if thread is not None:
                return _to_tally(thread, f"?pay={invoice}", "#pay-request")
            form.add_error(
                "link",
                "This request is for a tally this node does not have: open it on the node "
                "that holds the tally.",
            )
    context = {**_rows_context(), "form": TallyForm(), "link_form": form}
    status = 400 if form.errors else 200
    return render(request, "ledger/tallies.html", context, status=status)


# -- a tally -----------------------------------------------------------------------------------


def _invite(thread: Thread) -> dict | None:
    """The share sheet of the tally's invite while the partner has not joined."""
    found = (
        thread.invites.filter(status="open", expires_at__gt=timezone.now()).exclude(link="").first()
    )
    if found is None:
        return None
    about = (
        "Send this to your partner, by a channel you trust, or let them scan the QR code on "
        "their node's Join page. It works once. The tally opens when both of you have signed."
    )
    return _share(found.link, about, f"Join {thread.name}")


def live_context(thread: Thread) -> dict:
    """The part of a tally's page that changes as chits arrive (also what its socket renders)."""
    state = selectors.tally(thread)
    partner = display.partner_name(thread, state)
    context: dict = {"thread": thread, "state": state, "partner": partner}
    if state is None:
        return context
    unit = state.unit
    context.update(
        owed=display.owed(state.balance, unit, partner),
        held=display.held(state),
        state_words=display.state_words(state, partner),
        my_limit=format_amount(state.my_limit, unit),
        partner_limit=format_amount(state.partner_limit, unit),
        available=format_amount(state.available, unit),
        receivable=format_amount(state.receivable, unit),
        chits=display.chits_shown(thread, state, partner),
        refused=display.refused(thread, state),
        active=thread.state == Thread.State.ACTIVE,
    )
    return context


def _asked(thread: Thread, chits: display.Chits, invoice: str) -> dict | None:
    """One of my requests with its link and QR code, to pass on."""
    request = display.request_find(chits, invoice)
    if request is None or not request.mine or request.paid:
        return None
    about = (
        "Send this link to your partner, or let them scan the code: their node opens this "
        "request on their tally's page, ready to pay."
    )
    link = display.pay_link(thread, request.id)
    share = _share(
        link,
        about,
        f"Payment request: {thread.name}",
        label="The payment request link",
        rows=3,
        scan="Or let them scan this code on their node's Money page.",
    )
    return {"request": request, "share": share}


def _pay_request(chits: display.Chits, invoice: str) -> display.Request | None:
    request = display.request_find(chits, invoice)
    return request if request is not None and not request.mine else None


@require_http_methods(["GET"])
def tally(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = _thread(thread_id)
    context = live_context(thread)
    state = context["state"]
    context.update(tabs=tabs(thread, APP))
    if state is not None:
        chits: display.Chits = context["chits"]
        can_write = context["active"]
        context.update(
            invite=_invite(thread) if state.i_am_owner and state.partner is None else None,
            asked=_asked(thread, chits, request.GET.get("asked", "")),
            pay_request=_pay_request(chits, request.GET.get("pay", "")),
            can_sign=can_write and not state.i_signed,
            can_pay=can_write and state.state in ("open", "closing"),
            can_ask=can_write and state.state == "open",
            can_close=can_write and state.state == "open",
            pay_form=PayForm(prefix="pay"),
            ask_form=AskForm(prefix="ask"),
            limit_form=LimitForm(
                prefix="limit", initial={"amount": display.form_amount(state.my_limit, state.unit)}
            ),
        )
    return render(request, "ledger/tally.html", context)


def _state(thread: Thread) -> selectors.TallyState:
    state = selectors.tally(thread)
    if state is None:
        raise Http404("this tally's terms have not arrived here yet")
    return state


def _form_error(request: HttpRequest, form, failed: str) -> None:
    problems = [e for errors in form.errors.values() for e in errors]
    flash.error(request, f"{failed}: {' '.join(problems) or 'please fill in the form.'}")


@require_POST
def sign(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = _thread(thread_id)
    try:
        services.tally_sign(thread=thread)
    except ThreadServiceError as exc:
        flash.error(request, f"You did not sign: {said(exc)}")
    else:
        state = _state(thread)
        if state.state == "open":
            flash.success(request, "You signed: the tally is open.")
        else:
            flash.success(request, "You signed: the tally opens when your partner has signed too.")
    return _to_tally(thread)


@require_POST
def pay(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = _thread(thread_id)
    form = PayForm(request.POST, prefix="pay")
    invoice = request.POST.get("invoice", "")
    back = f"?pay={invoice}" if invoice else ""
    if not form.is_valid():
        _form_error(request, form, "Nothing was paid")
        return _to_tally(thread, back, "#pay")
    try:
        services.chit_create(
            thread=thread,
            kind=rules.PAYMENT,
            amount=form.cleaned_data["amount"],
            memo=form.cleaned_data["memo"],
            invoice=invoice or None,
        )
    except ThreadServiceError as exc:
        flash.error(request, f"Nothing was paid: {said(exc)}")
        return _to_tally(thread, back, "#pay")
    state = _state(thread)
    partner = display.partner_name(thread, state)
    flash.success(request, f"Paid. {display.owed(state.balance, state.unit, partner)}.")
    return _to_tally(thread)


@require_POST
def ask(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = _thread(thread_id)
    form = AskForm(request.POST, prefix="ask")
    if not form.is_valid():
        _form_error(request, form, "Nothing was asked")
        return _to_tally(thread, anchor="#ask")
    try:
        made = services.chit_create(
            thread=thread,
            kind=rules.INVOICE,
            amount=form.cleaned_data["amount"],
            memo=form.cleaned_data["memo"],
        )
    except ThreadServiceError as exc:
        flash.error(request, f"Nothing was asked: {said(exc)}")
        return _to_tally(thread, anchor="#ask")
    flash.success(request, "Your request is in the tally: your partner's node shows it.")
    return _to_tally(thread, f"?asked={made.id.hex}", "#asked")


@require_POST
def limit(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = _thread(thread_id)
    form = LimitForm(request.POST, prefix="limit")
    if not form.is_valid():
        _form_error(request, form, "The credit you give did not change")
        return _to_tally(thread, anchor="#limit")
    try:
        services.chit_create(thread=thread, kind=rules.LIMIT, amount=form.cleaned_data["amount"])
    except ThreadServiceError as exc:
        flash.error(request, f"The credit you give did not change: {said(exc)}")
        return _to_tally(thread, anchor="#limit")
    state = _state(thread)
    flash.success(
        request, f"The credit you give is {format_amount(state.my_limit, state.unit)} now."
    )
    return _to_tally(thread)


@require_http_methods(["GET", "POST"])
def close(request: HttpRequest, thread_id: str) -> HttpResponse:
    """GET asks first (the page works without the dialog's script); POST closes."""
    thread = _thread(thread_id)
    state = _state(thread)
    if request.method == "GET":
        partner = display.partner_name(thread, state)
        context = {
            "thread": thread,
            "owed": display.owed(state.balance, state.unit, partner),
            "partner": partner,
        }
        return render(request, "ledger/close_confirm.html", context)
    try:
        services.tally_close(thread=thread)
    except ThreadServiceError as exc:
        flash.error(request, f"The tally was not closed: {said(exc)}")
        return _to_tally(thread)
    state = _state(thread)
    if state.state == "closed":
        flash.success(request, "The tally is closed.")
    else:
        flash.success(
            request, "The tally is closing: no new credit; it closes when the balance is zero."
        )
    return _to_tally(thread)
