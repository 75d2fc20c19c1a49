"""A tally in a person's words, for its pages: who the partner is, the balance as a sentence
("You owe Bob 50.00 EUR"), each chit as a line of history, open payment requests, payments of
mine that were refused and why, and the payment-request link the other side's node opens.
Reads only (selectors and the thread's names); no page or request here."""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime

from apps.core.models import Thread
from apps.core.threads import writes
from apps.core.threads.names import thread_names
from apps.core.threads.registry import thread_database
from apps.ledger import rules, selectors
from apps.ledger.amounts import Unit, format_amount
from apps.ledger.models import Chit
from apps.ledger.policy import CHIT

PAY_PREFIX = "sereus:pay/"
THREAD_BYTES = 32
INVOICE_BYTES = 16
NO_PARTNER = "your partner"
NOT_A_PAY_LINK = (
    "This is not a payment request link. A payment request link starts with sereus:pay/ — "
    "copy the whole link again, or scan the QR code."
)


def partner_name(thread: Thread, state: selectors.TallyState | None) -> str:
    """The other party as this node names them: from the contract once they signed, else the
    other member of the thread once they joined, else "your partner"."""
    names = thread_names(thread)
    if state is not None and state.partner:
        return names[state.partner]
    try:
        members = thread_database(thread.thread).replica().control.state.members
    except Exception:  # a damaged thread still shows its page
        return NO_PARTNER
    others = [m.hex() for m, s in members.items() if s.active and m.hex() != thread.member_id]
    return names[others[0]] if others else NO_PARTNER


def form_amount(milli: int, unit: Unit) -> str:
    """An amount as a form field holds it: the unit's decimals, no unit, no separators."""
    return format_amount(milli, unit).removesuffix(f" {unit.code}").replace(",", "")


def owed(balance: int, unit: Unit, partner: str) -> str:
    """A balance (mine: + the partner owes me) as a sentence."""
    if balance > 0:
        return f"{partner} owes you {format_amount(balance, unit)}"
    if balance < 0:
        return f"You owe {partner} {format_amount(-balance, unit)}"
    return "You are even"


def state_words(state: selectors.TallyState, partner: str) -> str:
    if state.state == "proposed":
        if not state.i_signed:
            return "waiting for your signature"
        if state.partner is None:
            return f"waiting for {partner} to join and sign"
        return f"waiting for {partner}'s signature"
    if state.state == "closing":
        return "closing: no new credit"
    return state.state  # open, closed


@dataclass(frozen=True)
class Line:
    """One chit of the chain, as the history shows it."""

    text: str  # "You paid Bob 7.50 EUR"
    memo: str
    after: str  # the balance after it, in words
    at: datetime | None
    mine: bool
    kind: str


def _chain_text(chit: selectors.ChitView, unit: Unit, partner: str) -> str:
    amount = format_amount(chit.amount, unit)
    if chit.kind in rules.LIFT_KINDS:
        return lift_text(chit.kind, amount)
    if chit.kind == rules.PAYMENT:
        return f"You paid {partner} {amount}" if chit.mine else f"{partner} paid you {amount}"
    if chit.kind == rules.LIMIT:
        if chit.mine:
            return f"You set the credit you give {partner} to {amount}"
        return f"{partner} set the credit they give you to {amount}"
    return "You asked to close the tally" if chit.mine else f"{partner} asked to close the tally"


def lift_text(kind: str, amount: str) -> str:
    """A lift's chit in a tally's history (``amount`` with its unit): what it does to the
    balance, never its kind."""
    if kind == rules.RESERVE:
        return f"{amount} held for a lift"
    if kind == rules.LIFT:
        return f"Lift: {amount} cleared"
    return f"Lift called off: {amount} no longer held"


def held(state: selectors.TallyState) -> str:
    """What lifts in progress hold of the balance, as a sentence ("" when nothing is held).
    Only one side of a tally can be held at a time: the side that is owed."""
    amount = state.tip.owner_reserved + state.tip.partner_reserved
    if amount <= 0:
        return ""
    return f"{format_amount(amount, state.unit)} of this is held for a lift in progress"


@dataclass(frozen=True)
class Request:
    """A payment request (an invoice)."""

    id: str
    text: str  # "Bob asks you for 7.50 EUR"
    memo: str
    amount: int
    amount_text: str  # with its unit
    amount_value: str  # as a form takes it back ("7.50")
    mine: bool
    paid: bool
    at: datetime | None


def _request(chit: selectors.ChitView, unit: Unit, partner: str) -> Request:
    amount = format_amount(chit.amount, unit)
    if chit.mine:
        text = f"You asked {partner} for {amount}"
    else:
        text = f"{partner} {'asked' if chit.paid_by else 'asks'} you for {amount}"
    return Request(
        id=chit.id,
        text=text,
        memo=chit.memo,
        amount=chit.amount,
        amount_text=amount,
        amount_value=form_amount(chit.amount, unit),
        mine=chit.mine,
        paid=chit.paid_by is not None,
        at=chit.at,
    )


@dataclass(frozen=True)
class Chits:
    history: list[Line]  # the chain, newest first
    requests: list[Request]  # not paid yet, newest first
    paid_requests: list[Request]


