"""Witness standing and claim states, derived from a thread's accepted rows by the same SQL on
every node (ADR 26): nothing here is written as a row, and nothing reads this node's clock.

- A won challenge is **in effect** unless a challenge back against it is in effect (a won
  challenge challenged back and lost by its challenger is undone; challenged back again and
  won, it holds again). Challenges back form a tree of a few rows, so that fold is done here in
  Python over the won challenges only: SQL's recursion cannot say "no child is in effect".
- A witness is **flagged** when their retracted attestations plus their ``witnessed``
  attestations on claims a challenge in effect overturned (each attestation counted once)
  reach ``flag_after``. One aggregate query over the attestations gives every witness's inputs.
- A claim is **withdrawn**, else **overturned** (a challenge in effect names it), else
  **verified** (k distinct unflagged witnesses attested it ``witnessed`` and did not retract,
  or one such attestation is by a member the thread trusts for the claim's kind, not revoked),
  else **pending**. The rules refuse an attestation over any digest but the claim's, and a
  claim is never edited, so every attestation kept is over the claim's current digest.

Member keys are 64 lowercase hex digits; row ids 32 (as SQLite holds Django's UUIDs)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, field

from django.db import connections

DEFAULT_WITNESSES = 2
DEFAULT_FLAG_AFTER = 2
VERIFIED, PENDING, OVERTURNED, WITHDRAWN = "verified", "pending", "overturned", "withdrawn"
CLAIM_STATES = (VERIFIED, PENDING, OVERTURNED, WITHDRAWN)


@dataclass(frozen=True)
class Settings:
    witnesses: int  # k
    flag_after: int


@dataclass
class WitnessStanding:
    """A witness's standing with every input listed (the witness page shows them all)."""

    member: str
    attested: int = 0
    retracted: list[str] = field(default_factory=list)  # attestation ids
    overturned: list[tuple[str, str, str]] = field(default_factory=list)  # (attestation, claim,
    # challenge in effect that overturned the claim)
    flagged: bool = False

    @property
    def strikes(self) -> int:
        """Attestations that count towards the flag (one retracted and overturned counts once)."""
        return len(set(self.retracted) | {a for a, _c, _ch in self.overturned})


@dataclass
class ClaimState:
    claim: str
    subject: str
    kind: str
    state: str
    witnesses: list[str]  # unflagged members whose attestation counts, sorted
    disputes: list[str]  # members disputing it (not retracted), sorted
    authority: str | None  # a trusted authority whose attestation verifies it
    needed: int  # k
    flagged: list[str] = field(default_factory=list)  # witnessed, but flagged: not counted


def _rows(alias: str, sql: str, params: Iterable[object] = ()) -> list[tuple]:
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, list(params))
        return cursor.fetchall()


def settings_of(alias: str) -> Settings:
    """The settings in force: the row with the highest ``seq`` (the rules keep the chain)."""
    found = _rows(
        alias,
        "SELECT witnesses, flag_after FROM identity_setting ORDER BY seq DESC, id LIMIT 1",
    )
    if not found:
        return Settings(DEFAULT_WITNESSES, DEFAULT_FLAG_AFTER)
    return Settings(int(found[0][0]), int(found[0][1]))


# -- challenges in effect ----------------------------------------------------------------------

_WON = """
SELECT c.id, c.against, c.claim FROM identity_challenge c
WHERE EXISTS (SELECT 1 FROM identity_outcome o WHERE o.challenge = c.id AND o.winner = 'challenger')
"""


def in_effect(won: Mapping[str, str | None]) -> set[str]:
    """The won challenges in effect, given each won challenge's ``against`` (or None): one is
    in effect unless a won challenge back against it is. Iterative, children first."""
    children: dict[str, list[str]] = {}
    for pk, against in won.items():
        if against is not None and against in won:
            children.setdefault(against, []).append(pk)
    effect: dict[str, bool] = {}
    for root in won:
        stack = [(root, False)]
        while stack:
            pk, expanded = stack.pop()
            if pk in effect:
                continue
            kids = children.get(pk, [])
            if expanded or not kids:
                effect[pk] = not any(effect.get(k, False) for k in kids)
                continue
            stack.append((pk, True))
            stack.extend((k, False) for k in kids if k not in effect)
    return {pk for pk, on in effect.items() if on}


