"""Market home (``/market/``): search (every index this node knows and the shops it follows,
merged), the shops I run and follow, my deals, the indexes I ask (added by their link) and the
index this node may run for others. Thin like the other pages: forms post and redirect, the
services refuse in words."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages as flash
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from apps.core.models import Thread
from apps.core.threads import services as threads
from apps.core.threads.app_kit import app_thread_find
from apps.core.threads.pages import open_url
from apps.core.threads.services import ThreadServiceError
from apps.market import (
    deal_selectors,
    listing_selectors,
    search_query,
    search_service,
    selectors,
    services,
)
from apps.market.auction import money
from apps.market.deal_views import STATE_WORDS
from apps.market.display import said
from apps.market.forms import IndexForm, LinkForm, ShopForm
from apps.market.listing_shape import CATEGORIES
from apps.market.models import IndexSettings, KnownIndex
from apps.market.views import share_sheet

SORTS = (
    ("relevance", "Best match"),
    ("newest", "Newest"),
    ("price_asc", "Lowest price"),
    ("price_desc", "Highest price"),
)


@dataclass(frozen=True)
class Found:
    """A search hit as the page shows it."""

    title: str
    price: str
    place: str
    shop_name: str
    listing: str  # its id, to open it once the shop is followed
    url: str  # the listing's page when this node follows the shop, else ""
    link: str  # the shop's link to follow it, else ""


def _hit(hit: search_query.Hit) -> Found:
    followed = app_thread_find(hit.shop)
    url = reverse("market:listing", args=[followed.id, hit.listing]) if followed else ""
    return Found(
        title=hit.title,
        price=money(hit.price, hit.currency),
        place=hit.place,
        listing=hit.listing,
        shop_name=hit.shop_name or (followed.name if followed else "a shop"),
        url=url,
        link="" if followed is not None else hit.link,
    )


def _search(request: HttpRequest) -> dict:
    """The search the page's form asked for (nothing before a search is made)."""
    if not any(request.GET.get(k) for k in ("q", "category", "min_price", "max_price")):
        return {}
    try:
        query = search_query.query_parse(request.GET)
    except search_query.QueryError as exc:
        return {"search_error": said(exc), "searched": True}
    try:
        result = search_service.search(query)
    except ThreadServiceError as exc:
        return {"search_error": said(exc), "searched": True}
    return {
        "searched": True,
        "found": [_hit(hit) for hit in result.hits],
        "search_problems": [
            f"{source.name.capitalize()} did not answer: {source.words}"
            for source in result.sources
            if not source.ok
        ],
    }


def _index() -> dict:
    settings = IndexSettings.objects.first()
    enabled = settings is not None and settings.enabled
    context: dict = {
        "index_form": IndexForm(
            prefix="run", initial={"enabled": enabled, "name": settings.name if settings else ""}
        ),
        "index_on": enabled,
        "indexes": list(KnownIndex.objects.order_by("name", "peer")),
    }
    if enabled:
        try:
            link = search_service.index_link()
        except ThreadServiceError:
            link = ""
        if link:
            about = (
                "Give this link to people who want to search with your index, and to shops "
                "that want to be found through it."
            )
            context["index_share"] = share_sheet(
                link, about, "A market index", label="Your index's link"
            )
    return context


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    deals = deal_selectors.my_deals()
    context = {
        **_search(request),
        **_index(),
        "query": request.GET,
        "categories": CATEGORIES,
        "sorts": SORTS,
        "my_shops": [(t, selectors.shop(t)) for t in selectors.my_shops()],
        "followed": selectors.followed_shops(),
        "deals": [
            {"view": d, "price": money(d.price, d.currency), "state": STATE_WORDS[d.state.state]}
            for d in deals
        ],
        "shop_form": ShopForm(),
        "follow_form": LinkForm(prefix="follow", label="The shop's link"),
        "add_index_form": LinkForm(prefix="index", label="The index's link"),
    }
    return render(request, "market/home.html", context)


def _to_home(anchor: str = "") -> HttpResponse:
    return redirect(reverse("market:home") + anchor)


@require_POST
def shop_create(request: HttpRequest) -> HttpResponse:
    form = ShopForm(request.POST)
    if not form.is_valid():
        flash.error(request, "No shop was opened: please give it a name.")
        return _to_home("#shops")
    try:
        thread = services.shop_create(**form.cleaned_data)
    except ThreadServiceError as exc:
        flash.error(request, f"No shop was opened: {said(exc)}")
        return _to_home("#shops")
    flash.success(request, "Your shop is open: list your first item.")
    return redirect(reverse("market:shop", args=[thread.id]))


@require_POST
def follow(request: HttpRequest) -> HttpResponse:
    """Join a shop with its customers' link (from a search hit, or pasted)."""
    form = LinkForm(request.POST, prefix="follow")
    if not form.is_valid():
        flash.error(request, "Nothing was followed: paste the shop's link.")
        return _to_home("#follow")
    try:
        thread = threads.invite_redeem(link=form.cleaned_data["link"])
    except ThreadServiceError as exc:
        flash.error(request, f"Nothing was followed: {said(exc)}")
        return _to_home("#follow")
    if thread.state == Thread.State.JOINING:
        flash.info(request, "Joining the shop: its node did not finish answering; this node "
                   "keeps trying.")  # fmt: skip
        return _to_home()
    flash.success(request, f"You follow {thread.name}.")
    back = request.POST.get("listing", "")
    if back and listing_selectors.listing(thread, back) is not None:
        return redirect(reverse("market:listing", args=[thread.id, back]))
    return redirect(open_url(thread))


@require_POST
def index_add(request: HttpRequest) -> HttpResponse:
    form = LinkForm(request.POST, prefix="index")
    if not form.is_valid():
        flash.error(request, "No index was added: paste the index's link.")
        return _to_home("#indexes")
    try:
        added = search_service.index_add(form.cleaned_data["link"])
    except (ThreadServiceError, ValueError) as exc:
        flash.error(request, f"No index was added: {said(exc)}")
    else:
        flash.success(request, f"Added {added.name or 'the index'}: your searches ask it too.")
    return _to_home("#indexes")


@require_POST
def index_remove(request: HttpRequest) -> HttpResponse:
    try:
        search_service.index_remove(request.POST.get("peer", ""))
    except (ThreadServiceError, ValueError) as exc:
        flash.error(request, f"The index stays: {said(exc)}")
    else:
        flash.success(request, "Removed: your searches no longer ask it.")
    return _to_home("#indexes")


@require_POST
def index_settings(request: HttpRequest) -> HttpResponse:
    form = IndexForm(request.POST, prefix="run")
    if not form.is_valid():
        flash.error(request, "Nothing changed: the name is too long.")
        return _to_home("#run-index")
    enabled = form.cleaned_data["enabled"]
    try:
        search_service.index_enable(enabled, name=form.cleaned_data["name"])
    except (ThreadServiceError, ValueError) as exc:
        flash.error(request, f"Nothing changed: {said(exc)}")
    else:
        flash.success(
            request,
            "This node runs a market index: give its link to shops and buyers."
            if enabled
            else "This node no longer runs a market index.",
        )
    return _to_home("#run-index")
