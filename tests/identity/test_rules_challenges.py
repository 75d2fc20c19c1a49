"""The identity app's rules for challenges, duels, judgements and outcomes through real
replicas (issue 19, ADR 26): forged ops from a modified node are refused by every fresh replica,
fed every op in shuffled orders and judging in strict purity mode, with the same reason."""

from __future__ import annotations

import pytest

from apps.core.thread import payloads as p
from apps.core.thread.writer import WriteError
from apps.identity import rules
from apps.identity.policy import ACCEPT, CHALLENGE, JUDGEMENT, OUTCOME
from tests.core.thread.conftest import rid
from tests.identity.rules_support import (
    Group,
    accept,
    attestation,
    ballot,
    challenge,
    claim,
    claim_cols,
    close,
    club,
    judgement,
    kind,
    outcome,
    poll,
    write,
)
from tests.support.replica_groups import (
    accepted_everywhere,
    forged,
    refused_alike,
    refused_everywhere,
    rows_everywhere,
)

WITNESS_JUDGES = "a witness of the claim does not judge its challenge"
BOTH = "a challenge is of a claim or of a challenge, not both"
LEFT_OUT = "neither side of a challenge nor a witness of the claim votes in its poll"
WHICH_SIDE = "a challenge's poll asks, by a named single choice, which side wins"


@pytest.fixture
def group() -> tuple[Group, str]:
    """Carol's claim, witnessed by Dave."""
    made = club()
    write(made, made.alice, kind(made.alice, "climb"))
    pk, change = claim(made.carol)
    write(made, made.carol, change)
    write(made, made.dave, attestation(made.dave, made.carol, pk, claim_cols()))
    return made, pk


# -- challenges ---------------------------------------------------------------------------------


def test_a_challenge_names_the_claims_subject_and_judges_outside_the_dispute(group):
    g, pk = group
    sides, judges = "neither side of a challenge judges it", {"judges": (g.bob,)}
    cases = [
        (g.carol, g.carol, judges, "you cannot challenge your own claim"),
        (g.erin, g.finn, judges, "the defendant of a challenged claim is its subject"),
        (g.erin, g.carol, {"judges": (g.dave,)}, WITNESS_JUDGES),
        (g.erin, g.carol, {"judges": (g.carol,)}, sides),
        (g.erin, g.carol, {"judges": (g.erin, g.bob)}, sides),
        (g.erin, g.carol, {"judges": ()}, "a challenge names 1 to 9 judges"),
        (g.erin, g.carol, {"judges": (g.bob, g.bob)}, "a challenge names each judge once"),
        (
            g.erin,
            g.carol,
            {**judges, "feat": ""},
            "a challenge states the feat in 1 to 500 characters",
        ),
        (
            g.erin,
            g.carol,
            {**judges, "mode": "dice"},
            "a challenge is decided by judges or by a poll",
        ),
        (g.erin, g.carol, {**judges, "against": pk}, BOTH),
    ]
    for number, (writer, defendant, given, reason) in enumerate(cases):
        _, change = challenge(writer, defendant, name=f"c{number}", claim_pk=pk, **given)
        with pytest.raises(WriteError):
            writer.write_data([change])
        refused_everywhere(g, forged(g, writer, change), reason, CHALLENGE)
    _, honest = challenge(g.erin, g.carol, claim_pk=pk, judges=(g.bob, g.finn, g.alice))
    accepted_everywhere(g, write(g, g.erin, honest))
    again = forged(g, g.erin, p.RowChange(CHALLENGE, honest.pk, p.UPSERT, {"feat": "Other"}))
    refused_alike(g, again)


