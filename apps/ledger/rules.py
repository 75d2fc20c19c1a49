"""The rules of a tally, which every replica applies to every row of the ledger's ordered tables
in the thread's order (``apps.core.thread.ordered``). Each is a pure function of the view (the
tables just before the row), the row change and its author's standing: no clock, no network,
nothing of this node. A refusal is a reason in plain words.

- **Contract** (one row, ``CONTRACT_ID``): the owner proposes it naming only themself; the
  partner names themself beside the owner and changes nothing else; once both are named it
  never changes. Both sign it (``countersign``); until both have, no chit counts.
- **Chain** (payment, limit and close chits): each names the chit before it (the contract for
  the first) and carries the state after it: running balance from the owner's side, both
  limits, closing, its place. The state must be exactly what the one before and the chit give,
  and nothing may already follow the one it names: two chits written at once on the two sides
  are ordered by the thread, the second is refused ("came first") and its node sends it again
  on top (``services``). So the chain is one line, the same on every replica.
- **A payment** moves value from its author only (``payer`` is the author): nobody pulls value
  from the other side. It must keep its payer within the credit the other side gives at that
  place in the chain (a lowered limit counts from its own place, never from a date). While the
  tally is closing, a payment may only bring the balance toward zero.
- **A limit chit** sets the credit its author gives; **a close chit** stops new credit.
- **An invoice** asks the other side for an amount; at most one payment of that amount, by the
  side it asks, answers it.
- Chits are in the contract's unit, written once, never changed or deleted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import nacl.exceptions
import nacl.signing

from apps.core.thread import countersign
from apps.core.thread.ordered import Author, Validator, View
from apps.core.thread.payloads import UPSERT, RowChange
from apps.core.thread.policy import OWNER
from apps.core.thread.rowid import member_tag, row_tag
from apps.ledger.amounts import MAX_AMOUNT, AmountError, format_amount, unit_from_data
from apps.ledger.models import MAX_COMMENT, MAX_MEMO, MAX_REFERENCE
from apps.ledger.policy import CHIT, CONTRACT, PARTNER, SIGNATURE

CONTRACT_ID = "00000000000000000000000000000001"  # the tally's one contract row
PAYMENT, INVOICE, LIMIT, CLOSE = "payment", "invoice", "limit", "close"
RESERVE, LIFT, RELEASE = "reserve", "lift", "release"  # a lift's steps in one tally
LIFT_KINDS = (RESERVE, LIFT, RELEASE)
CHAIN = (PAYMENT, LIMIT, CLOSE, *LIFT_KINDS)
KINDS = (*CHAIN, INVOICE)
# A reservation no decision reached is released by either side once the op releasing it is
# stamped this long after the lift's deadline (the referee decides only before the deadline).
GRACE_MS = 5_000
MEMBER = 32
CAME_FIRST = "another chit came first"  # the start of the refusal its node sends again after
NOT_IN_CHAIN = "the chit it follows is not in the chain"  # so is one written after such a chit
# Member keys are derived per thread and a signer must be its row's author, so a signature
# cannot be carried into another tally: the digest needs no thread id (as in the checklist).
DOMAIN = b"sereus-ledger-contract"
SPEC = countersign.Countersigned(
    thread=DOMAIN,
    table=CONTRACT,
    parties="parties",
    columns=("unit", "owner_limit", "partner_limit", "comment"),
    signatures=SIGNATURE,
)
TERMS = SPEC.columns


@dataclass(frozen=True)
class State:
    """The tally after a chain chit (or, before the first, as the contract sets it)."""

    pk: str  # the chit's id, or CONTRACT_ID
    seq: int
    balance: int  # + the partner owes the owner, - the owner owes the partner
    owner_limit: int  # credit the owner gives the partner
    partner_limit: int  # credit the partner gives the owner
    closing: bool
    owner_reserved: int = 0  # pending lifts' clearing of what the partner owes the owner
    partner_reserved: int = 0  # pending lifts' clearing of what the owner owes the partner


@dataclass(frozen=True)
class Parties:
    owner: bytes
    partner: bytes | None
    unit_code: str


def _int(value: Any) -> int | None:
    return value if type(value) is int else None


def parties_of(contract: Mapping[str, Any] | None) -> Parties | None:
    """The contract's parties and unit, or None if there is no usable contract."""
    if contract is None:
        return None
    keys = countersign.parties_decode(contract.get("parties"))
    if not 1 <= len(keys) <= 2:
        return None
    try:
        unit = unit_from_data(json.loads(contract.get("unit") or ""))
    except (AmountError, ValueError, TypeError):
        return None
    return Parties(keys[0], keys[1] if len(keys) == 2 else None, unit.code)


