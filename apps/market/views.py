"""The shop pages: a shop (its listings; for the shop, "New listing" and the links customers and
indexes join with) and a listing (photos, description, price, shipping, the auction with its
bids, the offer form; for the shop, the editor with photo upload, the offers with Accept, the
end of the auction). Thin: forms check shapes, the services write and refuse in words, shown
as messages; every action is a form that posts and redirects, and the live socket only saves
the reload. Market home is ``home_views.py``, the deal page ``deal_views.py``."""

from __future__ import annotations

import uuid

from django.contrib import messages as flash
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.core.models import Thread
from apps.core.threads.app_kit import AppFailed, app_thread_find
from apps.core.threads.pages import tabs
from apps.core.threads.qr import qr_svg
from apps.core.threads.services import ThreadServiceError
from apps.market import api_bodies as bodies
from apps.market import display, listing_selectors, proxy, selectors, services, trade_services
from apps.market.display import AmountProblem, said
from apps.market.forms import (
    BidForm,
    ListingForm,
    OfferForm,
    PhotoForm,
    ShopForm,
    fields_of,
    initial_of,
)
from apps.market.listing_shape import CONDITION_LABELS
from apps.market.policy import ADMIN, CUSTOMER, INDEXER, OWNER, SHOP_APP, STAFF
from apps.messaging import attachments as serving

RUNS_SHOP = (OWNER, ADMIN, STAFF)
AUCTION_SHOWN = ("auction", "increment", "reserve", "ends_at", "soft_close")


def shop_thread(thread_id: str) -> Thread:
    thread = app_thread_find(thread_id)
    if thread is None or thread.app != SHOP_APP:
        raise Http404("no such shop on this node")
    return thread


def runs_shop(thread: Thread) -> bool:
    return thread.role in RUNS_SHOP and thread.state == Thread.State.ACTIVE


def _listing(thread: Thread, listing: str) -> listing_selectors.ListingView:
    found = listing_selectors.listing(thread, listing)
    if found is None:
        raise Http404("no such listing in this shop")
    return found


def _to_shop(thread: Thread) -> HttpResponse:
    return redirect(reverse("market:shop", args=[thread.id]))


def _to_listing(thread: Thread, listing: str, anchor: str = "") -> HttpResponse:
    return redirect(reverse("market:listing", args=[thread.id, listing]) + anchor)


def _form_error(request: HttpRequest, form, failed: str) -> None:
    problems = [e for errors in form.errors.values() for e in errors]
    flash.error(request, f"{failed}: {' '.join(problems) or 'please fill in the form.'}")


def share_sheet(link: str, about: str, title: str, **named: str | int) -> dict:
    """What ``core/_share_sheet.html`` shows (``named``: its label, rows and scan hint)."""
    qr = mark_safe(qr_svg(link))  # noqa: S308 - segno's SVG: no script, the link escaped
    return {"link": link, "qr": qr, "about": about, "title": title, **named}


# -- a shop ----------------------------------------------------------------------------------


SHARES = {
    CUSTOMER: (
        "customers",
        "Send this to the people you sell to, or let them scan it: with it they see your "
        "listings, make offers and bid. Anyone with the link can join as a customer.",
    ),
    INDEXER: (
        "indexes",
        "Give this to a market index you trust: it reads your active listings so people find "
        "them in their searches. It writes nothing in your shop.",
    ),
}


def _share(thread: Thread, role: str) -> dict | None:
    if role not in SHARES or not runs_shop(thread):
        return None
    try:
        link = services.shop_link(thread, role=role)
    except ThreadServiceError:
        return None
    who, about = SHARES[role]
    return {
        "role": who,
        **share_sheet(link, about, f"{thread.name}: link for {who}", label=f"Link for {who}"),
    }


def shop_live_context(thread: Thread) -> dict:
    """The part of a shop's page that changes as listings arrive (what its socket renders)."""
    shop = selectors.shop(thread)
    wanted = None if runs_shop(thread) else "active"
    cards = [
        display.card(thread, item) for item in listing_selectors.listings(thread, status=wanted)
    ]
    return {"thread": thread, "shop": shop, "cards": cards, "runs_shop": runs_shop(thread)}


def shop_live_html(thread: Thread, csrf_token: str) -> str:
    context = {**shop_live_context(thread), "oob": True, "csrf_token": csrf_token}
    return render_to_string("market/_shop_live.html", context)


