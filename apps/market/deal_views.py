"""The deal page: what was agreed, the timeline of its states with who and when and which of the
other side's devices hold each step, what this person may do now (forms), the chat, the rating
once it ended, and links for an escrow agent or a shipper. Every action posts and redirects with
a message in plain words; the live socket re-renders the timeline, the actions (only when they
change) and the chat."""

from __future__ import annotations

from django.contrib import messages as flash
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from apps.core.models import Thread
from apps.core.threads.app_kit import app_thread_find
from apps.core.threads.pages import tabs
from apps.core.threads.services import ThreadServiceError
from apps.market import deal, deal_selectors, deal_services, display
from apps.market.auction import money
from apps.market.display import AmountProblem, said
from apps.market.forms import MessageForm, RatingForm, StepForm
from apps.market.policy import DEAL_APP
from apps.market.views import share_sheet

STEP_WORDS = {
    deal.ACCEPTED: "Accepted",
    deal.PAID: "Paid",
    deal.SHIPPED: "Shipped",
    deal.RECEIVED: "Received",
    deal.COMPLETED: "Completed",
    deal.CANCELLED: "Cancelled",
    deal.DISPUTED: "Disputed",
    deal.RESOLVED: "Resolved by the escrow agent",
}
STATE_WORDS = {
    deal.NEW: "Not open yet.",
    deal.ACCEPTED: "Accepted: waiting for the buyer to pay.",
    deal.PAID: "Paid: waiting for the seller to ship.",
    deal.SHIPPED: "Shipped: waiting for the buyer to receive it.",
    deal.RECEIVED: "Received: either side may complete the deal.",
    deal.COMPLETED: "Completed.",
    deal.CANCELLED: "Cancelled.",
    deal.DISPUTED: "Disputed: the escrow agent resolves it.",
    deal.RESOLVED: "Resolved by the escrow agent.",
}
# What each action's button says, and what the page says once it is done.
ACTIONS = {
    deal.PAID: ("I have paid", "Marked paid: the seller's node shows it."),
    deal.SHIPPED: ("Mark shipped", "Marked shipped."),
    deal.RECEIVED: ("I received it", "Marked received."),
    deal.COMPLETED: ("Complete the deal", "The deal is complete."),
    deal.CANCELLED: ("Cancel the deal", "The deal is cancelled."),
    deal.DISPUTED: ("Open a dispute", "The dispute is open: the escrow agent resolves it."),
    deal.RESOLVED: ("Resolve", "The dispute is resolved."),
}
FIELD_WORDS = {
    "reference": "payment reference",
    "carrier": "carrier",
    "tracking": "tracking",
    "reason": "reason",
    "outcome": "outcome",
}
# The fields each step's form shows (the rules say which are required).
STEP_FIELDS = {
    deal.PAID: ("reference",),
    deal.SHIPPED: ("carrier", "tracking"),
    deal.CANCELLED: ("reason",),
    deal.DISPUTED: ("reason",),
    deal.RESOLVED: ("outcome", "split_amount"),
}


def deal_thread(thread_id: str) -> Thread:
    thread = app_thread_find(thread_id)
    if thread is None or thread.app != DEAL_APP:
        raise Http404("no such deal on this node")
    return thread


def _to_deal(thread: Thread, anchor: str = "") -> HttpResponse:
    return redirect(reverse("market:deal", args=[thread.id]) + anchor)


def _step_line(step: deal_selectors.StepView, holders, view) -> dict:
    mine = step.side == view.my_side
    facts = []
    for name, value in step.fields.items():
        if name == "split_amount" and value:
            facts.append(f"back to the buyer: {money(int(value), view.currency)}")
        elif name in FIELD_WORDS and value:
            facts.append(f"{FIELD_WORDS[name]}: {value}")
    return {
        "words": STEP_WORDS.get(step.step, step.step.capitalize()),
        "by": step.by,
        "side": deal.ROLE_NAMES.get(step.side, ""),
        "at": step.at,
        "facts": facts,
        # Said of this member's own steps: whether the other sides' devices have them.
        "delivery": display.delivery_words(holders) if holders and mine else "",
        "delivered": bool(holders) and all(h.holds for h in holders),
    }


# The reason's label where a step asks for one.
REASONS = {
    deal.CANCELLED: "Why you cancel (optional)",
    deal.DISPUTED: "What is wrong",
}
DANGER = (deal.CANCELLED, deal.DISPUTED)


def _actions(view: deal_selectors.DealView) -> list[dict]:
    found = []
    for action in view.actions:
        if action in ACTIONS:
            # Ids of their own at each step: a live swap keeps nothing of the forms it replaces
            # (htmx carries attributes over between elements of the same id).
            form = StepForm(
                prefix=action, initial={"step": action}, auto_id=f"step{len(view.steps)}-%s"
            )
            if action in REASONS:
                form.fields["reason"].label = REASONS[action]
            fields = [form[name] for name in STEP_FIELDS.get(action, ())]
            found.append(
                {"step": action, "button": ACTIONS[action][0], "form": form, "fields": fields,
                 "danger": action in DANGER}
            )  # fmt: skip
    return found


