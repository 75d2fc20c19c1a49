"""What the selectors return (``selectors`` re-exports them): frozen views with people named,
member keys kept only for links and the API."""

from __future__ import annotations

from dataclasses import dataclass, field

from apps.identity import evidence as evidence_files
from apps.identity import standing


@dataclass(frozen=True)
class AttestationView:
    id: str
    witness: str  # member hex (links, API)
    witness_name: str
    verdict: str  # witnessed | disputed
    note: str
    retracted: bool
    retraction_reason: str
    counts: bool  # it counts towards the claim's verification now
    flagged: bool  # its witness is flagged
    authority: bool  # its witness is trusted for the claim's kind
    mine: bool
    jws: str


@dataclass(frozen=True)
class ChallengeRef:
    id: str
    feat: str
    state: str
    winner: str | None
    winner_name: str | None = None  # "you", a member's name: what the claim's page says


@dataclass(frozen=True)
class ClaimView:
    id: str
    subject: str
    subject_name: str
    mine: bool
    kind: str
    kind_label: str
    title: str
    description: str
    event_date: str
    place: str
    evidence: list[evidence_files.EvidenceFile]
    withdrawn: bool
    state: str  # verified | pending | overturned | withdrawn
    needed: int  # k
    witnesses: list[str]  # names of the witnesses who count
    disputes: list[str]  # names of those disputing it
    authority_name: str | None
    attestations: list[AttestationView]
    my_verdict: str | None  # this member's word, if given
    my_retracted: bool
    challenges: list[ChallengeRef]
    overturned_by: str | None  # the challenge in effect that overturned it
    # This node's writes on it that the thread refused later, as sentences.
    refused: list[str] = field(default_factory=list)

    @property
    def counting(self) -> int:
        return len(self.witnesses)

    @property
    def verified(self) -> bool:
        return self.state == standing.VERIFIED


@dataclass(frozen=True)
class JudgeView:
    member: str
    name: str
    said: str | None  # the side this judge named, if judged
    mine: bool


@dataclass(frozen=True)
class ChallengeView:
    id: str
    challenger: str
    challenger_name: str
    defendant: str
    defendant_name: str
    mine: bool  # this member is the challenger
    defending: bool  # this member is the defendant
    claim: str | None
    claim_title: str
    against: str | None
    feat: str
    deadline: str
    mode: str  # judges | poll
    judges: list[JudgeView]
    poll: str | None
    poll_state: str | None  # the voting poll's state
    accepted: bool
    winner: str | None  # challenger | defendant, once the outcome is written
    winner_name: str | None
    in_effect: bool  # won by its challenger and not undone by a challenge back
    state: str  # waiting_accept | judging | voting | decided
    can_accept: bool
    can_judge: bool


@dataclass(frozen=True)
class StrikeView:
    attestation: str
    claim: str
    claim_title: str
    challenge: str | None  # the challenge that overturned the claim (None: retracted)
    challenge_feat: str


@dataclass(frozen=True)
class WitnessView:
    member: str
    name: str
    mine: bool
    attested: int
    retracted: list[StrikeView]
    overturned: list[StrikeView]
    strikes: int
    flag_after: int
    flagged: bool


@dataclass(frozen=True)
class KindView:
    slug: str
    label: str
    retired: bool
    claims: int


@dataclass(frozen=True)
class AuthorityView:
    kind: str
    kind_label: str
    member: str
    name: str
    revoked: bool


@dataclass(frozen=True)
class SettingsView:
    witnesses: int
    flag_after: int
    seq: int
    can_manage: bool