def _effective(alias: str) -> tuple[set[str], dict[str, str]]:
    """The challenges in effect, and for each overturned claim the challenge (lowest id) that
    overturned it."""
    rows = _rows(alias, _WON)
    effect = in_effect({pk: against for pk, against, _claim in rows})
    overturned: dict[str, str] = {}
    for pk, _against, claim in sorted(rows):
        if claim is not None and pk in effect:
            overturned.setdefault(claim, pk)
    return effect, overturned


# -- standing ----------------------------------------------------------------------------------

# Every attestation with its witness's row tag, whether its witness retracted it, and the
# challenge in effect that overturned its claim if it said "witnessed" (found from the few
# overturned claims through the index on ``claim``); then per witness the count and the inputs
# as JSON arrays, and the witness's key once per witness. ``{only}`` narrows it to some
# witnesses (a claim's page needs only its own witnesses' flags).
_STANDING = """
WITH overturned(claim, challenge) AS (
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(%s)
),
struck AS (
    SELECT a.id AS id, o.challenge AS challenge FROM overturned o
    JOIN identity_attestation a ON a.claim = o.claim
    WHERE a.verdict = 'witnessed'
),
att AS (
    SELECT a.id AS id, a.claim AS claim, substr(a.id, 21) AS tag,
        r.id IS NOT NULL AS retracted, s.challenge AS overturned_by
    FROM identity_attestation a
    LEFT JOIN identity_retraction r
        ON r.attestation = a.id AND substr(r.id, 21) = substr(a.id, 21)
    LEFT JOIN struck s ON s.id = a.id
    {only}
),
per AS (
    SELECT tag,
        count(*) AS attested,
        json_group_array(id) FILTER (WHERE retracted) AS retracted,
        json_group_array(json_array(id, claim, overturned_by))
            FILTER (WHERE overturned_by IS NOT NULL) AS overturned,
        count(*) FILTER (WHERE retracted OR overturned_by IS NOT NULL) AS strikes
    FROM att GROUP BY tag
)
SELECT lower(hex(m.member)), per.attested, per.retracted, per.overturned, per.strikes
FROM per JOIN sereus_members m ON m.tag = per.tag
"""


def standing(
    alias: str, settings: Settings | None = None, *, tags: Iterable[str] | None = None
) -> dict[str, WitnessStanding]:
    """Every witness's standing in the thread whose database is ``alias``, keyed by member
    (only the witnesses whose row tags are ``tags``, if given)."""
    settings = settings or settings_of(alias)
    _effect, overturned = _effective(alias)
    params = [json.dumps(sorted(overturned.items()))]
    only = ""
    if tags is not None:
        only = "WHERE substr(a.id, 21) IN (SELECT value FROM json_each(%s))"
        params.append(json.dumps(sorted(tags)))
    found: dict[str, WitnessStanding] = {}
    for witness, attested, retracted, over, strikes in _rows(
        alias, _STANDING.format(only=only), params
    ):
        found[witness] = WitnessStanding(
            member=witness,
            attested=int(attested),
            retracted=sorted(json.loads(retracted)),
            overturned=sorted(tuple(item) for item in json.loads(over)),
            flagged=int(strikes) >= settings.flag_after,
        )
    return found


# Only the flags, from the few rows that strike (the retractions, and the ``witnessed``
# attestations on overturned claims, found through the index on ``claim``): a claim's state
# needs no more, and this reads neither every attestation nor ``attested`` counts. Each
# attestation counts once (UNION), as in ``_STANDING``'s ``strikes``.
_FLAGGED = """
WITH overturned(claim) AS (SELECT json_extract(value, '$[0]') FROM json_each(%s)),
struck(id) AS (
    SELECT a.id FROM identity_retraction r
    JOIN identity_attestation a ON a.id = r.attestation AND substr(a.id, 21) = substr(r.id, 21)
    UNION
    SELECT a.id FROM overturned o
    JOIN identity_attestation a ON a.claim = o.claim
    WHERE a.verdict = 'witnessed'
)
SELECT lower(hex(m.member)) FROM struck JOIN sereus_members m ON m.tag = substr(struck.id, 21)
GROUP BY m.tag HAVING count(*) >= %s
"""


def flagged(alias: str, settings: Settings | None = None) -> set[str]:
    """The flagged witnesses (member keys): the same as ``standing``'s ``flagged``, without
    counting what every witness attested."""
    settings = settings or settings_of(alias)
    _effect, overturned = _effective(alias)
    params = [json.dumps(sorted(overturned.items())), settings.flag_after]
    return {member for (member,) in _rows(alias, _FLAGGED, params)}