def test_a_duel_names_another_member_and_a_withdrawn_claim_is_not_challenged(group):
    g, pk = group
    _, duel = challenge(g.erin, g.finn, name="duel", judges=(g.bob,))
    accepted_everywhere(g, write(g, g.erin, duel))
    _, alone = challenge(g.erin, g.erin, name="alone", judges=(g.bob,))
    refused_everywhere(g, forged(g, g.erin, alone), "you cannot challenge yourself", CHALLENGE)
    _, nobody = challenge(g.erin, "zz" * 32, name="nobody", judges=(g.bob,))
    reason = "a challenge names its defendant, a member of the thread"
    refused_everywhere(g, forged(g, g.erin, nobody), reason, CHALLENGE)
    write(g, g.carol, p.RowChange("identity_claim", pk, p.UPSERT, {"withdrawn": 1}))
    _, late = challenge(g.erin, g.carol, name="late", claim_pk=pk, judges=(g.bob,))
    refused_everywhere(g, forged(g, g.erin, late), "the claim was withdrawn", CHALLENGE)


# -- judges: acceptance, judgements, outcome ----------------------------------------------------


def test_judges_decide_a_challenge_the_defendant_accepted_and_a_minority_outcome_is_refused(group):
    g, pk = group
    judges = (g.bob, g.finn, g.alice)
    cpk, change = challenge(g.erin, g.carol, claim_pk=pk, judges=judges)
    write(g, g.erin, change)
    early = forged(g, g.bob, judgement(g.bob, cpk, "challenger"))
    refused_everywhere(g, early, "the defendant has not accepted the challenge yet", JUDGEMENT)
    by_other = forged(g, g.erin, accept(g.erin, cpk))
    refused_everywhere(g, by_other, "only the defendant accepts a challenge", ACCEPT)
    accepted = write(g, g.carol, accept(g.carol, cpk))
    not_judge = forged(g, g.dave, judgement(g.dave, cpk, "defendant"))
    refused_everywhere(g, not_judge, "only the challenge's judges judge it", JUDGEMENT)
    bad = forged(g, g.finn, judgement(g.finn, cpk, "nobody"))
    reason = "a judgement says the challenger or the defendant wins"
    refused_everywhere(g, bad, reason, JUDGEMENT)
    one = write(g, g.bob, judgement(g.bob, cpk, "challenger"))
    # Alice, a judge, attests the claim after the challenge named her: she no longer judges.
    write(g, g.alice, attestation(g.alice, g.carol, pk, claim_cols()))
    witness = forged(g, g.alice, judgement(g.alice, cpk, "defendant"))
    refused_everywhere(g, witness, WITNESS_JUDGES, JUDGEMENT)
    # A forged outcome on one judge's word of three: a minority.
    minority = forged(g, g.erin, outcome(g.erin, cpk, "challenger"))
    reason = "a majority of the judges has not decided the challenge yet"
    refused_everywhere(g, minority, reason, OUTCOME)
    two = write(g, g.finn, judgement(g.finn, cpk, "challenger"))
    wrong = forged(g, g.carol, outcome(g.carol, cpk, "defendant"))
    reason = "the judges decided that the challenger won, not the defendant"
    refused_everywhere(g, wrong, reason, OUTCOME)
    decided = write(g, g.erin, outcome(g.erin, cpk, "challenger"))
    accepted_everywhere(g, accepted, one, two, decided)
    # One outcome per challenge, whoever writes it; no judgement after it.
    second = forged(g, g.carol, outcome(g.carol, cpk, "challenger"))
    refused_everywhere(g, second, "the challenge already has its outcome", OUTCOME)
    late = forged(g, g.alice, judgement(g.alice, cpk, "defendant"))
    refused_everywhere(g, late, "the challenge is already decided", JUDGEMENT)
    assert [r["winner"] for r in rows_everywhere(g, OUTCOME).values()] == ["challenger"]