def deal_parts(thread: Thread) -> dict:
    """What the page shows of the deal and its socket re-renders."""
    view = deal_selectors.deal(thread)
    context: dict = {"thread": thread, "deal": view}
    if view is None:
        return context
    holders = display.steps_delivery(thread, view)
    context.update(
        price=money(view.price, view.currency),
        state_words=STATE_WORDS.get(view.state.state, ""),
        timeline=[_step_line(s, h, view) for s, h in zip(view.steps, holders, strict=True)],
        actions=[a for a in _actions(view) if not a["danger"]],
        troubles=[a for a in _actions(view) if a["danger"]],
        can_release=deal_selectors.RELEASE in view.actions,
        can_rate=deal_selectors.RATE in view.actions,
        released_words=", ".join(deal.ROLE_NAMES.get(s, s) for s in view.released_by),
        active=thread.state == Thread.State.ACTIVE,
    )
    return context


LIVE_PARTS = ("market/_deal_state.html", "market/_deal_actions.html", "market/_deal_chat.html")


def deal_live_parts(thread: Thread, csrf_token: str) -> dict[str, str]:
    context = {**deal_parts(thread), "oob": True, "csrf_token": csrf_token}
    return {name: render_to_string(name, context) for name in LIVE_PARTS}


def _page(request: HttpRequest, thread: Thread, invited: dict | None = None) -> HttpResponse:
    context = deal_parts(thread)
    context.update(
        tabs=tabs(thread, DEAL_APP),
        message_form=MessageForm(),
        rating_form=RatingForm(prefix="rating"),
        shop_url=_shop_url(context.get("deal")),
        invited=invited,
    )
    return render(request, "market/deal.html", context)


@require_GET
def deal_page(request: HttpRequest, thread_id: str) -> HttpResponse:
    return _page(request, deal_thread(thread_id))


def _shop_url(view: deal_selectors.DealView | None) -> str:
    """The listing's page, when this node follows the shop it came from."""
    if view is None or app_thread_find(view.shop) is None:
        return ""
    return reverse("market:listing", args=[view.shop, view.listing])


@require_POST
def step(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = deal_thread(thread_id)
    view = deal_selectors.deal(thread)
    wanted = request.POST.get("step", "")
    form = StepForm(request.POST, prefix=wanted)
    if view is None or wanted not in ACTIONS or not form.is_valid():
        flash.error(request, "Nothing changed: please use the deal's own buttons.")
        return _to_deal(thread)
    fields = {k: v for k, v in form.cleaned_data.items() if k in STEP_FIELDS.get(wanted, ())}
    try:
        if fields.get("split_amount"):
            fields["split_amount"] = display.amount_parse(
                fields["split_amount"], view.currency, "amount back to the buyer"
            )
        fields = {k: v for k, v in fields.items() if v not in ("", None)}
        deal_services.step_write(thread, wanted, **fields)
    except (ThreadServiceError, AmountProblem) as exc:
        flash.error(request, f"Nothing changed: {said(exc)}")
        return _to_deal(thread, "#actions")
    flash.success(request, ACTIONS[wanted][1])
    return _to_deal(thread)


@require_POST
def release(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = deal_thread(thread_id)
    try:
        deal_services.release_sign(thread)
    except ThreadServiceError as exc:
        flash.error(request, f"Nothing was released: {said(exc)}")
    else:
        flash.success(request, "You signed the release: it counts with a second signature.")
    return _to_deal(thread)


@require_POST
def message(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = deal_thread(thread_id)
    form = MessageForm(request.POST)
    if not form.is_valid():
        flash.error(request, "Nothing was sent: please write a message.")
        return _to_deal(thread, "#chat")
    try:
        deal_services.message_send(thread, form.cleaned_data["text"])
    except ThreadServiceError as exc:
        flash.error(request, f"Nothing was sent: {said(exc)}")
    return _to_deal(thread, "#chat")


@require_POST
def rating(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = deal_thread(thread_id)
    form = RatingForm(request.POST, prefix="rating")
    if not form.is_valid():
        flash.error(request, "No rating was given: please choose the stars.")
        return _to_deal(thread, "#rate")
    try:
        deal_services.deal_rate(thread, **form.stars())
    except ThreadServiceError as exc:
        flash.error(request, f"No rating was given: {said(exc)}")
        return _to_deal(thread, "#rate")
    flash.success(request, "Thank you: your rating is in the deal.")
    return _to_deal(thread)


INVITES = {
    deal.ESCROW: (
        deal_services.escrow_invite,
        "an escrow agent",
        "Send this to the escrow agent you both chose. It works once; the agent resolves a "
        "dispute and signs the release with one of you.",
    ),
    deal.SHIPPER: (
        deal_services.shipper_invite,
        "a shipper",
        "Send this to the shipper. It works once; the shipper writes shipping updates only.",
    ),
}


@require_POST
def invite(request: HttpRequest, thread_id: str) -> HttpResponse:
    """A single-use link is shown once, on the answer to the form (not kept to redirect to)."""
    thread = deal_thread(thread_id)
    role = request.POST.get("role", "")
    if role not in INVITES:
        flash.error(request, "Nobody was invited: choose an escrow agent or a shipper.")
        return _to_deal(thread)
    make, who, about = INVITES[role]
    try:
        link = make(thread)
    except ThreadServiceError as exc:
        flash.error(request, f"Nobody was invited: {said(exc)}")
        return _to_deal(thread)
    return _page(request, thread, {"who": who, "share": share_sheet(link, about, f"Invite {who}")})
