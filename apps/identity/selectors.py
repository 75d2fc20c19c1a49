"""Reads of a thread's achievements for pages and the API: claims with their state (derived by
``standing.py`` from the accepted rows, the same on every node), attestations, challenges,
witnesses with every input of their standing, kinds, authorities and settings. People are
named ("you", their name in the thread, else "member N"); member keys stay in the views only
for links and the API, never for words."""

from __future__ import annotations

import contextlib
import json
import uuid

from apps.core.models import Thread
from apps.core.thread.rowid import member_tag
from apps.core.threads.app_kit import app_enabled, app_thread_find, row_owners
from apps.core.threads.context import thread_context
from apps.core.threads.names import Names, thread_names
from apps.core.threads.registry import thread_database
from apps.identity import evidence as evidence_files
from apps.identity import standing
from apps.identity.models import (
    Accept,
    Attestation,
    Authority,
    Challenge,
    Claim,
    Judgement,
    Kind,
    Outcome,
    Retraction,
    Setting,
)
from apps.identity.policy import APP
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

thread_find = app_thread_find
# A challenge's state in words the API and pages share.
WAITING_ACCEPT, JUDGING, VOTING, DECIDED = "waiting_accept", "judging", "voting", "decided"
CHALLENGE_STATES = (WAITING_ACCEPT, JUDGING, VOTING, DECIDED)


def enabled(thread: Thread) -> bool:
    return app_enabled(thread, APP)


def member_names(thread: Thread) -> Names:
    return thread_names(thread, me_as="you")


def _alias(thread: Thread) -> str:
    return thread_database(thread.thread).alias


def _hex(value: uuid.UUID | str | None) -> str | None:
    return None if value is None else getattr(value, "hex", str(value))


# -- claims ------------------------------------------------------------------------------------


def _kind_labels(thread: Thread) -> dict[str, str]:
    with thread_context(thread.thread):
        rows = list(Kind.objects.order_by("retired", "id"))
    labels: dict[str, str] = {}
    for row in rows:
        labels.setdefault(row.slug, row.label)
    return labels


def _trusted(thread: Thread) -> set[tuple[str, str]]:
    with thread_context(thread.thread):
        return set(Authority.objects.filter(revoked=False).values_list("kind", "member"))


