"""The feed pages: the feed (home of the timeline app: the posts of every timeline this node
follows, merged and ranked by a named feed's rules), starting a timeline, and the rules editor
(each feed's rules, adding and removing feeds, recipes out and in). People and timelines are
shown and typed by name; the rules keep their keys."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from django.contrib import messages as flash
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import content_disposition_header, urlencode
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.core.models import Thread
from apps.core.threads.names import thread_names
from apps.core.threads.registry import thread_database
from apps.core.threads.services import ThreadServiceError
from apps.messaging.services import REACTIONS
from apps.timeline import selectors, services
from apps.timeline.display import active, cards, said
from apps.timeline.forms import (
    FeedNameForm,
    FeedRulesForm,
    RecipeForm,
    TimelineForm,
    lines,
    weighted_lines,
    weighted_text,
)
from apps.timeline.ranking import FeedRules, RulesError
from apps.timeline.recipes import MAX_FEEDS, recipe_export, recipe_import
from apps.timeline.views import PAGE

logger = logging.getLogger(__name__)


def _feed():
    # The feed index is its own module; imported here so the pages load without it in tests
    # that never open the feed.
    from apps.timeline import feed

    return feed


def feed_url(name: str = "", before: str = "") -> str:
    query = {k: v for k, v in (("feed", name), ("before", before)) if v}
    return reverse("timeline:feed") + (f"?{urlencode(query)}" if query else "")


def feed_context(name: str, *, before: str | None = None) -> dict:
    """One page of a named feed (also what its live socket renders)."""
    feed = _feed()
    try:
        page = feed.feed_page(name, before=before, limit=PAGE)
    except feed.FeedError:
        raise Http404("no such page of this feed") from None
    return {
        "feed_name": name,
        "cards": cards(list(page.posts)),
        "older": feed_url(name, page.before) if page.before else "",
        "before": before,
        "reactions": REACTIONS,
        "back": feed_url(name),
    }


def _chosen(asked: str) -> tuple[list[str], str]:
    names = [rules.name for rules in _feed().feeds()]
    return names, asked if asked in names else (names[0] if names else "")


@require_http_methods(["GET", "POST"])
def feed(request: HttpRequest) -> HttpResponse:
    """The feed; a POST starts a new timeline of this node's own."""
    form = TimelineForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            thread = services.timeline_create(**form.cleaned_data)
        except ThreadServiceError as exc:
            form.add_error(None, f"The timeline was not started: {said(exc)}")
        else:
            flash.success(
                request,
                f"{thread.name} is ready. Post to it here; invite followers from its People tab.",
            )
            return redirect("timeline:timeline", thread_id=thread.id)
    names, name = _chosen(request.GET.get("feed", ""))
    if request.GET.get("feed") and request.GET["feed"] != name:
        flash.error(request, "There is no feed by that name; here is your first one.")
    before = request.GET.get("before") or None
    context = feed_context(name, before=before) if name else {"cards": [], "feed_name": ""}
    mine = [t for t in selectors.timelines() if t.role in services.PUBLISHERS and active(t)]
    followed = [t for t in selectors.timelines() if t not in mine]
    context.update(
        feeds=names,
        form=form,
        mine=mine,
        followed=followed,
        live=bool(name) and not before,
    )
    status = 400 if form.errors else 200
    return render(request, "timeline/feed.html", context, status=status)


# --- the rules editor ---


def _followed() -> list[Thread]:
    return [t for t in selectors.timelines() if t.state == Thread.State.ACTIVE]


def people() -> dict[str, str]:
    """Member key -> name, of everyone in the timelines this node has."""
    found: dict[str, str] = {}
    for thread in _followed():
        try:
            state = thread_database(thread.thread).replica().control.state
        except Exception:  # a damaged timeline names nobody; the page still works
            logger.exception("reading the members of timeline %s failed", thread.id[:12])
            continue
        names = thread_names(thread)  # this node's own member by its name: one can weigh it
        for member, member_state in state.members.items():
            if member_state.active:
                found.setdefault(member.hex(), names[member.hex()])
    return found


