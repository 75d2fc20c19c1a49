"""What the achievements pages show, in words: a claim's badge (Verified and how, Waiting for
witnesses n of k, Overturned, Withdrawn), the thread's rules as sentences, each attestation and
challenge as a line about people by name, what this member may do on a claim, and the members a
form offers. Pure reads of the selectors' views; the pages and their live sockets share them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from apps.core.models import Thread
from apps.identity import selectors, services
from apps.identity.forms import (
    AttestForm,
    AuthorityForm,
    ChallengeForm,
    ClaimForm,
    KindForm,
    RetractForm,
    SettingsForm,
)
from apps.identity.selectors import ChallengeView, ClaimView, SettingsView

TAKES_PART = ("owner", "admin", "writer")  # who claims, attests and challenges (the policy)
MANAGERS = ("owner", "admin")


@dataclass(frozen=True)
class Badge:
    state: str  # verified | pending | overturned | withdrawn (the CSS class)
    label: str
    how: str


def badge(c: ClaimView) -> Badge:
    """The claim's state as a badge, with how it got there."""
    if c.state == "verified":
        if c.counting >= c.needed:
            return Badge(c.state, "Verified", f"by {plural(c.counting, 'witness', 'witnesses')}")
        return Badge(c.state, "Verified", f"by {c.authority_name}, trusted for {c.kind_label}")
    if c.state == "pending":
        return Badge(c.state, "Waiting for witnesses", f"({c.counting} of {c.needed})")
    if c.state == "overturned":
        return Badge(c.state, "Overturned", "by a challenge")
    return Badge(c.state, "Withdrawn", "by its claimant")


def plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def rule_words(current: SettingsView) -> dict[str, str]:
    k, flag = current.witnesses, current.flag_after
    return {
        "verified": f"A claim is verified when {plural(k, 'member', 'members')} other than its "
        "claimant witness it, or one member the thread trusts for its kind does.",
        "flagged": f"Witnesses are flagged after {flag} retracted or overturned "
        f"attestation{'' if flag == 1 else 's'}; flagged witnesses do not count.",
    }


@dataclass(frozen=True)
class Said:
    """One attestation as the claim page lists it."""

    member: str  # for the link to the witness's standing
    name: str
    verdict: str
    verdict_words: str
    note: str
    retracted: bool
    why: str


def attestations(c: ClaimView) -> list[Said]:
    found = []
    for a in c.attestations:
        you = a.mine
        if a.retracted:
            said = "witnessed" if a.verdict == "witnessed" else "disputed"
            words = f"{said} it, then took it back"
        elif a.verdict == "witnessed":
            words = "witnessed it"
        else:
            words = "dispute it" if you else "disputes it"
        why = ""
        if a.retracted and a.retraction_reason:
            why = f"Why: {a.retraction_reason}"
        elif a.flagged and a.verdict == "witnessed":
            why = "Flagged: does not count"
        elif a.authority and a.verdict == "witnessed":
            why = f"Trusted for {c.kind_label}"
        found.append(Said(a.witness, a.witness_name, a.verdict, words, a.note, a.retracted, why))
    return found


@dataclass(frozen=True)
class ClaimShown:
    view: ClaimView
    badge: Badge
    attestations: list[Said]
    waiting_for_me: bool


def shown(c: ClaimView) -> ClaimShown:
    waiting = not c.mine and c.state == "pending" and c.my_verdict is None
    return ClaimShown(c, badge(c), attestations(c), waiting)


def may_attest(c: ClaimView) -> bool:
    return not c.mine and c.my_verdict is None and c.state in ("pending", "verified")


def may_retract(c: ClaimView) -> bool:
    return c.my_verdict is not None and not c.my_retracted


def may_challenge(c: ClaimView) -> bool:
    return not c.mine and c.state == "verified"


def people(thread: Thread) -> list[tuple[str, str]]:
    """The thread's members now but this one, by name: a form's choices."""
    names = selectors.member_names(thread)
    found = [
        (member, names[member])
        for member in services.members_now(thread)
        if member != thread.member_id
    ]
    return sorted(found, key=lambda pair: (pair[1].casefold(), pair[0]))