def test_a_won_challenge_is_challenged_back_by_anyone_but_its_challenger(group):
    g, pk = group
    cpk, change = challenge(g.erin, g.carol, claim_pk=pk, judges=(g.bob,))
    write(g, g.erin, change)
    _, early = challenge(g.carol, g.erin, name="back0", against=cpk, judges=(g.finn,))
    reason = "only a challenge its challenger won is challenged back"
    refused_everywhere(g, forged(g, g.carol, early), reason, CHALLENGE)
    write(g, g.carol, accept(g.carol, cpk))
    write(g, g.bob, judgement(g.bob, cpk, "challenger"))
    write(g, g.carol, outcome(g.carol, cpk, "challenger"))
    _, self_back = challenge(g.erin, g.erin, name="back1", against=cpk, judges=(g.finn,))
    refused_everywhere(g, forged(g, g.erin, self_back), "you cannot challenge yourself", CHALLENGE)
    _, wrong = challenge(g.carol, g.bob, name="back2", against=cpk, judges=(g.finn,))
    reason = "the defendant of a challenge back is the challenger who won"
    refused_everywhere(g, forged(g, g.carol, wrong), reason, CHALLENGE)
    _, back = challenge(g.carol, g.erin, name="back3", against=cpk, judges=(g.finn,))
    accepted_everywhere(g, write(g, g.carol, back))


# -- polls ----------------------------------------------------------------------------------------


def _polled(g: Group, pk: str, voters, name: str = "p", **given):
    """Erin challenges Carol's claim, decided by a poll opened in the same op."""
    poll_pk, opened = poll(g.erin, voters, name=name, **given)
    cpk, change = challenge(g.erin, g.carol, name=f"c{name}", claim_pk=pk, poll=poll_pk)
    return poll_pk, cpk, [opened, change]


def test_a_challenges_poll_leaves_out_the_parties_and_the_witnesses(group):
    g, pk = group
    cases = [
        ([g.alice, g.dave], {}, LEFT_OUT),
        ([g.alice, g.carol], {}, LEFT_OUT),
        ([g.alice, g.erin], {}, LEFT_OUT),
        ([g.alice], {"method": "approval"}, WHICH_SIDE),
        ([g.alice], {"options": '["Yes", "No"]'}, WHICH_SIDE),
    ]
    for number, (voters, given, reason) in enumerate(cases):
        _, _, changes = _polled(g, pk, voters, name=f"bad{number}", **given)
        with pytest.raises(WriteError):
            g.erin.write_data(changes)
        refused_everywhere(g, forged(g, g.erin, *changes), reason, CHALLENGE)
    # A poll opened by someone else, or not opened at all.
    poll_pk, opened = poll(g.bob, [g.alice], name="bobs")
    write(g, g.bob, opened)
    _, theirs = challenge(g.erin, g.carol, name="theirs", claim_pk=pk, poll=poll_pk)
    reason = "a challenge's poll is opened by its challenger"
    refused_everywhere(g, forged(g, g.erin, theirs), reason, CHALLENGE)
    _, missing = challenge(g.erin, g.carol, name="missing", claim_pk=pk, poll="ab" * 16)
    reason = "a challenge decided by a poll opens it in the same write (voting must be on)"
    refused_everywhere(g, forged(g, g.erin, missing), reason, CHALLENGE)
    # Nobody accepts a challenge decided by a poll; its outcome waits for the close.
    poll_pk, cpk, changes = _polled(g, pk, [g.alice, g.bob, g.finn])
    made = write(g, g.erin, *changes)
    accepted_everywhere(g, made)
    reason = "a challenge decided by a poll needs no acceptance"
    refused_everywhere(g, forged(g, g.carol, accept(g.carol, cpk)), reason, ACCEPT)
    write(g, g.alice, ballot(g.alice, poll_pk, 1))
    early = forged(g, g.erin, outcome(g.erin, cpk, "challenger"))
    refused_everywhere(g, early, "the challenge's poll is not closed yet", OUTCOME)