def _keys_by_name(known: Mapping[str, str]) -> dict[str, set[str]]:
    by_name: dict[str, set[str]] = {}
    for key, name in known.items():
        by_name.setdefault(name.casefold(), set()).add(key)
    return by_name


def _timeline_choices() -> list[tuple[str, str]]:
    return [(t.id, t.name) for t in _followed()]


def rules_form(index: int, rules: FeedRules | None = None, data=None) -> FeedRulesForm:
    initial = {}
    if rules is not None:
        known = people()
        initial = {
            "name": rules.name,
            "order": rules.order,
            "timelines": list(rules.timelines),
            "people": weighted_text(
                {k: v for k, v in rules.author_weights.items() if k in known}, known.get
            ),
            "keywords": weighted_text(rules.keywords),
            "tags": weighted_text(rules.tags, lambda tag: f"#{tag}"),
            "mute_words": "\n".join(rules.mute_words),
            "hide_replies_to_unfollowed": rules.hide_replies_to_unfollowed,
            "dedupe_reposts": rules.dedupe_reposts,
            "half_life_hours": rules.half_life_hours,
        }
        for thread_id, weight in rules.timeline_weights.items():
            initial[f"weight_{thread_id}"] = weight
    return FeedRulesForm(data, prefix=f"f{index}", initial=initial, timelines=_timeline_choices())


def rules_from_form(form: FeedRulesForm, old: FeedRules | None) -> FeedRules:
    """The rules a valid form describes; people by name (a name two people share is refused),
    and weights of people no longer shown kept as they were."""
    data = form.cleaned_data
    known = people()
    by_name = _keys_by_name(known)
    authors: dict[str, float] = {}
    for name, weight in weighted_lines(data["people"], "the person").items():
        keys = by_name.get(name.casefold(), set())
        if not keys:
            raise RulesError(f"Nobody in the timelines you follow is called “{name}”.")
        if len(keys) > 1:
            raise RulesError(
                f"More than one person is called “{name}”; give them a contact name first."
            )
        authors[keys.pop()] = weight
    if old is not None:  # people this node no longer sees: their weights stay
        authors = {**{k: v for k, v in old.author_weights.items() if k not in known}, **authors}
    timeline_weights = {
        name.removeprefix("weight_"): value
        for name, value in data.items()
        if name.startswith("weight_") and value not in (None, 0)
    }
    tags = {tag.removeprefix("#"): w for tag, w in weighted_lines(data["tags"], "the tag").items()}
    return FeedRules(
        name=data["name"],
        order=data["order"],
        timelines=tuple(data["timelines"]),
        timeline_weights=timeline_weights,
        author_weights=authors,
        keywords=weighted_lines(data["keywords"], "the keyword"),
        tags=tags,
        mute_words=tuple(lines(data["mute_words"])),
        hide_replies_to_unfollowed=data["hide_replies_to_unfollowed"],
        dedupe_reposts=data["dedupe_reposts"],
        half_life_hours=data["half_life_hours"],
    )


def _int(value: object, default: int) -> int:
    try:
        return int(str(value))
    except ValueError:
        return default


def _to_feed(index: int) -> HttpResponse:
    return redirect(reverse("timeline:rules") + f"?open={index}#feed-{index}")


def _save(request: HttpRequest, feeds: list[FeedRules], done: str) -> bool:
    try:
        _feed().feeds_save(feeds)
    except RulesError as exc:
        flash.error(request, f"Not saved: {said(exc)}")
        return False
    flash.success(request, done)
    return True


def _rules_page(request: HttpRequest, forms: list[FeedRulesForm] | None = None, *,
                add: FeedNameForm | None = None, recipe: RecipeForm | None = None,
                status: int = 200) -> HttpResponse:  # fmt: skip
    feeds = list(_feed().feeds())
    shown = forms or [rules_form(i, rules) for i, rules in enumerate(feeds)]
    context = {
        "forms": list(zip(feeds, shown, strict=False)),
        "add_form": add or FeedNameForm(),
        "recipe_form": recipe or RecipeForm(),
        "can_add": len(feeds) < MAX_FEEDS,
        "can_remove": len(feeds) > 1,
        # The feed just saved or added stays open (the first one when none is named).
        "open_index": _int(request.GET.get("open"), 0),
    }
    return render(request, "timeline/rules.html", context, status=status)