def chits_shown(thread: Thread, state: selectors.TallyState, partner: str) -> Chits:
    history, open_requests, paid = [], [], []
    for chit in selectors.chits(thread, state):
        if chit.kind == rules.INVOICE:
            request = _request(chit, state.unit, partner)
            (paid if request.paid else open_requests).append(request)
            continue
        after = owed(chit.balance, state.unit, partner)
        text = _chain_text(chit, state.unit, partner)
        history.append(Line(text, chit.memo, after, chit.at, chit.mine, chit.kind))
    return Chits(history, open_requests, paid)


def request_find(chits: Chits, invoice_id: str) -> Request | None:
    return next((r for r in chits.requests + chits.paid_requests if r.id == invoice_id), None)


@dataclass(frozen=True)
class Refused:
    """A chit of mine that is not in the tally: being sent again, or refused with a reason."""

    text: str  # "Your payment of 5.00 EUR"
    memo: str
    reason: str  # in words; "" while it is being sent again
    again: bool
    at: datetime | None


def _sentence(text: str) -> str:
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", ")")) else text + "."


def _my_words(reason: str, state: selectors.TallyState, later: str | None) -> str:
    """Why a chit is not in the tally; ``later``: why it was not sent again, when it was not."""
    text = reason.removeprefix("the app's rule refused it: ")
    if rules.CAME_FIRST in text:
        # Its node tried to send it again on top and it no longer fitted (services.duties).
        why = f": {later}" if later else ", and this one no longer fits"
        return _sentence(f"another chit reached the tally first{why}")
    return _sentence(selectors.in_my_words(text, state))


def refused(thread: Thread, state: selectors.TallyState) -> list[Refused]:
    """My payments (and limit or close chits) that the tally refused, newest first."""
    database = thread_database(thread.thread)
    found = writes.writes_list(database, state="refused", limit=writes.MAX_PAGE).writes
    again = {c.id for c in selectors.overtaken(thread)}
    later = {n.chit: n.reason for n in selectors.not_sent(thread)}
    sent_again = {c.intent.hex for c in _sent_again(thread)}
    shown = []
    for write in found:
        for change in write.changes or ():
            values = change.values
            kind = values.get("kind")
            if change.table != CHIT or kind not in rules.CHAIN:
                continue
            pk = str(change.row)
            if pk in sent_again:
                continue  # it was sent again and counts now
            amount = format_amount(int(values.get("amount") or 0), state.unit)
            text = {
                rules.PAYMENT: f"Your payment of {amount}",
                rules.LIMIT: f"Your change of the credit you give to {amount}",
                rules.CLOSE: "Your request to close the tally",
            }[kind]
            waiting = pk in again
            reason = "" if waiting else _my_words(write.reason, state, later.get(pk))
            shown.append(Refused(text, str(values.get("memo") or ""), reason, waiting, write.at))
    return shown


def _sent_again(thread: Thread) -> list[Chit]:
    from apps.core.threads.context import thread_context

    with thread_context(thread.thread):
        return list(Chit.objects.exclude(intent=None))


# -- the payment-request link ------------------------------------------------------------------


def pay_link(thread: Thread, invoice_id: str) -> str:
    """``sereus:pay/<base64url of the thread id and the request's id>``: the partner's node has
    the same thread and request, so its Money page opens the request from it. No secret in it:
    only the two parties' nodes have the thread."""
    raw = thread.thread + uuid.UUID(hex=invoice_id).bytes
    return PAY_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def pay_link_parse(text: str) -> tuple[str, str]:
    """(thread id, request id), both hex, of a payment-request link; ValueError in words."""
    text = "".join((text or "").split())
    if not text.startswith(PAY_PREFIX):
        raise ValueError(NOT_A_PAY_LINK)
    payload = text.removeprefix(PAY_PREFIX)
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError(NOT_A_PAY_LINK) from exc
    if len(raw) != THREAD_BYTES + INVOICE_BYTES:
        raise ValueError(
            "This payment request link is incomplete — it was probably cut off when it was "
            "copied. Copy the whole link again, or scan the QR code."
        )
    return raw[:THREAD_BYTES].hex(), raw[THREAD_BYTES:].hex()


# -- the list of tallies ------------------------------------------------------------------------


@dataclass(frozen=True)
class TallyRow:
    thread: Thread
    partner: str
    balance: str  # in words
    state: str  # in words
    waiting: bool  # something for me to do: sign, or a request to pay


def rows() -> list[TallyRow]:
    found = []
    for thread in selectors.tallies():
        if thread.state != Thread.State.ACTIVE:
            found.append(TallyRow(thread, NO_PARTNER, "", thread.get_state_display(), False))
            continue
        state = selectors.tally(thread)
        partner = partner_name(thread, state)
        if state is None:
            found.append(TallyRow(thread, partner, "", "its terms have not arrived yet", False))
            continue
        waiting = not state.i_signed or bool(asked_of_me(thread, state))
        words = state_words(state, partner)
        balance = owed(state.balance, state.unit, partner)
        found.append(TallyRow(thread, partner, balance, words, waiting))
    return found


def rows_seen(found: list[TallyRow]) -> str:
    """A short digest of what the list shows, so a poll can answer "nothing changed"."""
    text = "|".join(
        f"{r.thread.id}:{r.thread.name}:{r.partner}:{r.balance}:{r.state}:{r.waiting}"
        for r in found
    )
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def asked_of_me(thread: Thread, state: selectors.TallyState) -> list[selectors.ChitView]:
    """The partner's payment requests not paid yet."""
    return [
        c
        for c in selectors.chits(thread, state)
        if c.kind == rules.INVOICE and not c.mine and c.paid_by is None
    ]