@dataclass(frozen=True)
class ChallengeShown:
    view: ChallengeView
    heading: str
    how: str
    state: str
    judgements: list[str]
    can_challenge_back: bool


def challenge_shown(c: ChallengeView) -> ChallengeShown:
    who, whom = c.challenger_name.capitalize(), c.defendant_name
    what = " back" if c.against else (" to a duel" if not c.claim else "")
    if c.mode == "poll":
        how = "Decided by a poll of the other members"
    else:
        how = "Judges: " + ", ".join(j.name for j in c.judges)
    if c.state == "decided":
        state = f"{(c.winner_name or 'someone').capitalize()} won"
        if c.winner == "challenger" and c.claim and c.in_effect:
            state += ": the claim is overturned"
    elif c.state == "waiting_accept":
        state = f"Waiting for {whom} to accept"
    elif c.state == "judging":
        done = sum(1 for j in c.judges if j.said)
        state = f"Judging: {done} of {len(c.judges)} judges have said"
    else:
        state = "The poll decides"
    sides = {"challenger": c.challenger_name, "defendant": c.defendant_name}
    judged = [judged_words(j.name, sides[j.said]) for j in c.judges if j.said in sides]
    back = (
        c.state == "decided"
        and c.winner == "challenger"
        and c.in_effect
        and not c.mine
        and c.claim is not None
    )
    return ChallengeShown(c, f"{who} challenged {whom}{what}", how, state, judged, back)


def judged_words(judge: str, winner: str) -> str:
    """A judgement in words, by names ("Dana says you win"), never "the defendant"."""
    says = "You say" if judge == "you" else f"{judge.capitalize()} says"
    return f"{says} {winner} {'win' if winner == 'you' else 'wins'}"


def file_name(title: str) -> str:
    """A download's name from a claim's title (letters, digits and dashes)."""
    kept = "".join(ch if ch.isalnum() else "-" for ch in title.strip().casefold())
    return "-".join(part for part in kept.split("-") if part)[:60]


# -- the pages' contexts (their live sockets render the same) -----------------------------


# A member's part in a thread, as the page's subtitle says it (roles are the policy's words).
ROLE_WORDS = {"owner": "you are its owner", "admin": "you are an admin", "writer": "you take part"}
STATE_WORDS = {"left": "you left this thread", "removed": "you were removed from this thread"}


def you_are(thread: Thread) -> str:
    """ "you are its owner", "you take part", "you left this thread": never a bare role name."""
    if not active(thread):
        return STATE_WORDS.get(thread.state, f"this thread is {thread.get_state_display()}")
    return ROLE_WORDS.get(thread.role, f"your part: {thread.role}" if thread.role else "")


def active(thread: Thread) -> bool:
    return thread.state == Thread.State.ACTIVE


def takes_part(thread: Thread) -> bool:
    return active(thread) and thread.role in TAKES_PART


def manages(thread: Thread) -> bool:
    return active(thread) and thread.role in MANAGERS


def claim_form(thread: Thread, data=None, files=None) -> ClaimForm:
    kinds = [(k.slug, k.label) for k in selectors.kinds(thread, counted=False) if not k.retired]
    return ClaimForm(data, files, kinds=kinds)


def duel_record(c: ChallengeView) -> str:
    """A decided duel as its winner's record ("Dana won a duel against you: ...")."""
    if c.winner == "challenger":
        winner, loser = c.challenger_name, c.defendant_name
    else:
        winner, loser = c.defendant_name, c.challenger_name
    return f"{winner.capitalize()} won a duel against {loser}: {c.feat}"