# -- claim states ------------------------------------------------------------------------------

# Unretracted attestations grouped per claim (one pass, no query per claim): who witnessed,
# who disputes, and which witnesses the thread trusts for the claim's kind; then every claim
# with its subject. ``{only}`` narrows both to the claims asked for (a claim's page).
_CLAIMS = """
WITH overturned(claim) AS (SELECT value FROM json_each(%s)),
att AS (
    SELECT a.claim AS claim, a.verdict AS verdict, lower(hex(m.member)) AS witness
    FROM identity_attestation a
    JOIN sereus_members m ON m.tag = substr(a.id, 21)
    WHERE NOT EXISTS (
        SELECT 1 FROM identity_retraction r
        WHERE r.attestation = a.id AND substr(r.id, 21) = substr(a.id, 21)
    ) {only_att}
),
words AS (
    SELECT claim,
        json_group_array(DISTINCT witness) FILTER (WHERE verdict = 'witnessed') AS attested,
        json_group_array(DISTINCT witness) FILTER (WHERE verdict = 'disputed') AS disputes
    FROM att GROUP BY claim
),
trusted AS (
    SELECT att.claim AS claim, json_group_array(DISTINCT att.witness) AS members
    FROM att
    JOIN identity_claim c ON c.id = att.claim
    JOIN identity_authority au ON au.member = att.witness AND au.kind = c.kind AND NOT au.revoked
    WHERE att.verdict = 'witnessed'
    GROUP BY att.claim
)
SELECT c.id, lower(hex(s.member)), c.kind, c.withdrawn,
    c.id IN (SELECT claim FROM overturned), w.attested, w.disputes, t.members
FROM identity_claim c
JOIN sereus_members s ON s.tag = substr(c.id, 21)
LEFT JOIN words w ON w.claim = c.id
LEFT JOIN trusted t ON t.claim = c.id
{only_claim}
"""
_ONLY = "(SELECT value FROM json_each(%s))"


def claim_states(
    alias: str,
    claim_ids: list[str] | None = None,
    *,
    settings: Settings | None = None,
    flags: Set[str] | None = None,
) -> dict[str, ClaimState]:
    """The state of each claim (all, or ``claim_ids``), keyed by claim id; ``flags``: the
    flagged witnesses, if the caller has them (``flagged``)."""
    settings = settings or settings_of(alias)
    is_flagged = flagged(alias, settings) if flags is None else flags
    _effect, overturned = _effective(alias)
    params = [json.dumps(sorted(overturned))]
    if claim_ids is None:
        sql = _CLAIMS.format(only_att="", only_claim="")
    else:
        chosen = json.dumps([c.replace("-", "").lower() for c in claim_ids])
        sql = _CLAIMS.format(
            only_att=f"AND a.claim IN {_ONLY}", only_claim=f"WHERE c.id IN {_ONLY}"
        )
        params += [chosen, chosen]
    found: dict[str, ClaimState] = {}
    for pk, subject, kind, withdrawn, over, attested, disputes, trusted in _rows(
        alias, sql, params
    ):
        # The rules refuse a subject's word on their own claim; never counted here either.
        everyone = sorted(w for w in json.loads(attested or "[]") if w != subject)
        counting = [w for w in everyone if w not in is_flagged]
        authorities = sorted(w for w in json.loads(trusted or "[]") if w != subject)
        authority = authorities[0] if authorities else None
        if withdrawn:
            state = WITHDRAWN
        elif over:
            state = OVERTURNED
        elif len(counting) >= settings.witnesses or authority is not None:
            state = VERIFIED
        else:
            state = PENDING
        found[pk] = ClaimState(
            claim=pk,
            subject=subject,
            kind=kind,
            state=state,
            witnesses=counting,
            disputes=sorted(json.loads(disputes or "[]")),
            authority=authority,
            needed=settings.witnesses,
            flagged=[w for w in everyone if w in is_flagged],
        )
    return found


def overturned_by(alias: str) -> dict[str, str]:
    """Each overturned claim -> the challenge in effect that overturned it."""
    return _effective(alias)[1]


def challenges_in_effect(alias: str) -> set[str]:
    return _effective(alias)[0]
