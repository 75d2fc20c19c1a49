"""The deal thread's rules, which every replica applies to the rows of its ordered tables in the
thread's order (``apps.core.thread.ordered``). Pure functions of the view, the row change and
its author's standing: no clock, no database, nothing of this node. Refusals are sentences.

- **The deal** (one row, its id the seller's own, ``deal_row_id``): its terms, written by the
  seller (the thread's owner) once, with the opening "accepted" step in the same op; never
  changed. (An id that names nobody, like a constant, would need the right to update others'
  rows, which the deal's policy rightly gives nobody.)
- **A step** (``deal.py``): its author's role in the thread says which side wrote it (owner:
  the seller, writer: the buyer, ``escrow``, ``shipper``); the step also says so in its fields
  (``by``), and its place (``n``: how many steps came before it), so that folding the
  accepted steps needs nothing but the rows: the deal as it stands is the fold of the
  accepted steps before it, in their places (not by stamps: two nodes' steps may carry the
  same millisecond). ``deal.step_problem`` judges the step against it with the step's own
  stamp (``View.stamp_of`` gives the earlier steps' stamps: the seller completes after a
  silent buyer by stamps, never by a clock). Of two steps written at once for the same
  place, the one the thread orders second is refused everywhere (``CAME_FIRST``). The first
  member to act in a role keeps it: a second "buyer" invited later cannot write the buyer's
  steps.
- **A release** of the escrowed payment: a signature over the deal as it stands (its terms and
  its state), by the buyer, the seller or the escrow agent, once each; its id binds the signer,
  its role and what it signs, so the signers' roles can be counted from the rows alone. Two of
  the three roles release it (``deal.release_ok``).
- **A deal rating**: once per side (its id follows from its author), by the buyer or the seller
  of this deal, once the deal is completed or resolved (``ratings.rating_problem``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from apps.core.thread import countersign
from apps.core.thread.ordered import Author, Validator, View
from apps.core.thread.payloads import UPSERT, RowChange
from apps.core.thread.policy import OWNER, WRITER
from apps.core.thread.rowid import member_tag, row_id_for, row_tag
from apps.market import deal, ratings
from apps.market.deal import (
    ACCEPTED,
    BUYER,
    COMPLETED,
    DISPUTED,
    ESCROW,
    PAID,
    RECEIVED,
    RESOLVED,
    ROLE_NAMES,
    SELLER,
    SHIPPED,
    SHIPPER,
    DealProblem,
    DealState,
)
from apps.market.policy import DEAL, DEAL_RATING, RELEASE, STEP

# What a release signs and a rating cites as "this deal" (a validator is not told its thread).
DEAL_ID = "00000000000000000000000000000001"
_TERMS_SEED = b"market/deal-terms"
# The thread's roles (policy.py) as the deal's sides (deal.py).
ROLE_OF = {OWNER: SELLER, WRITER: BUYER, "escrow": ESCROW, "shipper": SHIPPER}
TERMS = ("shop", "listing", "accept", "title", "price", "currency", "quantity", "silent_days")
AGREED = ("price", "currency", "quantity", "silent_days")  # the opening step repeats these
RELEASERS = (BUYER, SELLER, ESCROW)
# Something is held in escrow once the buyer paid; a cancelled deal holds nothing.
RELEASABLE = frozenset({PAID, SHIPPED, RECEIVED, COMPLETED, DISPUTED, RESOLVED})
RATED_AFTER = frozenset({COMPLETED, RESOLVED})
MAX_TITLE = 140
# Member keys are derived per thread and a signer must be its row's author, so a release
# cannot be carried into another deal: the digest needs no thread id (as in the ledger).
DOMAIN = b"sereus-market-deal"
SIGNED = (*TERMS, "state", "outcome", "split_amount")
_RATING_SEED = b"market/deal-rating"
# Two steps written at once on two nodes: the one the thread orders second is refused.
CAME_FIRST = "another step came first: write this one again after it"


def deal_role(thread_role: str) -> str | None:
    """The side a thread role acts as in a deal, or None (a reader, an admin)."""
    return ROLE_OF.get(thread_role)


def step_fields(value: Any) -> dict[str, Any] | None:
    """A step's fields column as a mapping, or None if it is not a JSON object."""
    if type(value) is not str:
        return None
    try:
        fields = json.loads(value)
    except ValueError:
        return None
    return fields if isinstance(fields, dict) else None


@dataclass(frozen=True)
class Folded:
    """The deal after its accepted steps, and the member (row tag) acting in each role."""

    state: DealState
    members: Mapping[str, bytes | None] = field(default_factory=dict)