def start_state(contract: Mapping[str, Any]) -> State:
    return State(
        CONTRACT_ID,
        0,
        0,
        _int(contract.get("owner_limit")) or 0,
        _int(contract.get("partner_limit")) or 0,
        False,
    )


def state_of(chit: Mapping[str, Any]) -> State:
    return State(
        str(chit["pk"]),
        chit["seq"],
        chit["balance"],
        chit["owner_limit"],
        chit["partner_limit"],
        bool(chit["closing"]),
        chit.get("owner_reserved") or 0,
        chit.get("partner_reserved") or 0,
    )


def _limit(value: Any) -> bool:
    return type(value) is int and 0 <= value <= MAX_AMOUNT


# -- the contract ------------------------------------------------------------------------------


def _terms_problem(cols: Mapping[str, Any]) -> str | None:
    try:
        unit_from_data(json.loads(cols.get("unit") or ""))
    except (AmountError, ValueError, TypeError) as exc:
        return f"the contract's unit is not valid: {exc}"
    if not (_limit(cols.get("owner_limit")) and _limit(cols.get("partner_limit"))):
        return "a credit limit is a whole number of milli-units, from 0 up"
    comment = cols.get("comment", "")
    if type(comment) is not str or len(comment) > MAX_COMMENT:
        return f"the contract's comment is text of at most {MAX_COMMENT} characters"
    return None


def contract_rule(view: View, change: RowChange, author: Author) -> str | None:
    if change.pk != CONTRACT_ID:
        return "a tally has one contract"
    if change.action != UPSERT:
        return "the contract is never deleted"
    standing = view.get(CONTRACT, CONTRACT_ID)
    parties = countersign.parties_decode(change.cols.get("parties"))
    if standing is None:
        if author.role != OWNER:
            return "only the tally's owner proposes its contract"
        if parties != (author.member,):
            return "the proposed contract names its owner, and only them"
        return _terms_problem(change.cols)
    named = countersign.parties_decode(standing.get("parties"))
    if len(named) != 1:
        return "the contract is fixed once both parties are named"
    if author.role != PARTNER or parties != (named[0], author.member):
        return "only the partner names themself in the contract, beside its owner"
    for column in TERMS:
        if column in change.cols and change.cols[column] != standing.get(column):
            return "joining the tally does not change its terms"
    return None


def signed(view: View) -> Parties | None:
    """The contract's parties once both are named and both signed, else None."""
    contract = view.get(CONTRACT, CONTRACT_ID)
    parties = parties_of(contract)
    if parties is None or parties.partner is None:
        return None
    return parties if countersign.signatures_enough(view, SPEC, CONTRACT_ID, 2) else None


# -- chits -------------------------------------------------------------------------------------