@require_http_methods(["GET", "POST"])
def rules(request: HttpRequest) -> HttpResponse:
    """Every feed's rules, each saved by its own Save button (``save`` = its number)."""
    if request.method == "GET":
        return _rules_page(request)
    feeds = list(_feed().feeds())
    try:
        index = int(request.POST.get("save", ""))
        old = feeds[index]
    except (ValueError, IndexError):
        flash.error(request, "That feed is no longer there; here are your feeds as they are.")
        return redirect("timeline:rules")
    form = rules_form(index, data=request.POST)
    if form.is_valid():
        try:
            feeds[index] = rules_from_form(form, old)
        except RulesError as exc:
            form.add_error(None, said(exc))
        else:
            if _save(request, feeds, f"The feed “{feeds[index].name}” is saved."):
                return _to_feed(index)
            return redirect("timeline:rules")
    forms = [form if i == index else rules_form(i, f) for i, f in enumerate(feeds)]
    return _rules_page(request, forms, status=400)


@require_POST
def feed_add(request: HttpRequest) -> HttpResponse:
    form = FeedNameForm(request.POST)
    feeds = list(_feed().feeds())
    if form.is_valid():
        name = form.cleaned_data["name"]
        if any(f.name.casefold() == name.casefold() for f in feeds):
            form.add_error("name", f"You have a feed called “{name}” already.")
        else:
            try:
                new = FeedRules(name=name)
            except RulesError as exc:
                form.add_error("name", said(exc))
            else:
                if _save(request, [*feeds, new], f"The feed “{name}” is added."):
                    return _to_feed(len(feeds))
                return redirect("timeline:rules")
    return _rules_page(request, add=form, status=400)


@require_POST
def feed_remove(request: HttpRequest) -> HttpResponse:
    name = request.POST.get("feed", "")
    feeds = list(_feed().feeds())
    left = [f for f in feeds if f.name != name]
    if len(left) == len(feeds):
        flash.error(request, "That feed is no longer there.")
    elif not left:
        flash.error(request, "Your last feed stays: the feed page needs one.")
    else:
        _save(request, left, f"The feed “{name}” is removed.")
    return redirect("timeline:rules")


@require_GET
def recipe(request: HttpRequest) -> HttpResponse:
    """A feed as a recipe file to give someone (without the timelines and people it names)."""
    name = request.GET.get("feed", "")
    found = next((f for f in _feed().feeds() if f.name == name), None)
    if found is None:
        flash.error(request, "There is no feed by that name to download.")
        return redirect("timeline:rules")
    try:
        data = recipe_export(found)
    except RulesError as exc:
        flash.error(request, said(exc))
        return redirect("timeline:rules")
    response = HttpResponse(data, content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = content_disposition_header(
        as_attachment=True, filename=f"{found.name} feed recipe.json"
    )
    response["X-Content-Type-Options"] = "nosniff"
    return response


@require_POST
def recipe_upload(request: HttpRequest) -> HttpResponse:
    form = RecipeForm(request.POST, request.FILES)
    if form.is_valid():
        feeds = list(_feed().feeds())
        name = form.cleaned_data["name"] or None
        try:
            new = recipe_import(form.cleaned_data["recipe"].read(), name)
        except RulesError as exc:
            form.add_error("recipe", said(exc))
        else:
            if any(f.name.casefold() == new.name.casefold() for f in feeds):
                form.add_error(
                    "name", f"You have a feed called “{new.name}” already: name this one."
                )
            elif len(feeds) >= MAX_FEEDS:
                form.add_error(None, f"You have {MAX_FEEDS} feeds, the most there can be.")
            elif _save(request, [*feeds, new], f"The feed “{new.name}” is added from the recipe."):
                return _to_feed(len(feeds))
            else:
                return redirect("timeline:rules")
    return _rules_page(request, recipe=form, status=400)
