"""Reads of tallies, always from this node's party's side: "my" balance is positive when the
partner owes me. The chain's state is the last accepted chain chit's (every replica checked it
against the one before), or the contract's before the first."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import connections

from apps.core.models import Thread
from apps.core.thread.rowid import member_tag, row_id_for, row_tag
from apps.core.threads import writes
from apps.core.threads.app_kit import app_thread_find
from apps.core.threads.context import thread_context
from apps.core.threads.registry import thread_database
from apps.core.threads.services import ThreadServiceError
from apps.core.threads.store import stamp_parse
from apps.ledger import amounts, rules
from apps.ledger.amounts import Unit
from apps.ledger.models import Chit, Contract, NotSent, Signature
from apps.ledger.policy import APP, CHIT

STATES = ("proposed", "open", "closing", "closed")


@dataclass(frozen=True)
class TallyState:
    thread: Thread
    state: str  # proposed, open, closing, closed
    unit: Unit
    balance: int  # mine: + the partner owes me, - I owe the partner
    my_limit: int  # the credit I give my partner
    partner_limit: int  # the credit my partner gives me
    comment: str
    i_am_owner: bool
    i_signed: bool
    partner_signed: bool
    partner: str | None  # the partner's member key, hex, once named
    tip: rules.State  # the chain's last state, from the owner's side

    @property
    def available(self) -> int:
        """What I can pay now (closing: only what I owe)."""
        if self.state == "closing":
            return max(0, -self.balance)
        return max(0, self.partner_limit + self.balance) if self.state == "open" else 0

    @property
    def receivable(self) -> int:
        """What my partner can pay me now (closing: only what they owe)."""
        if self.state == "closing":
            return max(0, self.balance)
        return max(0, self.my_limit - self.balance) if self.state == "open" else 0


@dataclass(frozen=True)
class ChitView:
    id: str
    kind: str
    amount: int
    memo: str
    reference: str
    invoice: str | None
    seq: int
    balance: int  # mine, after it (chain chits)
    mine: bool  # this node's party wrote it
    at: datetime | None  # its author's clock (from the signed op)
    paid_by: str | None = None  # an invoice: the payment that answered it


def thread_find(thread_id: str) -> Thread | None:
    thread = app_thread_find(thread_id)
    return thread if thread is not None and thread.app == APP else None


def tallies() -> list[Thread]:
    return list(Thread.objects.filter(app=APP).exclude(state=Thread.State.LEFT).order_by("name"))


def tally(thread: Thread) -> TallyState | None:
    """The tally as this node holds it, or None before its contract arrived."""
    me = bytes.fromhex(thread.member_id)
    with thread_context(thread.thread):
        contract = Contract.objects.filter(pk=rules.CONTRACT_ID).first()
        if contract is None:
            return None
        row = {column: getattr(contract, column) for column in rules.TERMS}
        row["parties"] = bytes(contract.parties)
        digest = rules.countersign.digest_of(rules.SPEC, rules.CONTRACT_ID, row)
        signers = {
            bytes(s.signer)
            for s in Signature.objects.filter(target=rules.CONTRACT_ID)
            if bytes(s.digest) == digest
        }
        last = Chit.objects.exclude(prev=None).order_by("-seq").first()
    parties = rules.parties_of({**row, "pk": rules.CONTRACT_ID})
    if parties is None:
        return None
    unit = amounts.unit_from_data(json.loads(contract.unit))
    start = rules.start_state(row)
    tip = start if last is None else _state(last)
    owner = parties.owner == me
    partner = parties.partner if owner else parties.owner
    both = parties.partner is not None and {parties.owner, parties.partner} <= signers
    if not both:
        state = "proposed"
    elif tip.closing:
        state = "closed" if tip.balance == 0 else "closing"
    else:
        state = "open"
    sign = 1 if owner else -1
    return TallyState(
        thread=thread,
        state=state,
        unit=unit,
        balance=sign * tip.balance,
        my_limit=tip.owner_limit if owner else tip.partner_limit,
        partner_limit=tip.partner_limit if owner else tip.owner_limit,
        comment=contract.comment,
        i_am_owner=owner,
        i_signed=me in signers,
        partner_signed=partner is not None and partner in signers,
        partner=partner.hex() if partner else None,
        tip=tip,
    )


def _state(chit: Chit) -> rules.State:
    return rules.State(
        chit.id.hex,
        chit.seq,
        chit.balance,
        chit.owner_limit,
        chit.partner_limit,
        chit.closing,
        chit.owner_reserved,
        chit.partner_reserved,
    )


def _times(thread: Thread, ids: list[str]) -> dict[str, datetime]:
    if not ids:
        return {}
    marks = ",".join("%s" for _ in ids)
    with connections[thread_database(thread.thread).alias].cursor() as cursor:
        cursor.execute(
            f"SELECT pk, min(hlc) FROM sereus_rowevents WHERE tbl = %s AND pk IN ({marks})"  # noqa: S608 - placeholders only
            " GROUP BY pk",
            [CHIT, *ids],
        )
        found = {}
        for pk, hlc in cursor.fetchall():
            stamp, _ = stamp_parse(bytes(hlc))
            found[str(pk)] = datetime.fromtimestamp(stamp.millis / 1000, tz=UTC)
    return found


def chits(thread: Thread, state: TallyState) -> list[ChitView]:
    """The chain, newest first, then the invoices (newest first too)."""
    me = bytes.fromhex(thread.member_id)
    sign = 1 if state.i_am_owner else -1
    with thread_context(thread.thread):
        rows = list(Chit.objects.all())
    paid = {c.invoice.hex: c.id.hex for c in rows if c.invoice is not None}
    times = _times(thread, [c.id.hex for c in rows])
    views = [
        ChitView(
            id=c.id.hex,
            kind=c.kind,
            amount=c.amount,
            memo=c.memo,
            reference=c.reference,
            invoice=c.invoice.hex if c.invoice else None,
            seq=c.seq,
            balance=sign * c.balance,
            mine=row_tag(c.id.hex) == member_tag(me),
            at=times.get(c.id.hex),
            paid_by=paid.get(c.id.hex),
        )
        for c in rows
    ]
    chain = sorted((v for v in views if v.kind in rules.CHAIN), key=lambda v: -v.seq)
    asked = sorted(
        (v for v in views if v.kind == rules.INVOICE),
        key=lambda v: (v.at or datetime.min.replace(tzinfo=UTC), v.id),
        reverse=True,
    )
    return chain + asked


def invoice_to_pay(thread: Thread, invoice_id: str, amount: int) -> str:
    """The invoice a payment answers, checked as the rules will (a plain error otherwise)."""
    try:
        pk = uuid.UUID(hex=str(invoice_id)).hex
    except ValueError as exc:
        raise ThreadServiceError("not_found", "there is no such payment request") from exc
    me = bytes.fromhex(thread.member_id)
    with thread_context(thread.thread):
        invoice = Chit.objects.filter(pk=pk, kind=rules.INVOICE).first()
        answered = Chit.objects.filter(invoice=pk).exists()
    if invoice is None:
        raise ThreadServiceError("not_found", "there is no such payment request")
    if row_tag(pk) == member_tag(me):
        raise ThreadServiceError("invalid", "this is your own payment request")
    if answered:
        raise ThreadServiceError("conflict", "this payment request is paid already")
    if invoice.amount != amount:
        raise ThreadServiceError(
            "invalid", f"the request asks for {amounts.format_amount(invoice.amount)}"
        )
    return pk


def overtaken(thread: Thread) -> list[ChitView]:
    """This party's chain chits that a chit written at once on the other side came before (and
    those it wrote on top of them), oldest first, that were neither sent again yet (their
    sending again has its own id) nor given up (``NotSent``)."""
    database = thread_database(thread.thread)
    refused = writes.writes_list(database, state="refused", limit=writes.MAX_PAGE).writes
    me = bytes.fromhex(thread.member_id)
    given_up = set(NotSent.objects.filter(thread=thread.id).values_list("chit", flat=True))
    found = []
    with thread_context(thread.thread):
        for write in reversed(refused):
            if not write.changes or not (
                rules.CAME_FIRST in write.reason or rules.NOT_IN_CHAIN in write.reason
            ):
                continue
            for change in write.changes:
                values = change.values
                if change.table != CHIT or values.get("kind") not in rules.CHAIN:
                    continue
                again = row_id_for(me, b"again/" + str(change.row).encode()).hex
                if str(change.row) in given_up or Chit.objects.filter(pk=again).exists():
                    continue
                if _refused_has(refused, again):
                    continue
                invoice = values.get("invoice")
                found.append(
                    ChitView(
                        id=str(change.row),
                        kind=values["kind"],
                        amount=int(values.get("amount") or 0),
                        memo=str(values.get("memo") or ""),
                        reference=str(values.get("reference") or ""),
                        invoice=uuid.UUID(str(invoice)).hex if invoice else None,
                        seq=0,
                        balance=0,
                        mine=True,
                        at=write.at,
                    )
                )
    return found


def not_sent(thread: Thread) -> list[NotSent]:
    """This party's chits that did not go through, newest first, with the reason."""
    return list(NotSent.objects.filter(thread=thread.id).order_by("-written_at", "-pk"))


def _refused_has(refused: list[writes.Write], pk: str) -> bool:
    return any(str(c.row) == pk for w in refused for c in (w.changes or ()))


def in_my_words(problem: str, state: TallyState) -> str:
    """A rule's refusal as this party reads it: "you", amounts in the tally's unit."""
    text = problem.replace("the payer", "you").replace("the other side gives", "your partner gives")
    return f"{text} ({state.unit.name})" if "available" in text else text