def next_state(
    before: State, kind: str, amount: int, by_owner: bool, *, creditor_owner: bool = False
) -> tuple[State | None, str | None]:
    """The state a chain chit leads to, or why it cannot be written where it stands. Pure, and
    what both the rule and the writing node compute. ``creditor_owner``: for a lift's decision,
    whether the owner made the reservation it decides."""
    balance, owner_limit, partner_limit = before.balance, before.owner_limit, before.partner_limit
    closing = before.closing
    owner_reserved, partner_reserved = before.owner_reserved, before.partner_reserved
    if kind == PAYMENT:
        if amount <= 0:
            return None, "a payment is more than zero"
        balance += -amount if by_owner else amount
        if closing:
            # Only toward zero, never past it: a closing tally takes no new credit.
            if (by_owner and not 0 <= balance < before.balance) or (
                not by_owner and not before.balance < balance <= 0
            ):
                return None, "the tally is closing: a payment may only bring its balance to zero"
        else:
            # The payer's debt after it must stay within the credit the other side gives here.
            owed = -before.balance if by_owner else before.balance  # the payer's debt before
            limit = partner_limit if by_owner else owner_limit
            if owed + amount > limit:
                return None, (
                    f"it would take the payer to {format_amount(owed + amount)} owed, past the "
                    f"credit of {format_amount(limit)} the other side gives: "
                    f"{format_amount(max(0, limit - owed))} is available"
                )
        # What pending lifts will clear must stay owed until they finish.
        if (owner_reserved and balance < owner_reserved) or (
            partner_reserved and balance > -partner_reserved
        ):
            held = owner_reserved or partner_reserved
            return None, (
                f"a lift in progress holds {format_amount(held)} of this balance until it finishes"
            )
    elif kind == LIMIT:
        if closing:
            return None, "the tally is closing: its limits no longer change"
        if not _limit(amount):
            return None, "a credit limit is a whole number of milli-units, from 0 up"
        if by_owner:
            owner_limit = amount
        else:
            partner_limit = amount
    elif kind == CLOSE:
        if closing:
            return None, "the tally is already closing"
        closing = True
    elif kind == RESERVE:
        # Only what the other side owes the author can be cleared, less what is held already.
        free = (balance - owner_reserved) if by_owner else (-balance - partner_reserved)
        if amount <= 0 or amount > free:
            return None, (
                f"a lift can clear at most what the other side owes: {format_amount(max(0, free))}"
            )
        if by_owner:
            owner_reserved += amount
        else:
            partner_reserved += amount
    elif kind in (LIFT, RELEASE):
        if creditor_owner:
            owner_reserved -= amount
            balance -= amount if kind == LIFT else 0
        else:
            partner_reserved -= amount
            balance += amount if kind == LIFT else 0
    else:
        return None, "this kind of chit is not part of the chain"
    after = State(
        "",
        before.seq + 1,
        balance,
        owner_limit,
        partner_limit,
        closing,
        owner_reserved,
        partner_reserved,
    )
    if abs(balance) > MAX_AMOUNT:
        return None, "the balance would be larger than a tally holds"
    return after, None


def lift_message(lift: str, decision: str) -> bytes:
    """What a lift's referee signs: the lift and its decision ("commit" or "void")."""
    return b"sereus-lift/" + bytes.fromhex(lift) + b"/" + decision.encode()


def _signed_by(referee: Any, lift: str, decision: str, sig: Any) -> bool:
    if type(referee) is not bytes or len(referee) != MEMBER or type(sig) is not bytes:
        return False
    try:
        nacl.signing.VerifyKey(referee).verify(lift_message(lift, decision), sig)
    except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
        return False
    return True


def _lift_problem(view: View, cols: Mapping[str, Any], parties: Parties) -> tuple[str | None, bool]:
    """Why a lift chit cannot stand here (None if it can), and whether the owner made the
    reservation it decides."""
    lift, kind = cols.get("lift"), cols["kind"]
    if type(lift) is not str or len(lift) != 32 or any(c not in "0123456789abcdef" for c in lift):
        return "a lift chit names its lift", False
    steps = view.rows(CHIT, lift=lift)
    if kind == RESERVE:
        if steps:
            return "this lift is reserved in this tally already", False
        if type(cols.get("referee")) is not bytes or len(cols["referee"]) != MEMBER:
            return "a reservation names its lift's referee", False
        if type(cols.get("deadline")) is not int or cols["deadline"] <= 0:
            return "a reservation names its lift's deadline", False
        return None, False
    reserved = [r for r in steps if r.get("kind") == RESERVE]
    if not reserved:
        return "this lift holds nothing in this tally", False
    if len(steps) > 1:
        return "this lift is decided in this tally already", False
    (reserve,) = reserved
    creditor_owner = row_tag(reserve["pk"]) == member_tag(parties.owner)
    if cols.get("amount") != reserve.get("amount"):
        return "a lift's decision is for the amount it reserved", creditor_owner
    if kind == LIFT:
        if not _signed_by(reserve.get("referee"), lift, "commit", cols.get("sig")):
            return "the lift's referee did not sign its commit", creditor_owner
    elif not _signed_by(reserve.get("referee"), lift, "void", cols.get("sig")) and (
        view.stamp_millis <= reserve.get("deadline", 0) + GRACE_MS
    ):
        return "before its deadline only the lift's referee releases it", creditor_owner
    return None, creditor_owner