def _place(fields: Mapping[str, Any]) -> int | None:
    place = fields.get("n")
    return place if type(place) is int and place >= 0 else None


def in_order(
    steps: Iterable[tuple[str, Any, Any, int]],
) -> list[tuple[str, Any, dict[str, Any], int]]:
    """Accepted steps, (id, step, fields JSON, stamp in ms) in any order, as (id, step, fields,
    stamp) in their places in the deal (``n``, then stamp and id). Each says its place, which
    the rule checked, so they come in the order they were judged in, whatever the authors'
    clocks (two nodes' steps may carry the same millisecond). Malformed ones, which the rule
    never accepts, are left out."""
    chain = []
    for pk, step, text, stamp in steps:
        fields = step_fields(text)
        place = _place(fields) if fields else None
        if fields is not None and place is not None and fields.get("by") in ROLE_NAMES:
            chain.append((place, stamp, pk, step, fields))
    chain.sort(key=lambda c: c[:3])
    return [(pk, step, fields, stamp) for _n, stamp, pk, step, fields in chain]


def fold(steps: Iterable[tuple[str, Any, Any, int]]) -> Folded:
    """The deal after ``steps`` (as ``in_order`` takes them). The rule and the pages fold
    alike."""
    state, members = DealState(), {}
    for pk, step, fields, stamp in in_order(steps):
        role = fields["by"]
        try:
            state = deal.step_apply(state, step, role, fields, stamp)
        except DealProblem:
            continue
        members.setdefault(role, row_tag(pk))
    return Folded(state, members)


def deal_at(view: View) -> Folded:
    """The deal as it stands just before the row being judged."""
    rows = view.rows(STEP)
    return fold(
        (r["pk"], r.get("step"), r.get("fields"), view.stamp_of(STEP, r["pk"]) or 0) for r in rows
    )


def _side_problem(folded: Folded, role: str, author: Author) -> str | None:
    acting = folded.members.get(role)
    if acting is not None and acting != member_tag(author.member):
        return f"another member already acts as {ROLE_NAMES[role]} in this deal"
    return None


# -- the terms ---------------------------------------------------------------------------------


def _hex(value: Any, size: int) -> bool:
    return type(value) is str and len(value) == size and all(c in "0123456789abcdef" for c in value)


def terms_problem(cols: Mapping[str, Any]) -> str | None:
    """Why a deal row's columns are not a deal's terms, or None."""
    if not _hex(cols.get("shop"), 64):
        return "a deal names the shop it was agreed in"
    if not (_hex(cols.get("listing"), 32) and _hex(cols.get("accept"), 32)):
        return "a deal names the listing and the accepted offer"
    title = cols.get("title")
    if type(title) is not str or not title.strip() or len(title) > MAX_TITLE:
        return f"a deal has a title of 1 to {MAX_TITLE} characters"
    return deal.step_problem(DealState(), ACCEPTED, SELLER, cols, 0)


def deal_row_id(seller: bytes) -> str:
    """The id of the deal's one row of terms: the seller's own."""
    return row_id_for(seller, _TERMS_SEED).hex


def terms_of(view: View) -> Mapping[str, Any] | None:
    """The deal's terms as they stand in ``view`` (None before the seller wrote them)."""
    rows = view.rows(DEAL)
    return rows[0] if len(rows) == 1 else None


def deal_rule(view: View, change: RowChange, author: Author) -> str | None:
    if change.action != UPSERT or view.rows(DEAL):
        return "a deal's terms are written once and never changed"
    if change.pk != deal_row_id(author.member):
        return "a deal's terms are written by its seller, in the row named after them"
    if author.role != OWNER:
        return "only the seller opens the deal"
    return terms_problem(change.cols)


# -- steps -------------------------------------------------------------------------------------


def step_rule(view: View, change: RowChange, author: Author) -> str | None:
    if change.action != UPSERT or view.get(STEP, change.pk) is not None:
        return "a step is written once and never changed or deleted"
    if row_tag(change.pk) != member_tag(author.member):
        return "a step's id names its author"
    role = deal_role(author.role)
    if role is None:
        return "only the buyer, the seller, the escrow agent or the shipper write a deal's steps"
    fields = step_fields(change.cols.get("fields"))
    if fields is None:
        return "a step's fields are a JSON object"
    if fields.get("by") != role:
        return f"a step says which side wrote it: this one is by {ROLE_NAMES[role]}"
    terms = terms_of(view)
    if terms is None:
        return "the deal's terms come before its steps"
    folded = deal_at(view)
    problem = _side_problem(folded, role, author)
    if problem:
        return problem
    step = change.cols.get("step")
    problem = deal.step_problem(folded.state, step, role, fields, view.stamp_millis)
    if problem:
        return problem
    if _place(fields) is None:
        return "a step says how many steps came before it (n)"
    if fields["n"] != len(folded.state.steps):
        return CAME_FIRST
    if step == ACCEPTED and any(fields.get(k) != terms.get(k) for k in AGREED):
        return "the opening step states the deal's terms as they were written"
    return None


