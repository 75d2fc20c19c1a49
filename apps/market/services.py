"""The only writers of shops (ADR 22): the shop, its links, listings and photos; its trade
(offers, bids, accepts, sales, ratings) is written in ``trade_services.py``. Each write is one
transaction of the shop's database and so one signed op, which this node's replica judges at
once as every replica will (``rules.py``). Everything the rules check is checked here first,
against the shop as this node holds it, so a refusal is specific and in words and nothing is
written; a refusal at commit (another write came first) is turned into words the same way
(``app_kit.app_write``).

Errors are ``ThreadServiceError``: ``invalid`` (bad input), ``forbidden`` (not your role),
``not_found``, ``conflict`` (the shop's state does not allow it now), ``refused`` (the rules at
commit), ``not_enabled``.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings

from apps.core import blobs
from apps.core.models import Thread, ThreadInvite
from apps.core.threads import services as threads
from apps.core.threads.app_kit import app_write
from apps.core.threads.context import thread_context
from apps.core.threads.services import MAX_INVITE_DAYS, ThreadServiceError
from apps.core.threads.thread_apps import app_enable
from apps.market import listing_selectors, listing_shape, rules, selectors
from apps.market.models import (
    MAX_ABOUT,
    MAX_NAME,
    Bid,
    Close,
    Listing,
    Photo,
    Shop,
)
from apps.market.policy import ADMIN, CUSTOMER, INDEXER, OWNER, RULES_APP, SHOP_APP
from apps.messaging.services import Upload, _file_name, _mime

MAX_PHOTOS = 10
PHOTO_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif")
LINK_DAYS = MAX_INVITE_DAYS  # an open link lasts as long as links may
RENEW_BEFORE = timedelta(days=1)  # a link closer than this to its end is replaced
FIELDS = frozenset(
    {
        "title",
        "summary",
        "description",
        "price",
        "currency",
        "category",
        "tags",
        "place",
        "lat",
        "lon",
        "quantity",
        "condition",
        "status",
        "shipping",
        "auction",
    }
)
DEFAULTS: dict[str, Any] = {
    "summary": "",
    "description": "",
    "tags": [],
    "place": "",
    "lat": None,
    "lon": None,
    "quantity": 1,
    "status": listing_shape.ACTIVE,
    "shipping": [],
    "auction": None,
}
_PREFIX = re.compile(r"^(the app's rule refused it: )?(market_[a-z]+: )?")


def _plain(reason: str) -> str:
    return _said(_PREFIX.sub("", reason))


def _write(thread: Thread, action):
    return app_write(
        thread, action, app=RULES_APP, not_enabled="this thread is not a shop", plain=_plain
    )


def _said(problem: str) -> str:
    """A rule's refusal as a sentence."""
    text = problem.strip()
    if text and text[-1] not in ".!?":
        text += "."
    return text[:1].upper() + text[1:]


def _staff(thread: Thread, what: str) -> None:
    if not selectors.i_am_staff(thread):
        raise ThreadServiceError("forbidden", f"Only the shop's staff {what}.")


def _text(value: Any, most: int, what: str, *, required: bool = False) -> str:
    if type(value) is not str:
        raise ThreadServiceError("invalid", f"The {what} must be text.")
    value = value.strip()
    if required and not value:
        raise ThreadServiceError("invalid", f"Please give the {what}.")
    if len(value) > most:
        raise ThreadServiceError("invalid", f"The {what} can be at most {most:,} characters.")
    return value


def _id(value: Any, what: str) -> str:
    try:
        return uuid.UUID(hex=str(value)).hex
    except ValueError:
        raise ThreadServiceError("not_found", f"There is no such {what}.") from None


def _listing(thread: Thread, listing: str) -> Listing:
    row = selectors.listing_row(thread, _id(listing, "listing"))
    if row is None:
        raise ThreadServiceError("not_found", "There is no such listing.")
    return row


def shop_create(*, name: str, about: str = "") -> Thread:
    """A new shop owned by this node's member: its thread, the market's rules, the shop's row
    and the open link customers join with."""
    name = _text(name, MAX_NAME, "shop's name", required=True)
    about = _text(about, MAX_ABOUT, "description")
    thread = threads.thread_create(name=name, app=SHOP_APP)
    app_enable(thread=thread, app=RULES_APP)
    link = _new_link(thread, CUSTOMER)
    _write(
        thread,
        lambda: Shop.objects.create(
            id=uuid.UUID(hex=rules.SHOP_ID), name=name, about=about, link=link
        ),
    )
    return thread


def shop_update(thread: Thread, *, name: str | None = None, about: str | None = None) -> None:
    if thread.role != OWNER:
        raise ThreadServiceError(
            "forbidden", "Only the shop's owner changes its name and description."
        )
    values = {}
    if name is not None:
        values["name"] = _text(name, MAX_NAME, "shop's name", required=True)
    if about is not None:
        values["about"] = _text(about, MAX_ABOUT, "description")
    if values:
        _write(thread, lambda: Shop.objects.filter(pk=rules.SHOP_ID).update(**values))


def _new_link(thread: Thread, role: str) -> str:
    return threads.invite_create(
        thread=thread, role=role, expires_in=timedelta(days=LINK_DAYS), uses=None
    ).link


def _fresh(thread: Thread, role: str, link: str | None = None) -> str | None:
    """An open link of this node's for ``role`` that lasts more than a day yet."""
    found = ThreadInvite.objects.filter(
        thread=thread,
        role=role,
        uses=None,
        status="open",
        expires_at__gt=datetime.now(UTC) + RENEW_BEFORE,
    ).exclude(link="")
    if link is not None:
        found = found.filter(link=link)
    first = found.first()
    return first.link if first else None