@require_GET
def shop(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = shop_thread(thread_id)
    context = shop_live_context(thread)
    context.update(
        tabs=tabs(thread, SHOP_APP),
        share=_share(thread, CUSTOMER if request.GET.get("share") != "indexes" else INDEXER),
        shop_form=ShopForm(
            initial={
                "name": getattr(context["shop"], "name", ""),
                "about": getattr(context["shop"], "about", ""),
            }
        ),
        active=thread.state == Thread.State.ACTIVE,
    )
    return render(request, "market/shop.html", context)


@require_POST
def shop_edit(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = shop_thread(thread_id)
    form = ShopForm(request.POST)
    if not form.is_valid():
        _form_error(request, form, "The shop did not change")
        return _to_shop(thread)
    try:
        services.shop_update(thread, **form.cleaned_data)
    except ThreadServiceError as exc:
        flash.error(request, f"The shop did not change: {said(exc)}")
    else:
        flash.success(request, "Saved.")
    return _to_shop(thread)


# -- the listing editor ------------------------------------------------------------------------


def _as_cleaned(form: ListingForm, name: str, value: object) -> object:
    """A value the form showed, as the form cleans it (to compare with what came back)."""
    try:
        return form.fields[name].clean(value)
    except ValidationError:
        return None


def _save(thread: Thread, form: ListingForm, standing: listing_selectors.ListingView | None) -> str:
    """Write the listing (and its new photo); raises ThreadServiceError or AmountProblem."""
    fields = fields_of(form.cleaned_data)
    if standing is not None:
        # The form shows an auction's end to the minute: saving it unchanged must not move
        # the terms (a listing with bids refuses that).
        shown = initial_of(standing)
        if all(
            form.cleaned_data.get(k) == _as_cleaned(form, k, shown.get(k)) for k in AUCTION_SHOWN
        ):
            fields.pop("auction")
    listing = standing.id if standing is not None else None
    made = services.listing_save(thread, listing=listing, **fields)
    upload = form.cleaned_data.get("photo")
    if upload:
        services.photo_add(thread, made, upload)
    return made


@require_http_methods(["GET", "POST"])
def listing_new(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = shop_thread(thread_id)
    if not runs_shop(thread):
        raise Http404("only the shop lists items")
    form = ListingForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            made = _save(thread, form, None)
        except (ThreadServiceError, AmountProblem) as exc:
            form.add_error(None, said(exc))
        else:
            flash.success(request, "Listed.")
            return _to_listing(thread, made)
    context = {"thread": thread, "form": form, "tabs": tabs(thread, SHOP_APP), "listing": None}
    return render(request, "market/listing_edit.html", context, status=400 if form.errors else 200)


@require_http_methods(["GET", "POST"])
def listing_edit(request: HttpRequest, thread_id: str, listing: str) -> HttpResponse:
    thread = shop_thread(thread_id)
    found = _listing(thread, listing)
    if not runs_shop(thread):
        raise Http404("only the shop edits its listings")
    if request.method == "POST":
        form = ListingForm(request.POST, request.FILES)
        if form.is_valid():
            try:
                _save(thread, form, found)
            except (ThreadServiceError, AmountProblem) as exc:
                form.add_error(None, said(exc))
            else:
                flash.success(request, "Saved.")
                return _to_listing(thread, found.id)
    else:
        form = ListingForm(initial=initial_of(found))
    context = {
        "thread": thread,
        "form": form,
        "listing": found,
        "photos": found.photos,
        "photo_form": PhotoForm(),
        "tabs": tabs(thread, SHOP_APP),
    }
    return render(request, "market/listing_edit.html", context, status=400 if form.errors else 200)


@require_POST
def photo_add(request: HttpRequest, thread_id: str, listing: str) -> HttpResponse:
    thread = shop_thread(thread_id)
    found = _listing(thread, listing)
    form = PhotoForm(request.POST, request.FILES)
    if not form.is_valid():
        _form_error(request, form, "No photo was added")
        return redirect(reverse("market:listing_edit", args=[thread.id, found.id]))
    try:
        services.photo_add(thread, found.id, form.cleaned_data["photo"])
    except ThreadServiceError as exc:
        flash.error(request, f"No photo was added: {said(exc)}")
    else:
        flash.success(request, "Photo added.")
    return redirect(reverse("market:listing_edit", args=[thread.id, found.id]))


@require_POST
def photo_remove(request: HttpRequest, thread_id: str, listing: str, photo: str) -> HttpResponse:
    thread = shop_thread(thread_id)
    found = _listing(thread, listing)
    try:
        services.photo_remove(thread, photo)
    except ThreadServiceError as exc:
        flash.error(request, f"The photo stays: {said(exc)}")
    else:
        flash.success(request, "Photo removed.")
    return redirect(reverse("market:listing_edit", args=[thread.id, found.id]))


def _photo(thread: Thread, listing: str, photo: str) -> serving.AttachmentView:
    try:
        pk = uuid.UUID(str(photo)).hex
    except ValueError:
        raise Http404("no such photo") from None
    found = next((p for p in _listing(thread, listing).photos if p.id == pk), None)
    if found is None:
        raise Http404("no such photo")
    return display.served(thread, found)


def photo(request: HttpRequest, thread_id: str, listing: str, photo: str) -> HttpResponse:
    thread = shop_thread(thread_id)
    return serving.download(thread, _photo(thread, listing, photo))


def photo_thumb(request: HttpRequest, thread_id: str, listing: str, photo: str) -> HttpResponse:
    thread = shop_thread(thread_id)
    response = serving.thumbnail(thread, _photo(thread, listing, photo))
    if response is None:
        raise Http404("no thumbnail")
    return response


# -- a listing -------------------------------------------------------------------------------


def listing_live_context(thread: Thread, listing: str) -> dict:
    """The part of a listing's page that changes: its auction, bids and offers."""
    found = _listing(thread, listing)
    return {
        "thread": thread,
        "listing": found,
        "runs_shop": runs_shop(thread),
        "trade": display.trade(thread, found, runs_shop=runs_shop(thread)),
    }


def listing_live_html(thread: Thread, listing: str, csrf_token: str) -> str:
    try:
        context = listing_live_context(thread, listing)
    except Http404:
        return ""
    context.update(oob=True, csrf_token=csrf_token)
    return render_to_string("market/_listing_live.html", context)


@require_GET
def listing(request: HttpRequest, thread_id: str, listing: str) -> HttpResponse:
    thread = shop_thread(thread_id)
    context = listing_live_context(thread, listing)
    found = context["listing"]
    context.update(
        tabs=tabs(thread, SHOP_APP),
        shop=selectors.shop(thread),
        description=display.description_html(found.description),
        shipping=display.shipping_lines(found),
        condition=CONDITION_LABELS.get(found.condition, found.condition),
        photos=display.photos_shown(thread, found.photos),
        offer_form=OfferForm(prefix="offer"),
        bid_form=BidForm(prefix="bid"),
        active=thread.state == Thread.State.ACTIVE,
    )
    return render(request, "market/listing.html", context)


def _amount(form, name: str, currency: str, what: str) -> int | None:
    text = form.cleaned_data.get(name) or ""
    if not text.strip():
        return None
    return display.amount_parse(text, currency, what)


@require_POST
def offer(request: HttpRequest, thread_id: str, listing: str) -> HttpResponse:
    thread = shop_thread(thread_id)
    found = _listing(thread, listing)
    form = OfferForm(request.POST, prefix="offer")
    if not form.is_valid():
        _form_error(request, form, "No offer was made")
        return _to_listing(thread, found.id, "#offer")
    try:
        price = _amount(form, "price", found.currency, "price")
        trade_services.offer_make(
            thread,
            found.id,
            price=price,
            quantity=form.cleaned_data["quantity"],
            message=form.cleaned_data["message"],
        )
    except (ThreadServiceError, AmountProblem) as exc:
        flash.error(request, f"No offer was made: {said(exc)}")
        return _to_listing(thread, found.id, "#offer")
    flash.success(request, "Your offer is made: the seller's node shows it.")
    return _to_listing(thread, found.id, "#trade")


@require_POST
def bid(request: HttpRequest, thread_id: str, listing: str) -> HttpResponse:
    thread = shop_thread(thread_id)
    found = _listing(thread, listing)
    form = BidForm(request.POST, prefix="bid")
    if not form.is_valid():
        _form_error(request, form, "No bid was made")
        return _to_listing(thread, found.id, "#bid")
    try:
        amount = _amount(form, "amount", found.currency, "bid")
        maximum = _amount(form, "maximum", found.currency, "maximum")
        if amount is not None:
            trade_services.bid_make(thread, found.id, amount)
        if maximum is not None:
            proxy.proxy_set(thread, found.id, maximum)
    except (ThreadServiceError, AmountProblem) as exc:
        flash.error(request, f"No bid was made: {said(exc)}")
        return _to_listing(thread, found.id, "#bid")
    if maximum is not None:
        flash.success(
            request,
            f"Your node bids for you up to {display.money(maximum, found.currency)}; "
            "nobody else sees that maximum.",
        )
    else:
        flash.success(request, "Your bid is in.")
    return _to_listing(thread, found.id, "#trade")


@require_POST
def accept(request: HttpRequest, thread_id: str, listing: str, offer: str) -> HttpResponse:
    thread = shop_thread(thread_id)
    found = _listing(thread, listing)
    try:
        trade_services.offer_accept(thread, found.id, offer)
    except ThreadServiceError as exc:
        flash.error(request, f"The offer was not accepted: {said(exc)}")
        return _to_listing(thread, found.id, "#trade")
    flash.success(request, "Accepted: the deal is open; the buyer's node joins it.")
    return _to_listing(thread, found.id, "#trade")


@require_POST
def close(request: HttpRequest, thread_id: str, listing: str) -> HttpResponse:
    thread = shop_thread(thread_id)
    found = _listing(thread, listing)
    try:
        proxy.auction_close(thread, found.id)
        bodies.winner_deal(thread, found.id)
    except (ThreadServiceError, AppFailed) as exc:
        flash.error(request, f"The auction did not end: {said(exc)}")
        return _to_listing(thread, found.id, "#trade")
    flash.success(request, "The auction has ended.")
    return _to_listing(thread, found.id, "#trade")