def list_context(
    thread: Thread,
    *,
    before: str | None = None,
    after: str | None = None,
    subject: str | None = None,
) -> dict:
    """One page of the claims list, newest first, with links to the newer and older pages
    that keep the filter (also what its live socket renders); the duels' records on the first
    page."""
    try:
        found = selectors.claim_page(thread, before=before, after=after, subject=subject)
    except ValueError:  # a link's cursor that is no claim id: the newest claims
        before = after = None
        found = selectors.claim_page(thread, subject=subject)
    keep = {"subject": subject} if subject else {}
    paged = bool(before or after)
    duels = []
    if not paged:
        duels = [
            duel_record(c)
            for c in selectors.challenges(thread)
            if c.claim is None and c.against is None and c.winner is not None
        ]
    here = {**keep, **({"after": after} if after else {"before": before} if before else {})}
    return {
        "thread": thread,
        "claims": [shown(c) for c in found.claims],
        "duels": duels,
        "paged": paged,
        "subject": subject or "",
        **_filter_words(thread, subject),
        "older_link": _query({**keep, "before": found.older}) if found.older else "",
        "newer_link": _query({**keep, "after": found.newer}) if found.newer else "",
        # A page with nothing left on it (an old link past the oldest claim): back to the start.
        "newest_link": _query(keep) if paged and not found.claims else "",
        "page_query": urlencode(here),  # the live socket renders this same page
    }


def _filter_words(thread: Thread, subject: str | None) -> dict[str, str]:
    """What the page says when it shows one member's claims, and when they have none."""
    if not subject:
        return {"filter_words": "", "filter_empty": ""}
    if subject == thread.member_id:
        return {"filter_words": "Only your claims", "filter_empty": "You have claimed nothing."}
    name = selectors.member_names(thread).get(subject, "a former member")
    return {
        "filter_words": f"Only {name}'s claims",
        "filter_empty": f"{name[:1].upper()}{name[1:]} has claimed nothing here.",
    }


def _query(params: dict[str, str]) -> str:
    return "?" + urlencode(params) if params else "?"


def claim_context(thread: Thread, view: ClaimView) -> dict:
    """A claim's page (also what its live socket renders: the badge and the attestations)."""
    part = takes_part(thread)
    return {
        "thread": thread,
        "claim": shown(view),
        "rule": rule_words(selectors.settings(thread)),
        "can_attest": part and may_attest(view),
        "can_retract": part and may_retract(view),
        "can_withdraw": part and view.mine and not view.withdrawn,
        "can_challenge": part and may_challenge(view),
        "can_export": view.mine and view.verified,
        "attest_form": AttestForm(),
        "retract_form": RetractForm(),
    }


def challenge_form(
    thread: Thread, data=None, *, initial=None, claim: ClaimView | None = None, against: str = ""
) -> ChallengeForm:
    """Judges offered: never oneself, the one challenged, nor the claim's subject or witnesses
    (the rules refuse them). A challenge back names the won challenge; a duel picks a member."""
    everyone = people(thread)
    left_out: set[str] = set()
    answered = selectors.challenge(thread, against) if against else None
    if answered is not None:
        left_out.add(answered.challenger)  # the defendant of a challenge back
        claim = selectors.claim(thread, answered.claim) if answered.claim else None
    if claim is not None:
        left_out |= {claim.subject, *(a.witness for a in claim.attestations)}
    judges = [(m, name) for m, name in everyone if m not in left_out]
    duel = claim is None and answered is None
    return ChallengeForm(data, initial=initial, members=everyone, judges=judges, duel=duel)


def challenges_context(thread: Thread) -> dict:
    return {
        "thread": thread,
        "challenges": [challenge_shown(c) for c in selectors.challenges(thread)],
    }


def settings_context(thread: Thread, **forms: Any) -> dict:
    current = selectors.settings(thread)
    kinds = selectors.kinds(thread)
    live = [(k.slug, k.label) for k in kinds if not k.retired]
    context = {
        "current": current,
        "kinds": kinds,
        "authorities": selectors.authorities(thread),
        "settings_form": SettingsForm(
            initial={"witnesses": current.witnesses, "flag_after": current.flag_after}
        ),
        "kind_form": KindForm(),
        "authority_form": AuthorityForm(kinds=live, members=people(thread)),
        "rule": rule_words(current),
    }
    context.update(forms)
    return context
