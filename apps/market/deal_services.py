"""Writing in deals (ADR 22): the seller's node opens the deal when it accepts an offer; the
sides write their steps, sign the escrow release, talk and rate. Every step is judged here
first with ``deal.step_problem`` (this node's clock standing in for the op's stamp) so the
person gets the reason in words and nothing is written; the replica decides anyway.

The deal's invite travels to the buyer sealed to their member key in the shop
(``invite_seal``), so only the buyer's node can open it (``invite_open``).
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta
from typing import Any, TypeVar

import nacl.exceptions
import nacl.public
import nacl.signing

from apps.core.models import Thread
from apps.core.thread import countersign
from apps.core.threads import services as threads
from apps.core.threads.app_kit import app_write, member_key
from apps.core.threads.services import ThreadServiceError
from apps.core.threads.thread_apps import app_enable
from apps.market import deal, deal_rules, ratings
from apps.market.deal import ACCEPTED, DealState
from apps.market.deal_rules import DEAL_ID
from apps.market.deal_selectors import deal_folded, deal_terms
from apps.market.models import MAX_MESSAGE, Deal, DealMessage, DealRating, Release, Step
from apps.market.policy import BUYER, DEAL_APP, DEAL_RULES_APP, ESCROW, SHIPPER

INVITE_DAYS = 30
T = TypeVar("T")


def _plain(reason: str) -> str:
    return reason.removeprefix("the app's rule refused it: ")


def _write(thread: Thread, action) -> Any:
    return app_write(
        thread, action, app=DEAL_RULES_APP, not_enabled="this thread is not a deal", plain=_plain
    )


def _enable(thread: Thread) -> None:
    app_enable(thread=thread, app=DEAL_RULES_APP)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _side(thread: Thread) -> str:
    """This node's side in the deal; ``forbidden`` if it has none."""
    side = deal_rules.deal_role(thread.role)
    if side is None:
        raise ThreadServiceError("forbidden", "You take no part in this deal.")
    return side


# -- opening -------------------------------------------------------------------------------------


def deal_open(
    *,
    shop: Thread,
    listing: str,
    accept: str,
    title: str,
    price: int,
    currency: str,
    quantity: int,
    silent_days: int = deal.DEFAULT_SILENT_DAYS,
) -> tuple[Thread, str]:
    """The seller's node opens a deal: its thread, its terms with the opening step (one op),
    and the buyer's single-use invite. Returns the thread and the invite's link."""
    title = " ".join(str(title).split())[: deal_rules.MAX_TITLE]
    terms = {
        "shop": shop.id,
        "listing": listing,
        "accept": accept,
        "title": title,
        "price": price,
        "currency": currency,
        "quantity": quantity,
        "silent_days": silent_days,
    }
    problem = deal_rules.terms_problem(terms)
    if problem:
        raise ThreadServiceError("invalid", problem[0].upper() + problem[1:])
    thread = threads.thread_create(name=title, app=DEAL_APP)
    _enable(thread)
    agreed = {k: terms[k] for k in deal_rules.AGREED}

    def open_deal() -> None:
        Deal.objects.create(
            id=uuid.UUID(hex=deal_rules.deal_row_id(bytes.fromhex(thread.member_id))),
            shop=shop.id,
            listing=uuid.UUID(hex=listing),
            accept=uuid.UUID(hex=accept),
            title=title,
            price=price,
            currency=currency,
            quantity=quantity,
            silent_days=silent_days,
        )
        opening = agreed | {"by": deal.SELLER, "n": 0}
        Step.objects.create(step=ACCEPTED, fields=json.dumps(opening))

    _write(thread, open_deal)
    made = threads.invite_create(
        thread=thread, role=BUYER, expires_in=timedelta(days=INVITE_DAYS), uses=1
    )
    return thread, made.record.link


def invite_seal(link: str, member: bytes) -> bytes:
    """The deal's invite link, sealed to a member's ed25519 key (as X25519): only that member's
    node can open it."""
    public = nacl.signing.VerifyKey(member).to_curve25519_public_key()
    return nacl.public.SealedBox(public).encrypt(link.encode())


def invite_open(thread: Thread, box: bytes) -> str | None:
    """The link sealed in ``box`` with this node's member key in ``thread`` (the shop), or None
    if it was not sealed to this member (or is damaged)."""
    private = member_key(thread).to_curve25519_private_key()
    try:
        return nacl.public.SealedBox(private).decrypt(bytes(box)).decode()
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        return None