# -- releases ------------------------------------------------------------------------------------


def release_digest(terms: Mapping[str, Any], state: DealState) -> bytes:
    """What a release signs: the deal's terms and where it stands (its state and, once
    resolved, the escrow agent's outcome). A later step makes earlier releases stop counting."""
    values = {column: terms.get(column) for column in TERMS} | {
        "state": state.state,
        "outcome": state.outcome,
        "split_amount": state.split_amount,
    }
    return countersign.row_digest(DOMAIN, DEAL, DEAL_ID, values, SIGNED)


def release_id(signer: bytes, role: str, digest: bytes) -> str:
    """A release's id: the signer's own, following from its role and what it signs (one per
    signer, role and digest; the role can be read back from the id)."""
    return row_id_for(signer, b"release/" + role.encode() + b"/" + digest).hex


def release_rule(view: View, change: RowChange, author: Author) -> str | None:
    if change.action != UPSERT or view.get(RELEASE, change.pk) is not None:
        return "a release is signed once and never withdrawn"
    role = deal_role(author.role)
    if role not in RELEASERS:
        return "only the buyer, the seller or the escrow agent sign a release"
    target, digest, signer, sig = (change.cols.get(c) for c in countersign.SIGNATURE_COLUMNS)
    if type(digest) is not bytes or type(signer) is not bytes or type(sig) is not bytes:
        return "a release names the deal, its digest, the signer and the signature"
    if signer != author.member:
        return "a member signs a release only for themself"
    terms = terms_of(view)
    if target != DEAL_ID or terms is None:
        return "a release is of this deal's payment"
    folded = deal_at(view)
    problem = _side_problem(folded, role, author)
    if problem:
        return problem
    if folded.state.state not in RELEASABLE:
        return "nothing is held to release before the buyer pays, or after a cancellation"
    if digest != release_digest(terms, folded.state):
        return "the release is over the deal as it stood earlier: sign it as it stands"
    if change.pk != release_id(signer, role, digest):
        return "a release's id names its signer, their side and what they sign"
    if not countersign.signature_check(signer, DOMAIN, digest, sig):
        return "the release's signature does not verify"
    return None


def release_roles(
    terms: Mapping[str, Any], state: DealState, releases: Iterable[Mapping[str, Any]]
) -> set[str]:
    """The sides whose accepted releases (rows with "pk", "digest", "signer") are over the deal
    as it stands. The rule and the pages count alike."""
    digest = release_digest(terms, state)
    roles = set()
    for row in releases:
        signer = row.get("signer")
        if row.get("digest") != digest or type(signer) is not bytes:
            continue
        roles.update(r for r in RELEASERS if release_id(signer, r, digest) == row.get("pk"))
    return roles


def released(view: View) -> bool:
    """Whether two of the buyer, the seller and the escrow agent released the payment as the
    deal stands in ``view``."""
    terms = terms_of(view)
    if terms is None:
        return False
    state = deal_at(view).state
    return deal.release_ok(release_roles(terms, state, view.rows(RELEASE, target=DEAL_ID)))


# -- ratings -------------------------------------------------------------------------------------


def rating_id(member: bytes) -> str:
    """A side's rating of the deal: one id per member, so it is written once."""
    return row_id_for(member, _RATING_SEED).hex


def rating_rule(view: View, change: RowChange, author: Author) -> str | None:
    if change.action != UPSERT or view.get(DEAL_RATING, change.pk) is not None:
        return "each side rates a deal once, and a rating is never changed"
    role = deal_role(author.role)
    if role not in (BUYER, SELLER):
        return "only the buyer and the seller rate a deal"
    if change.pk != rating_id(author.member):
        return "a deal rating's id names its author"
    folded = deal_at(view)
    if folded.state.state not in RATED_AFTER:
        return "a deal is rated once it is completed or resolved, not before"
    if folded.members.get(role) != member_tag(author.member):
        return "only the buyer and the seller of this deal rate it"
    return ratings.rating_problem(dict(change.cols) | {"deal": DEAL_ID, "rater": role})


def validators() -> dict[str, Validator]:
    """The deal's ordered tables and their rules (``validators_register``)."""
    return {DEAL: deal_rule, STEP: step_rule, RELEASE: release_rule, DEAL_RATING: rating_rule}