def test_a_poll_outcome_is_counted_again_and_a_witness_who_votes_is_not_counted(group):
    g, pk = group
    poll_pk, cpk, changes = _polled(g, pk, [g.alice, g.bob, g.finn])
    write(g, g.erin, *changes)
    # Bob attests the claim after the poll opened: his ballot will not count.
    write(g, g.bob, attestation(g.bob, g.carol, pk, claim_cols()))
    write(g, g.alice, ballot(g.alice, poll_pk, 0))
    write(g, g.bob, ballot(g.bob, poll_pk, 1))
    write(g, g.finn, ballot(g.finn, poll_pk, 1))
    write(g, g.erin, close(g.erin, poll_pk))
    # Counted with Bob's ballot the challenger would win 2 to 1; without it, 1 to 1, a tie,
    # which keeps the defendant's side.
    forged_win = forged(g, g.erin, outcome(g.erin, cpk, "challenger"))
    reason = "the poll decided that the defendant won, not the challenger"
    refused_everywhere(g, forged_win, reason, OUTCOME)
    decided = write(g, g.carol, outcome(g.carol, cpk, "defendant"))
    accepted_everywhere(g, decided)


def test_a_closed_poll_decides_for_the_challenger_by_a_majority(group):
    g, pk = group
    poll_pk, cpk, changes = _polled(g, pk, [g.alice, g.bob, g.finn])
    write(g, g.erin, *changes)
    for voter, side in ((g.alice, 1), (g.bob, 1), (g.finn, 0)):
        write(g, voter, ballot(voter, poll_pk, side))
    write(g, g.erin, close(g.erin, poll_pk))
    wrong = forged(g, g.carol, outcome(g.carol, cpk, "defendant"))
    reason = "the poll decided that the challenger won, not the defendant"
    refused_everywhere(g, wrong, reason, OUTCOME)
    accepted_everywhere(g, write(g, g.finn, outcome(g.finn, cpk, "challenger")))
    assert rules.POLL_OPTIONS == ("The defendant wins", "The challenger wins")


def test_a_poll_decides_one_challenge_and_a_quorum_not_met_keeps_the_defendants_side(group):
    g, pk = group
    poll_pk, cpk, changes = _polled(g, pk, [g.alice, g.bob, g.finn], quorum=3)
    write(g, g.erin, *changes)
    _, reused = challenge(g.erin, g.gail, name="reused", poll=poll_pk)
    reason = "that poll already decides another challenge"
    refused_everywhere(g, forged(g, g.erin, reused), reason, CHALLENGE)
    write(g, g.alice, ballot(g.alice, poll_pk, 1))
    write(g, g.bob, ballot(g.bob, poll_pk, 1))
    write(g, g.erin, close(g.erin, poll_pk))
    # Two ballots of the three the quorum asks: the challenger did not carry it.
    won = forged(g, g.erin, outcome(g.erin, cpk, "challenger"))
    reason = "the poll decided that the defendant won, not the challenger"
    refused_everywhere(g, won, reason, OUTCOME)
    accepted_everywhere(g, write(g, g.carol, outcome(g.carol, cpk, "defendant")))


def test_acceptances_and_outcomes_stand_at_the_ids_that_follow_from_their_challenge(group):
    g, pk = group
    cpk, change = challenge(g.erin, g.carol, claim_pk=pk, judges=(g.bob,))
    write(g, g.erin, change)
    moved = accept(g.carol, cpk)
    moved = p.RowChange(ACCEPT, rid(g.carol, "accept"), p.UPSERT, moved.cols)
    reason = "a challenge is accepted under the id that follows from it"
    refused_everywhere(g, forged(g, g.carol, moved), reason, ACCEPT)
    write(g, g.carol, accept(g.carol, cpk))
    write(g, g.bob, judgement(g.bob, cpk, "defendant"))
    moved = outcome(g.carol, cpk, "defendant")
    moved = p.RowChange(OUTCOME, rid(g.carol, "outcome"), p.UPSERT, moved.cols)
    reason = "an outcome is recorded under the id that follows from its challenge"
    refused_everywhere(g, forged(g, g.carol, moved), reason, OUTCOME)
    nothing = forged(g, g.carol, outcome(g.carol, rid(g.erin, "none"), "defendant"))
    refused_everywhere(g, nothing, "there is no such challenge", OUTCOME)
    accepted_everywhere(g, write(g, g.dave, outcome(g.dave, cpk, "defendant")))