def _invite(thread: Thread, role: str) -> str:
    _side(thread)
    made = threads.invite_create(
        thread=thread, role=role, expires_in=timedelta(days=INVITE_DAYS), uses=1
    )
    return made.record.link


def escrow_invite(thread: Thread) -> str:
    """A single-use link that makes its holder the deal's escrow agent."""
    return _invite(thread, ESCROW)


def shipper_invite(thread: Thread) -> str:
    """A single-use link that makes its holder the deal's shipper (shipping updates only)."""
    return _invite(thread, SHIPPER)


# -- steps, releases, messages, ratings ----------------------------------------------------------


def _state(thread: Thread) -> DealState:
    folded = deal_folded(thread)
    if folded is None:
        raise ThreadServiceError("not_found", "This deal has not been opened yet.")
    return folded.state


def step_write(thread: Thread, step: str, **fields: Any) -> str:
    """Write a step of the deal (paid, shipped, received, completed, cancelled, disputed,
    resolved) with its fields; returns the step's id."""
    side = _side(thread)
    fields = {k: v for k, v in fields.items() if v is not None and k not in ("by", "n")}
    problem = deal.step_problem(_state(thread), step, side, fields, _now_ms())
    if problem:
        raise ThreadServiceError("refused", problem)

    def write() -> str:
        state = _state(thread)
        problem = deal.step_problem(state, step, side, fields, _now_ms())
        if problem:  # another step came in meanwhile
            raise ThreadServiceError("refused", problem)
        placed = fields | {"by": side, "n": len(state.steps)}
        return Step.objects.create(step=step, fields=json.dumps(placed)).id.hex

    return _write(thread, write)


def release_sign(thread: Thread) -> str:
    """Sign the release of the escrowed payment as the deal stands; returns the release's id."""
    side = _side(thread)
    if side not in deal_rules.RELEASERS:
        raise ThreadServiceError(
            "forbidden", "Only the buyer, the seller or the escrow agent release the payment."
        )
    key = member_key(thread)
    signer = bytes(key.verify_key)

    def sign() -> str:
        terms = deal_terms(thread)
        folded = deal_folded(thread)
        if terms is None or folded is None:
            raise ThreadServiceError("not_found", "This deal has not been opened yet.")
        if folded.state.state not in deal_rules.RELEASABLE:
            raise ThreadServiceError(
                "refused", "Nothing is held to release before the buyer pays or once cancelled."
            )
        digest = deal_rules.release_digest(terms, folded.state)
        pk = deal_rules.release_id(signer, side, digest)
        if Release.objects.filter(pk=pk).exists():
            raise ThreadServiceError("conflict", "You have released it as the deal stands.")
        Release.objects.create(
            id=uuid.UUID(hex=pk),
            target=uuid.UUID(hex=DEAL_ID),
            digest=digest,
            signer=signer,
            sig=countersign.signature_make(key, deal_rules.DOMAIN, digest),
        )
        return pk

    return _write(thread, sign)


def message_send(thread: Thread, text: str) -> str:
    """Say something in the deal's chat; returns the message's id."""
    text = (text or "").strip()
    if not text:
        raise ThreadServiceError("invalid", "Please write a message.")
    if len(text) > MAX_MESSAGE:
        raise ThreadServiceError("invalid", f"A message can be at most {MAX_MESSAGE:,} characters.")
    return _write(thread, lambda: DealMessage.objects.create(text=text).id.hex)


def deal_rate(
    thread: Thread,
    *,
    overall: int,
    as_described: int | None = None,
    communication: int | None = None,
    shipping: int | None = None,
    comment: str = "",
) -> str:
    """Rate the other side once the deal is completed or resolved, once; returns the id."""
    side = _side(thread)
    if side not in ratings.RATERS:
        raise ThreadServiceError("forbidden", "Only the buyer and the seller rate a deal.")
    cols = {
        "overall": overall,
        "as_described": as_described,
        "communication": communication,
        "shipping": shipping,
        "comment": (comment or "").strip(),
    }
    problem = ratings.rating_problem(cols | {"deal": DEAL_ID, "rater": side})
    if problem:
        raise ThreadServiceError("invalid", problem)
    if _state(thread).state not in deal_rules.RATED_AFTER:
        raise ThreadServiceError(
            "refused", "You can rate the deal once it is completed or resolved."
        )
    pk = deal_rules.rating_id(bytes.fromhex(thread.member_id))

    def rate() -> str:
        if DealRating.objects.filter(pk=pk).exists():
            raise ThreadServiceError("conflict", "You have rated this deal already.")
        DealRating.objects.create(id=uuid.UUID(hex=pk), **cols)
        return pk

    return _write(thread, rate)
