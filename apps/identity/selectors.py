"""Reads of a thread's claims for pages and the API: each claim with its state (derived by
``standing.py`` from the accepted rows, the same on every node), its attestations and
challenges, a page at a time (newest first; states are worked out for the page's claims only).
People are named ("you", their name in the thread, else "member N"); member keys stay in the
views only for links and the API, never for words.

The other reads live in modules of their own and are re-exported here, so that pages, API and
tests ask one module: challenges (``selectors_challenges``), witnesses' standing
(``selectors_witnesses``), kinds, authorities and settings (``selectors_rules``), and this
node's refused writes (``selectors_refused``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.db.models import CharField, QuerySet
from django.db.models.functions import Substr

from apps.core.models import Thread
from apps.core.thread.rowid import member_tag
from apps.core.threads.app_kit import app_thread_find, row_owners
from apps.core.threads.context import thread_context
from apps.identity import evidence as evidence_files
from apps.identity import standing
from apps.identity.models import Attestation, Challenge, Claim, Retraction
from apps.identity.selector_views import (
    AttestationView,
    AuthorityView,
    ChallengeRef,
    ChallengeView,
    ClaimView,
    JudgeView,
    KindView,
    SettingsView,
    StrikeView,
    WitnessView,
)
from apps.identity.selectors_challenges import (
    CHALLENGE_STATES,
    DECIDED,
    JUDGING,
    VOTING,
    WAITING_ACCEPT,
    challenge,
    challenge_views,
    challenges,
)
from apps.identity.selectors_common import FORMER, alias_of, enabled, member_names
from apps.identity.selectors_refused import REFUSALS_SCANNED, refused_mine
from apps.identity.selectors_rules import authorities, kind_labels, kinds, settings, trusted
from apps.identity.selectors_witnesses import witness, witnesses

__all__ = [
    "CHALLENGE_STATES",
    "DECIDED",
    "JUDGING",
    "MAX_PAGE",
    "PAGE",
    "REFUSALS_SCANNED",
    "VOTING",
    "WAITING_ACCEPT",
    "AttestationView",
    "AuthorityView",
    "ChallengeView",
    "ClaimPage",
    "ClaimView",
    "JudgeView",
    "KindView",
    "SettingsView",
    "StrikeView",
    "WitnessView",
    "authorities",
    "challenge",
    "challenges",
    "claim",
    "claim_page",
    "claims",
    "enabled",
    "kinds",
    "member_names",
    "refused_mine",
    "settings",
    "thread_find",
    "waiting_count",
    "witness",
    "witnesses",
]

thread_find = app_thread_find
PAGE = 50  # claims a page (and the API's list) shows by default
MAX_PAGE = 200


@dataclass(frozen=True)
class ClaimPage:
    claims: list[ClaimView]
    older: str | None  # pass as ``before`` for the next page (older claims); None: no more
    newer: str | None  # pass as ``after`` for the previous page (newer claims); None: newest


def _uuid(value: str) -> uuid.UUID:
    """A claim id from a cursor or a link (ValueError when it is not one)."""
    return uuid.UUID(hex=str(value))


def _subject_tag(subject: str) -> str | None:
    try:
        return member_tag(bytes.fromhex(subject)).hex()
    except ValueError:
        return None  # not a member key: nobody's claims


def _of_subject(query: QuerySet, subject: str | None) -> QuerySet | None:
    """``query`` narrowed to one member's claims in SQL (the row tag ends each claim's id);
    None when ``subject`` is not a member key."""
    if subject is None:
        return query
    tag = _subject_tag(subject)
    if tag is None:
        return None
    tagged = query.annotate(tag=Substr("id", 21, output_field=CharField()))
    return tagged.filter(tag=tag)


def claims(
    thread: Thread, *, subject: str | None = None, claim_ids: list[str] | None = None
) -> list[ClaimView]:
    """The thread's claims (all, or ``claim_ids``), newest first (ids are time-ordered);
    ``subject``: one member's. Every claim's state is worked out: a list of a whole big
    thread is slow, use ``claim_page``."""
    with thread_context(thread.thread):
        query = _of_subject(Claim.objects.order_by("-id"), subject)
        if query is None:
            return []
        if claim_ids is not None:
            query = query.filter(pk__in=[_uuid(c) for c in claim_ids])
        rows = list(query)
    return _views(thread, rows)


def claim_page(
    thread: Thread,
    *,
    before: str | None = None,
    after: str | None = None,
    subject: str | None = None,
    limit: int = PAGE,
) -> ClaimPage:
    """One page of the thread's claims, newest first: the ``limit`` claims older than claim
    ``before``, or newer than claim ``after``, or the newest ones; only theirs are worked out.
    Raises ValueError when a cursor is not a claim id."""
    limit = max(1, min(MAX_PAGE, limit))
    newer_than = _uuid(after) if after else None
    older_than = _uuid(before) if before and newer_than is None else None
    with thread_context(thread.thread):
        query = _of_subject(Claim.objects.all(), subject)
        if query is None:
            return ClaimPage([], None, None)
        if newer_than is not None:
            rows = list(query.filter(pk__gt=newer_than).order_by("id")[: limit + 1])
            more_newer = len(rows) > limit
            rows = rows[:limit][::-1]
            if len(rows) < limit:  # back at the newest: the first page, full
                return claim_page(thread, subject=subject, limit=limit)
            more_older = query.filter(pk__lt=rows[-1].pk).exists()
        else:
            older_only = query if older_than is None else query.filter(pk__lt=older_than)
            rows = list(older_only.order_by("-id")[: limit + 1])
            more_older = len(rows) > limit
            rows = rows[:limit]
            more_newer = older_than is not None and (
                query.filter(pk__gt=rows[0].pk).exists() if rows else True
            )
    views = _views(thread, rows)
    older = rows[-1].pk.hex if rows and more_older else None
    newer = rows[0].pk.hex if rows and more_newer else None
    return ClaimPage(views, older, newer)


def _views(thread: Thread, rows: list[Claim]) -> list[ClaimView]:
    """The views of claim ``rows``, in their order: states, attestations and challenges of
    these claims only (a few queries for all of them, none per claim)."""
    if not rows:
        return []
    alias = alias_of(thread)
    settings_now = standing.settings_of(alias)
    # Only the flags: from the rows that strike, never a count over every attestation.
    flags = standing.flagged(alias, settings_now)
    ids = [c.pk for c in rows]
    states = standing.claim_states(
        alias, [pk.hex for pk in ids], settings=settings_now, flags=flags
    )
    overturned = standing.overturned_by(alias)
    names, owners, me = member_names(thread), row_owners(thread), thread.member_id
    labels, trusted_now = kind_labels(thread), trusted(thread)
    refused = refused_mine(thread)
    with thread_context(thread.thread):
        attestations = list(Attestation.objects.filter(claim__in=ids).order_by("id"))
        retractions = {
            r.attestation.hex: r
            for r in Retraction.objects.filter(attestation__in=[a.pk for a in attestations])
        }
        challenge_rows = list(Challenge.objects.filter(claim__in=ids).order_by("id"))
    by_claim: dict[str, list[ChallengeRef]] = {}
    for view in challenge_views(thread, challenge_rows, names=names, owners=owners):
        if view.claim:
            by_claim.setdefault(view.claim, []).append(
                ChallengeRef(view.id, view.feat, view.state, view.winner, view.winner_name)
            )
    atts_of: dict[str, list[Attestation]] = {}
    for att in attestations:
        atts_of.setdefault(att.claim.hex, []).append(att)
    found = []
    for row in rows:
        pk = row.pk.hex
        state = states.get(pk)
        if state is None:  # its author is unknown to this node: not shown
            continue
        counting = set(state.witnesses)
        shown_atts = []
        my_verdict, my_retracted = None, False
        for att in atts_of.get(pk, []):
            witness_key = owners.get(att.pk.hex[20:], "")
            retraction = retractions.get(att.pk.hex)
            mine = witness_key == me
            if mine:
                my_verdict, my_retracted = att.verdict, retraction is not None
            is_authority = (row.kind, witness_key) in trusted_now
            shown_atts.append(
                AttestationView(
                    id=att.pk.hex,
                    witness=witness_key,
                    witness_name=names.get(witness_key, FORMER),
                    verdict=att.verdict,
                    note=att.note,
                    retracted=retraction is not None,
                    retraction_reason=retraction.reason if retraction else "",
                    counts=retraction is None
                    and att.verdict == "witnessed"
                    and (
                        witness_key in counting or (is_authority and state.authority == witness_key)
                    ),
                    flagged=witness_key in flags,
                    authority=is_authority,
                    mine=mine,
                    jws=att.jws,
                )
            )
        found.append(
            ClaimView(
                id=pk,
                subject=state.subject,
                subject_name=names.get(state.subject, FORMER),
                mine=state.subject == me,
                kind=row.kind,
                kind_label=labels.get(row.kind, row.kind),
                title=row.title,
                description=row.description,
                event_date=row.event_date,
                place=row.place,
                evidence=evidence_files.files_of(thread, row.evidence),
                withdrawn=row.withdrawn,
                state=state.state,
                needed=state.needed,
                witnesses=[names.get(w, FORMER) for w in state.witnesses],
                disputes=[names.get(w, FORMER) for w in state.disputes],
                authority_name=names.get(state.authority, FORMER) if state.authority else None,
                attestations=shown_atts,
                my_verdict=my_verdict,
                my_retracted=my_retracted,
                challenges=by_claim.get(pk, []),
                overturned_by=overturned.get(pk),
                refused=refused.get(pk, []),
            )
        )
    return found


def claim(thread: Thread, claim_id: str) -> ClaimView | None:
    try:
        pk = _uuid(claim_id).hex
    except ValueError:
        return None
    found = claims(thread, claim_ids=[pk])
    return found[0] if found else None


def waiting_count(thread: Thread) -> int:
    """How many pending claims of others this member has said nothing on (Home's waiting
    words): the states of those claims only, and no view of any."""
    me = thread.member_id
    tag = _subject_tag(me or "")
    if tag is None:
        return 0
    with thread_context(thread.thread):
        mine = Attestation.objects.annotate(tag=Substr("id", 21, output_field=CharField()))
        said = set(mine.filter(tag=tag).values_list("claim", flat=True))
        ids = [
            pk.hex
            for pk in Claim.objects.filter(withdrawn=False).values_list("id", flat=True)
            if pk not in said and pk.hex[20:] != tag
        ]
    if not ids:
        return 0
    states = standing.claim_states(alias_of(thread), ids)
    return sum(1 for s in states.values() if s.state == standing.PENDING and s.subject != me)