def claims(
    thread: Thread, *, subject: str | None = None, claim_ids: list[str] | None = None
) -> list[ClaimView]:
    """The thread's claims, newest first (ids are time-ordered); ``subject``: one member's."""
    alias = _alias(thread)
    settings = standing.settings_of(alias)
    # Only the flags: from the rows that strike, never a count over every attestation.
    flags = standing.flagged(alias, settings)
    states = standing.claim_states(alias, claim_ids, settings=settings, flags=flags)
    overturned = standing.overturned_by(alias)
    names, owners, me = member_names(thread), row_owners(thread), thread.member_id
    labels, trusted = _kind_labels(thread), _trusted(thread)
    refused = refused_mine(thread)
    with thread_context(thread.thread):
        query = Claim.objects.order_by("-id")
        if claim_ids is not None:
            query = query.filter(pk__in=[uuid.UUID(hex=c) for c in claim_ids])
        if subject is not None:
            try:
                tag = member_tag(bytes.fromhex(subject)).hex()
            except ValueError:
                return []  # not a member key: nobody's claims
            rows = [c for c in query if c.pk.hex[20:] == tag]
        else:
            rows = list(query)
        ids = [c.pk for c in rows]
        attestations = list(Attestation.objects.filter(claim__in=ids).order_by("id"))
        retractions = {
            r.attestation.hex: r
            for r in Retraction.objects.filter(attestation__in=[a.pk for a in attestations])
        }
        challenge_rows = list(Challenge.objects.filter(claim__in=ids).order_by("id"))
    views = _challenge_views(thread, challenge_rows, names=names, owners=owners)
    by_claim: dict[str, list[ChallengeRef]] = {}
    for view in views:
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
            witness = owners.get(att.pk.hex[20:], "")
            retraction = retractions.get(att.pk.hex)
            mine = witness == me
            if mine:
                my_verdict, my_retracted = att.verdict, retraction is not None
            is_authority = (row.kind, witness) in trusted
            shown_atts.append(
                AttestationView(
                    id=att.pk.hex,
                    witness=witness,
                    witness_name=names.get(witness, "a former member"),
                    verdict=att.verdict,
                    note=att.note,
                    retracted=retraction is not None,
                    retraction_reason=retraction.reason if retraction else "",
                    counts=retraction is None
                    and att.verdict == "witnessed"
                    and (witness in counting or (is_authority and state.authority == witness)),
                    flagged=witness in flags,
                    authority=is_authority,
                    mine=mine,
                    jws=att.jws,
                )
            )
        found.append(
            ClaimView(
                id=pk,
                subject=state.subject,
                subject_name=names.get(state.subject, "a former member"),
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
                witnesses=[names.get(w, "a former member") for w in state.witnesses],
                disputes=[names.get(w, "a former member") for w in state.disputes],
                authority_name=names.get(state.authority, "a former member")
                if state.authority
                else None,
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
        pk = uuid.UUID(hex=str(claim_id)).hex
    except ValueError:
        return None
    found = claims(thread, claim_ids=[pk])
    return found[0] if found else None


# -- challenges --------------------------------------------------------------------------------


def _challenge_views(
    thread: Thread, rows: list[Challenge], *, names: Names, owners: dict[str, str]
) -> list[ChallengeView]:
    if not rows:
        return []
    me = thread.member_id
    alias = _alias(thread)
    effect = standing.challenges_in_effect(alias)
    ids = [c.pk for c in rows]
    with thread_context(thread.thread):
        accepted = set(Accept.objects.filter(challenge__in=ids).values_list("challenge", flat=True))
        outcomes: dict[str, str] = {}
        for o in Outcome.objects.filter(challenge__in=ids).order_by("id"):
            outcomes.setdefault(o.challenge.hex, o.winner)
        said: dict[str, dict[str, str]] = {}
        for j in Judgement.objects.filter(challenge__in=ids).order_by("id"):
            said.setdefault(j.challenge.hex, {})[owners.get(j.pk.hex[20:], "")] = j.winner
        titles = dict(
            Claim.objects.filter(pk__in=[c.claim for c in rows if c.claim]).values_list(
                "id", "title"
            )
        )
    poll_states = _poll_states(thread, [c.poll.hex for c in rows if c.poll])
    found = []
    for row in rows:
        pk = row.pk.hex
        challenger = owners.get(pk[20:], "")
        judges = _judges(row.judges)
        winner = outcomes.get(pk)
        is_accepted = row.pk in accepted
        if winner:
            state = DECIDED
        elif row.mode == "poll":
            state = VOTING
        else:
            state = JUDGING if is_accepted else WAITING_ACCEPT
        judged = said.get(pk, {})
        winner_member = {"challenger": challenger, "defendant": row.defendant}.get(winner or "")
        found.append(
            ChallengeView(
                id=pk,
                challenger=challenger,
                challenger_name=names.get(challenger, "a former member"),
                defendant=row.defendant,
                defendant_name=names.get(row.defendant, "a former member"),
                mine=challenger == me,
                defending=row.defendant == me,
                claim=_hex(row.claim),
                claim_title=titles.get(row.claim, "") if row.claim else "",
                against=_hex(row.against),
                feat=row.feat,
                deadline=row.deadline,
                mode=row.mode,
                judges=[
                    JudgeView(j, names.get(j, "a former member"), judged.get(j), j == me)
                    for j in judges
                ],
                poll=_hex(row.poll),
                poll_state=poll_states.get(_hex(row.poll) or ""),
                accepted=is_accepted,
                winner=winner,
                winner_name=names.get(winner_member, "a former member") if winner_member else None,
                in_effect=pk in effect,
                state=state,
                can_accept=row.defendant == me and row.mode == "judges" and not is_accepted,
                can_judge=state == JUDGING and me in judges and me not in judged,
            )
        )
    return found


def _judges(value: str) -> list[str]:
    try:
        found = json.loads(value or "[]")
    except ValueError:
        return []
    return [str(j) for j in found] if isinstance(found, list) else []


def _poll_states(thread: Thread, polls: list[str]) -> dict[str, str]:
    if not polls or not app_enabled(thread, "voting"):
        return {}
    from apps.voting import selectors as voting

    found = {}
    for poll in polls:
        view = voting.poll(thread, poll)
        if view is not None:
            found[poll] = view.state
    return found


def challenges(thread: Thread, *, challenge_id: str | None = None) -> list[ChallengeView]:
    """The thread's challenges and duels, newest first."""
    with thread_context(thread.thread):
        query = Challenge.objects.order_by("-id")
        if challenge_id is not None:
            query = query.filter(pk=challenge_id)
        rows = list(query)
    return _challenge_views(thread, rows, names=member_names(thread), owners=row_owners(thread))


def challenge(thread: Thread, challenge_id: str) -> ChallengeView | None:
    try:
        pk = uuid.UUID(hex=str(challenge_id))
    except ValueError:
        return None
    found = challenges(thread, challenge_id=pk.hex)
    return found[0] if found else None


# -- witnesses ---------------------------------------------------------------------------------


def witnesses(thread: Thread, *, member: str | None = None) -> list[WitnessView]:
    """Every member who attested something, with each input of their standing; by name."""
    alias = _alias(thread)
    settings = standing.settings_of(alias)
    found = standing.standing(alias, settings)
    names, me = member_names(thread), thread.member_id
    with thread_context(thread.thread):
        atts = dict(Attestation.objects.values_list("id", "claim"))
        titles = dict(Claim.objects.values_list("id", "title"))
        feats = dict(Challenge.objects.values_list("id", "feat"))

    def title_of(claim_hex: str) -> str:
        return titles.get(uuid.UUID(hex=claim_hex), "a claim")

    views = []
    for witness, state in found.items():
        if member is not None and witness != member:
            continue
        retracted = []
        for att in state.retracted:
            claim_pk = atts.get(uuid.UUID(hex=att))
            claim_hex = claim_pk.hex if claim_pk else ""
            retracted.append(
                StrikeView(
                    att, claim_hex, title_of(claim_hex) if claim_hex else "a claim", None, ""
                )
            )
        overturned = [
            StrikeView(
                att,
                claim_hex,
                title_of(claim_hex),
                challenge_hex,
                feats.get(uuid.UUID(hex=challenge_hex), ""),
            )
            for att, claim_hex, challenge_hex in state.overturned
        ]
        views.append(
            WitnessView(
                member=witness,
                name=names.get(witness, "a former member"),
                mine=witness == me,
                attested=state.attested,
                retracted=retracted,
                overturned=overturned,
                strikes=state.strikes,
                flag_after=settings.flag_after,
                flagged=state.flagged,
            )
        )
    views.sort(key=lambda w: (not w.mine, w.name.casefold(), w.member))
    return views


def witness(thread: Thread, member: str) -> WitnessView | None:
    """One member's standing (a member who never attested has a clean one)."""
    member = str(member or "").lower()
    found = witnesses(thread, member=member)
    if found:
        return found[0]
    if len(member) != 64:
        return None
    try:
        bytes.fromhex(member)
    except ValueError:
        return None
    flag_after = standing.settings_of(_alias(thread)).flag_after
    names = member_names(thread)
    return WitnessView(
        member,
        names.get(member, "a former member"),
        member == thread.member_id,
        0,
        [],
        [],
        0,
        flag_after,
        False,
    )


# -- settings ----------------------------------------------------------------------------------


def kinds(thread: Thread) -> list[KindView]:
    """Every kind the thread has had (in use first), with how many claims each has."""
    with thread_context(thread.thread):
        rows = list(Kind.objects.order_by("id"))
        counts: dict[str, int] = {}
        for kind in Claim.objects.values_list("kind", flat=True):
            counts[kind] = counts.get(kind, 0) + 1
    merged: dict[str, KindView] = {}
    for row in rows:
        seen = merged.get(row.slug)
        if seen is None or (seen.retired and not row.retired):
            merged[row.slug] = KindView(row.slug, row.label, row.retired, counts.get(row.slug, 0))
    return sorted(merged.values(), key=lambda k: (k.retired, k.label.casefold(), k.slug))


def authorities(thread: Thread) -> list[AuthorityView]:
    """The members trusted for a kind (revoked ones after, marked)."""
    names, labels = member_names(thread), _kind_labels(thread)
    with thread_context(thread.thread):
        rows = list(Authority.objects.order_by("id"))
    merged: dict[tuple[str, str], bool] = {}
    for row in rows:
        key = (row.kind, row.member)
        merged[key] = merged.get(key, True) and row.revoked
    found = [
        AuthorityView(
            kind, labels.get(kind, kind), member, names.get(member, "a former member"), revoked
        )
        for (kind, member), revoked in merged.items()
    ]
    return sorted(found, key=lambda a: (a.revoked, a.kind_label.casefold(), a.name.casefold()))


def settings(thread: Thread) -> SettingsView:
    from apps.identity.services import is_manager

    alias = _alias(thread)
    current = standing.settings_of(alias)
    with thread_context(thread.thread):
        seq = Setting.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
    return SettingsView(current.witnesses, current.flag_after, seq, is_manager(thread))


# What a refused write of this node was, for "Your ... was refused: <reason>."
_REFUSED_WHAT = {
    "identity_claim": "claim",
    "identity_attestation": "word on this claim",
    "identity_retraction": "retraction",
    "identity_challenge": "challenge",
}
REFUSALS_SCANNED = 200


def refused_mine(thread: Thread) -> dict[str, list[str]]:
    """This node's writes on claims that the thread refused after this node had accepted them
    (a row from elsewhere ordered first: the claim was withdrawn, the settings moved, ...), as
    sentences per claim id. Reads the newest refused writes only."""
    from apps.core.threads import writes

    database = thread_database(thread.thread)
    page = writes.writes_list(database, state="refused", limit=REFUSALS_SCANNED)
    # The claims of the attestations refused retractions name: only those rows (every
    # attestation of the thread was read here on each read of a claim).
    named = set()
    for write in page.writes:
        for change in write.changes or ():
            if change.table == "identity_retraction":
                with contextlib.suppress(ValueError, TypeError, AttributeError):
                    named.add(uuid.UUID(hex=str(change.values.get("attestation", ""))))
    of_attestation: dict[str, str] = {}
    if named:
        with thread_context(thread.thread):
            rows = Attestation.objects.filter(pk__in=named).values_list("id", "claim")
            of_attestation = {a.hex: c.hex for a, c in rows}
    found: dict[str, list[str]] = {}
    for write in page.writes:
        reason = write.reason.removeprefix("refused: ")
        table, _sep, said = reason.partition(": ")
        for change in write.changes or ():
            what = _REFUSED_WHAT.get(change.table)
            if what is None:
                continue
            values = change.values
            claim = {
                "identity_claim": str(change.row),
                "identity_attestation": str(values.get("claim", "")),
                "identity_challenge": str(values.get("claim") or ""),
                "identity_retraction": of_attestation.get(str(values.get("attestation", "")), ""),
            }[change.table]
            if claim:
                words = said if table == change.table else writes.refusal_text(write.refusal)
                found.setdefault(claim, []).append(f"Your {what} was refused: {words}.")
    return found


def waiting_for_me(thread: Thread) -> list[ClaimView]:
    """Pending claims of others this member has not attested (Home's waiting words)."""
    return [
        c
        for c in claims(thread)
        if not c.mine and c.state == standing.PENDING and c.my_verdict is None
    ]