def _chit_problem(cols: Mapping[str, Any], parties: Parties, author: Author) -> str | None:
    kind = cols.get("kind")
    if kind not in KINDS:
        return "a chit is a payment, an invoice, a limit or a close"
    if cols.get("unit") != parties.unit_code:
        return f"a chit is in the tally's unit, {parties.unit_code}"
    memo, reference = cols.get("memo", ""), cols.get("reference", "")
    if type(memo) is not str or len(memo) > MAX_MEMO:
        return f"a memo is text of at most {MAX_MEMO} characters"
    if type(reference) is not str or len(reference) > MAX_REFERENCE:
        return f"a reference is text of at most {MAX_REFERENCE} characters"
    if type(cols.get("amount")) is not int:
        return "an amount is a whole number of milli-units"
    if kind == PAYMENT and cols.get("payer") != author.member:
        return "a payment is written by its payer: nobody takes value from the other side"
    if kind != PAYMENT and cols.get("payer") is not None:
        return "only a payment names a payer"
    if kind != PAYMENT and cols.get("invoice") is not None:
        return "only a payment answers an invoice"
    if (kind in LIFT_KINDS) != (cols.get("lift") is not None):
        return "only a lift's chits name a lift"
    return None


def _invoice_problem(view: View, cols: Mapping[str, Any], author: Author) -> str | None:
    invoice = cols.get("invoice")
    if invoice is None:
        return None
    asked = view.get(CHIT, invoice)
    if asked is None or asked.get("kind") != INVOICE:
        return "the invoice it answers does not exist"
    if row_tag(invoice) == member_tag(author.member):
        return "a payment answers the other side's invoice, not one's own"
    if asked.get("amount") != cols.get("amount"):
        return f"the invoice asks for {asked.get('amount')}, not {cols.get('amount')}"
    if view.rows(CHIT, invoice=invoice):
        return "this invoice is paid already"
    return None


def chit_rule(view: View, change: RowChange, author: Author) -> str | None:
    if change.action != UPSERT or view.get(CHIT, change.pk) is not None:
        return "a chit is written once and never changed or deleted"
    if row_tag(change.pk) != member_tag(author.member):
        return "a chit's id names its author"
    contract = view.get(CONTRACT, CONTRACT_ID)
    parties = parties_of(contract)
    if parties is None or author.member not in (parties.owner, parties.partner):
        return "only the tally's two parties write in it"
    if signed(view) is None:
        return "the tally is not signed by both sides yet: no chit counts before"
    cols = change.cols
    problem = _chit_problem(cols, parties, author)
    if problem:
        return problem
    kind = cols["kind"]
    if kind == INVOICE:
        if cols.get("prev") is not None:
            return "an invoice stands beside the chain, not in it"
        if not 0 < cols["amount"] <= MAX_AMOUNT:
            return "an invoice asks for more than zero"
        return None
    problem = _invoice_problem(view, cols, author)
    if problem:
        return problem
    creditor_owner = False
    if kind in LIFT_KINDS:
        problem, creditor_owner = _lift_problem(view, cols, parties)
        if problem:
            return problem
    prev = cols.get("prev")
    if prev == CONTRACT_ID:
        assert contract is not None
        before = start_state(contract)
    else:
        found = view.get(CHIT, prev) if type(prev) is str else None
        if found is None or found.get("kind") not in CHAIN:
            return NOT_IN_CHAIN
        before = state_of(found)
    if view.rows(CHIT, prev=prev):
        return f"{CAME_FIRST}: this one must be written again after it"
    by_owner = author.member == parties.owner
    after, problem = next_state(
        before, kind, cols["amount"], by_owner, creditor_owner=creditor_owner
    )
    if problem:
        return problem
    assert after is not None
    if tuple(cols.get(c) or 0 for c in CARRIED) != tuple(getattr(after, c) for c in CARRIED) or (
        bool(cols.get("closing")) != after.closing
    ):
        return "the chit's running balance or limits are not what the chain gives"
    return None


# The state every chain chit carries (besides ``closing``), checked against the chain.
CARRIED = ("seq", "balance", "owner_limit", "partner_limit", "owner_reserved", "partner_reserved")


def validators() -> dict[str, Validator]:
    """The ledger's ordered tables and their rules (``validators_register``)."""
    return {
        CONTRACT: contract_rule,
        SIGNATURE: countersign.signature_rule(SPEC),
        CHIT: chit_rule,
    }