def shop_link(thread: Thread, *, role: str = CUSTOMER) -> str:
    """The open link customers (or an index, ``INDEXER``) join with. The owner's node replaces a
    link that ends within a day (and states the customers' new one in the shop's row); others
    get the link the shop states."""
    if role not in (CUSTOMER, INDEXER):
        raise ThreadServiceError("invalid", "A shop's open link is for customers or an index.")
    stated = selectors.shop_link_stated(thread)
    if role == CUSTOMER:
        if thread.role != OWNER:
            if not stated:
                raise ThreadServiceError("not_found", "The shop has no link yet.")
            return stated
        if stated and _fresh(thread, CUSTOMER, stated):
            return stated
        link = _new_link(thread, CUSTOMER)
        _write(thread, lambda: Shop.objects.filter(pk=rules.SHOP_ID).update(link=link))
        return link
    if thread.role not in (OWNER, ADMIN):
        raise ThreadServiceError("forbidden", "Only the shop's owner invites an index.")
    return _fresh(thread, INDEXER) or _new_link(thread, INDEXER)


# -- listings ------------------------------------------------------------------------------------


def columns_stored(values: dict[str, Any]) -> dict[str, Any]:
    """List and map columns as the JSON text the model holds."""
    out = dict(values)
    for column in ("tags", "shipping"):
        if column in out and not isinstance(out[column], str):
            out[column] = json.dumps(out[column])
    if "auction" in out and not isinstance(out["auction"], str):
        out["auction"] = "" if out["auction"] is None else json.dumps(out["auction"])
    return out


def listing_save(thread: Thread, *, listing: str | None = None, **fields: Any) -> str:
    """Add a listing (``listing`` None) or change one; returns its id. Only the fields given
    change. Its terms (price, currency, shipping, auction) are fixed once it has a bid."""
    _staff(thread, "write listings")
    unknown = set(fields) - FIELDS
    if unknown:
        raise ThreadServiceError("invalid", f"A listing has no {', '.join(sorted(unknown))}.")
    values = columns_stored(fields)
    for column in ("title", "summary", "description", "place"):
        if type(values.get(column)) is str:
            values[column] = values[column].strip()
    standing = None if listing is None else _listing(thread, listing)
    before = selectors.listing_cols(standing) if standing else columns_stored(DEFAULTS)
    merged = {**before, **values}
    problem = listing_shape.listing_problem(merged)
    if problem:
        raise ThreadServiceError("invalid", problem)
    moved = standing is None or rules.terms_version(before) != rules.terms_version(merged)
    problem = rules.auction_problem(merged, selectors.now_ms() if moved else None)
    if problem:
        raise ThreadServiceError("invalid", problem)
    if standing is not None and selectors.auction_of(thread, standing) is not None:
        with thread_context(thread.thread):
            has_bids = Bid.objects.filter(listing=standing.id).exists()
            closed = Close.objects.filter(scope=standing.id).exists()
        if has_bids and moved:
            raise ThreadServiceError("conflict", _said(rules.HAS_BIDS))
        status = merged["status"]
        if (
            has_bids
            and status != standing.status
            and (status not in (listing_shape.SOLD, listing_shape.WITHDRAWN) or not closed)
        ):
            raise ThreadServiceError(
                "conflict",
                "This listing has bids: it can only be marked sold once its auction closed.",
            )
    if standing is None:
        made = {k: v for k, v in merged.items() if k in FIELDS}

        def add() -> str:
            return Listing.objects.create(**made).id.hex

        return _write(thread, add)
    changed = [k for k in FIELDS if k in values and values[k] != before.get(k)]

    def edit() -> str:
        for column in changed:
            setattr(standing, column, values[column])
        if changed:
            standing.save(update_fields=changed)
        return standing.id.hex

    with thread_context(thread.thread):
        return _write(thread, edit)


def photo_add(thread: Thread, listing: str, upload: Upload) -> str:
    """Add a photo to a listing (sealed into the shop's blobs, like attachments)."""
    _staff(thread, "add photos")
    row = _listing(thread, listing)
    mime = _mime(upload.name)
    if mime not in PHOTO_TYPES:
        raise ThreadServiceError("invalid", "A photo is a JPEG, PNG, WebP or GIF image.")
    shown = listing_selectors.photos(thread, row.id.hex)
    if len(shown) >= MAX_PHOTOS:
        raise ThreadServiceError("invalid", f"A listing has at most {MAX_PHOTOS} photos.")
    try:
        sealed = blobs.seal(thread.thread, upload, limit=settings.SEREUS.max_attachment_bytes)
    except blobs.BlobError as exc:
        raise ThreadServiceError("invalid", f"{_file_name(upload.name)}: {exc}") from exc
    if sealed.size == 0:
        raise ThreadServiceError("invalid", "The photo is empty.")
    position = max((p.position for p in shown), default=-1) + 1

    def add() -> str:
        return Photo.objects.create(
            listing=row.id,
            position=position,
            name=_file_name(upload.name),
            mime=mime,
            size=sealed.size,
            key=sealed.key.hex(),
            chunks=b"".join(sealed.chunks).hex(),
        ).id.hex

    return _write(thread, add)


def photo_remove(thread: Thread, photo: str) -> None:
    _staff(thread, "remove photos")
    pk = _id(photo, "photo")
    with thread_context(thread.thread):
        found = Photo.objects.filter(pk=pk, removed=False).first()
    if found is None:
        raise ThreadServiceError("not_found", "There is no such photo.")

    def remove() -> None:
        found.removed = True
        found.save(update_fields=["removed"])

    with thread_context(thread.thread):
        _write(thread, remove)
