"""Writing in tallies: propose one, join and sign it, pay, ask for payment, set one's limit,
close it. Every chain chit is computed here from the chain as this node holds it
(``rules.next_state``, what every replica checks again), so a refusal here is the one every
replica would give, in words, and nothing is written.

Amounts come in as text or whole units (``amounts.parse_amount``) and are stored in milli-units.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import timedelta

from apps.core.models import Thread
from apps.core.thread.rowid import row_id_for
from apps.core.threads import services as threads
from apps.core.threads import writes
from apps.core.threads.app_kit import app_write, member_key
from apps.core.threads.context import thread_context
from apps.core.threads.registry import thread_database
from apps.core.threads.services import ThreadServiceError
from apps.core.threads.thread_apps import app_enable
from apps.ledger import amounts, rules, selectors
from apps.ledger.amounts import AmountError
from apps.ledger.models import (
    MAX_COMMENT,
    MAX_MEMO,
    MAX_REFERENCE,
    Chit,
    Contract,
    NotSent,
    Signature,
)
from apps.ledger.policy import APP, PARTNER, RULES_APP

INVITE_DAYS = 7


@dataclass(frozen=True)
class Proposed:
    thread: Thread
    invite: str  # the link the partner redeems (single use)


def _plain(reason: str) -> str:
    return reason.removeprefix("the app's rule refused it: ")


def _write(thread: Thread, action):
    return app_write(
        thread, action, app=RULES_APP, not_enabled="this thread is not a tally", plain=_plain
    )


def _amount(value: str | int, what: str, *, zero: bool = False) -> int:
    try:
        return amounts.parse_amount(value, allow_zero=zero)
    except AmountError as exc:
        said = str(exc)
        if what != "the amount":  # the parser speaks of "the amount": say which one
            said = f"{what[0].upper()}{what[1:]}: {said[0].lower()}{said[1:]}"
        raise ThreadServiceError("invalid", said) from exc


def _text(value: str, most: int, what: str) -> str:
    value = (value or "").strip()
    if len(value) > most:
        raise ThreadServiceError("invalid", f"{what} holds at most {most} characters")
    return value


def tally_create(
    *, name: str, unit: str, my_limit: str | int, partner_limit: str | int, comment: str = ""
) -> Proposed:
    """Propose a tally: its thread, its contract (this node's party is its owner) and the one
    invite its partner joins with."""
    try:
        parsed = amounts.unit_parse(unit)
    except AmountError as exc:
        raise ThreadServiceError("invalid", str(exc)) from exc
    mine = _amount(my_limit, "the credit you give", zero=True)
    theirs = _amount(partner_limit, "the credit you ask for", zero=True)
    comment = _text(comment, MAX_COMMENT, "the comment")
    thread = threads.thread_create(name=name, app=APP)
    app_enable(thread=thread, app=RULES_APP)
    owner = bytes.fromhex(thread.member_id)

    def propose() -> None:
        Contract.objects.create(
            id=uuid.UUID(hex=rules.CONTRACT_ID),
            unit=json.dumps(amounts.unit_data(parsed)),
            owner_limit=mine,
            partner_limit=theirs,
            comment=comment,
            parties=owner,
        )

    _write(thread, propose)
    made = threads.invite_create(
        thread=thread, role=PARTNER, expires_in=timedelta(days=INVITE_DAYS), uses=1
    )
    return Proposed(thread, made.record.link)


def _signature(thread: Thread) -> Signature:
    contract = Contract.objects.get(pk=rules.CONTRACT_ID)
    row = {column: getattr(contract, column) for column in rules.TERMS}
    row["parties"] = bytes(contract.parties)
    change = rules.countersign.signature_change(
        rules.SPEC, member_key(thread), rules.CONTRACT_ID, row
    )
    return Signature(id=uuid.UUID(hex=change.pk), **change.cols)


def tally_sign(*, thread: Thread) -> None:
    """Sign the contract: the partner names themself in it and signs; the owner signs (its
    node does so on its own once the partner has, see ``duties``)."""
    state = selectors.tally(thread)
    if state is None:
        raise ThreadServiceError("not_found", "this tally has no contract yet")
    if state.i_signed:
        raise ThreadServiceError("conflict", "you have signed this tally already")

    def sign() -> None:
        contract = Contract.objects.get(pk=rules.CONTRACT_ID)
        if thread.role == PARTNER and len(bytes(contract.parties)) == rules.MEMBER:
            contract.parties = bytes(contract.parties) + bytes.fromhex(thread.member_id)
            contract.save(update_fields=["parties"])
        elif len(bytes(contract.parties)) == rules.MEMBER:
            raise ThreadServiceError("conflict", "your partner has not joined and signed yet")
        signature = _signature(thread)
        if not Signature.objects.filter(pk=signature.pk).exists():  # signed meanwhile: done
            signature.save(force_insert=True)

    _write(thread, sign)


def _chain_write(
    thread: Thread,
    kind: str,
    amount: int,
    *,
    memo: str = "",
    reference: str = "",
    invoice: str | None = None,
    intent: str | None = None,
    lift: dict | None = None,
) -> Chit:
    """Write a chain chit on top of the chain as this node holds it. ``lift``: a lift chit's
    columns (lift, referee, deadline, sig) and, for a decision, ``creditor_owner``."""
    me = bytes.fromhex(thread.member_id)
    lift = dict(lift or {})
    creditor_owner = lift.pop("creditor_owner", False)

    def write() -> Chit:
        state = selectors.tally(thread)
        if state is None or state.state == "proposed":
            raise ThreadServiceError("conflict", "the tally is not signed by both sides yet")
        tip = state.tip
        after, problem = rules.next_state(
            tip, kind, amount, state.i_am_owner, creditor_owner=creditor_owner
        )
        if problem:
            raise ThreadServiceError("refused", selectors.in_my_words(problem, state))
        assert after is not None
        return Chit.objects.create(
            # A new chit's id is its author's (the model's default); one sent again has an id
            # that follows from the one it replaces, so it is never sent twice.
            **({} if intent is None else {"id": row_id_for(me, b"again/" + intent.encode())}),
            kind=kind,
            payer=me if kind == rules.PAYMENT else None,
            unit=state.unit.code,
            amount=amount,
            memo=memo,
            reference=reference,
            invoice=uuid.UUID(hex=invoice) if invoice else None,
            prev=uuid.UUID(hex=tip.pk),
            seq=after.seq,
            balance=after.balance,
            owner_limit=after.owner_limit,
            partner_limit=after.partner_limit,
            closing=after.closing,
            owner_reserved=after.owner_reserved,
            partner_reserved=after.partner_reserved,
            intent=uuid.UUID(hex=intent) if intent else None,
            **lift,
        )

    return _write(thread, write)


def chit_create(
    *,
    thread: Thread,
    kind: str,
    amount: str | int,
    memo: str = "",
    reference: str = "",
    invoice: str | None = None,
) -> Chit:
    """Pay, ask for payment (an invoice) or set the credit this party gives (a limit)."""
    memo = _text(memo, MAX_MEMO, "a memo")
    reference = _text(reference, MAX_REFERENCE, "a reference")
    if kind == rules.LIMIT:
        limit = _amount(amount, "the credit you give", zero=True)
        return _chain_write(thread, kind, limit, memo=memo, reference=reference)
    value = _amount(amount, "the amount")
    if kind == rules.PAYMENT:
        if invoice:
            invoice = selectors.invoice_to_pay(thread, invoice, value)
        return _chain_write(
            thread, kind, value, memo=memo, reference=reference, invoice=invoice or None
        )
    if kind == rules.INVOICE:
        state = selectors.tally(thread)
        if state is None or state.state not in ("open",):
            raise ThreadServiceError("conflict", "only an open tally takes payment requests")

        def ask() -> Chit:
            return Chit.objects.create(
                kind=kind, unit=state.unit.code, amount=value, memo=memo, reference=reference
            )

        with thread_context(thread.thread):
            return _write(thread, ask)
    raise ThreadServiceError("invalid", "a chit is a payment, an invoice or a limit")


def tally_close(*, thread: Thread) -> Chit:
    """Ask to close the tally: no new credit; once the balance is zero it is closed."""
    return _chain_write(thread, rules.CLOSE, 0)


_refusals_seen: dict[str, int] = {}  # thread -> refused writes of mine when last looked at
BOOKS_EVERY_S = 5.0  # a busy tally's payments reach the books in batches, not op by op
_books_synced: dict[str, tuple[int, float]] = {}  # thread -> (chain place, when) last synced


def _books_soon(thread: Thread, state: selectors.TallyState) -> None:
    """Every payment and lift of my tallies becomes an entry of my books (``books_services``):
    after a change of the chain, at most every ``BOOKS_EVERY_S`` (a sync reads the whole
    tally). What a burst leaves for later is synced by the next change, or when the books are
    read (their page and API sync first)."""
    import time

    from apps.ledger import books_services

    place, synced = _books_synced.get(thread.id, (-1, 0.0))
    if place == state.tip.seq or time.monotonic() - synced < BOOKS_EVERY_S:
        return
    _books_synced[thread.id] = (state.tip.seq, time.monotonic())
    try:
        books_services.sync_chits(thread)
    except ThreadServiceError:
        _books_synced.pop(thread.id, None)  # the books cannot be written now: next time


def duties(*, thread: Thread) -> None:
    """The owner signs once the partner has; a chit another overtook is sent again on top."""
    state = selectors.tally(thread)
    if state is None:
        return
    if state.i_am_owner and state.partner_signed and not state.i_signed:
        tally_sign(thread=thread)
    from apps.ledger import lifts

    lifts.handle(thread)
    _books_soon(thread, state)
    # Only when the refusals changed: reading them back opens every refused op.
    refusals = writes.writes_count(thread_database(thread.thread), state="refused")
    if _refusals_seen.get(thread.id) == refusals:
        return
    _refusals_seen[thread.id] = refusals
    for chit in selectors.overtaken(thread):
        if chit.kind in rules.LIFT_KINDS:
            continue  # a lift's steps are the lift's to take again (``lifts.handle``)
        try:
            _chain_write(
                thread,
                chit.kind,
                chit.amount,
                memo=chit.memo,
                reference=chit.reference,
                invoice=chit.invoice,
                intent=chit.id,
            )
        except ThreadServiceError as exc:
            # It no longer fits: it stays refused, and its author is told why.
            NotSent.objects.get_or_create(
                thread=thread.id,
                chit=chit.id,
                defaults={
                    "kind": chit.kind,
                    "amount": chit.amount,
                    "memo": chit.memo,
                    "reason": str(exc)[:300],
                    "written_at": chit.at,
                },
            )
