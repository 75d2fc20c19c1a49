"""The achievement services on this node (Alice, the club's owner, unless said): what they write,
and every refusal in words with its code; the outcome a side's node writes on its own, by hand
and through the worker."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator

import pytest

from apps.core.thread import payloads as p
from apps.core.threads.context import thread_context
from apps.identity import evidence, formats, services, standing
from apps.identity.models import Attestation, Challenge, Claim, Outcome
from apps.identity.policy import identity_spec
from apps.identity.services import IdentityError
from apps.voting import services as voting
from apps.voting.models import Poll
from tests.identity.support import Club
from tests.identity.support import club as club_make
from tests.support.cut_off import carols_conversation

PNG = b"\x89PNG\r\n\x1a\n" + b"\x01" * 100
PDF = b"%PDF-1.7\n" + b"\x02" * 100


@contextlib.contextmanager
def refused(code: str, words: str) -> Iterator[pytest.ExceptionInfo]:
    """The service raises ``IdentityError`` with this code and these words."""
    with pytest.raises(IdentityError, match=words) as error:
        yield error
    assert error.value.code == code, (error.value.code, str(error.value))


def check(error: pytest.ExceptionInfo, code: str, *keys: str) -> None:
    assert error.value.code == code
    for key in keys:
        assert key not in str(error.value)


def make(club: Club, title: str = "Ran a marathon", **more) -> str:
    return services.claim_make(thread=club.thread, kind="race", title=title, **more)


def verified_of_eli(club: Club) -> str:
    claim = club.eli.claim("Climbed the north face")
    club.sync()
    club.fay.attest(claim)
    club.gus.attest(claim)
    club.sync()
    return claim


# -- claims ----------------------------------------------------------------------------------


def test_a_claim_with_evidence_is_sealed_and_described(club):
    claim = make(
        club,
        description="  42 km\nin the rain ",
        event_date="2026-10-04",
        place="Berlin",
        files=[("finish.png", "image/png", PNG), ("bib.pdf", "text/plain", PDF)],
    )
    row = Claim.objects.using(club.alias).get(pk=claim)
    assert row.description == "42 km\nin the rain"
    described = json.loads(row.evidence)
    assert [(d["name"], d["mime"], d["size"]) for d in described] == [
        ("finish.png", "image/png", len(PNG)),
        ("bib.pdf", "application/pdf", len(PDF)),  # the bytes say PDF, whatever was claimed
    ]
    files = evidence.files_of(club.thread, row.evidence)
    assert all(f.complete for f in files)
    assert b"".join(evidence.file_bytes(club.thread, files[0])) == PNG
    club.sync()
    on_eli = evidence.files_of(
        club.thread, Claim.objects.using(club.eli.alias).get(pk=claim).evidence
    )
    assert [f.name for f in on_eli] == ["finish.png", "bib.pdf"]


def test_claims_refused_in_words(club):
    with refused("invalid", "keeps no kind of achievement called chess") as error:
        services.claim_make(thread=club.thread, kind="chess", title="Won")
    check(error, "invalid")
    with refused("invalid", "a claim's title is needed") as error:
        make(club, "   ")
    check(error, "invalid")
    with refused("invalid", "at most 120 characters"):
        make(club, "x" * 121)
    with refused("invalid", "a day like 2026-05-17"):
        make(club, event_date="2026-02-30")
    with refused("invalid", "at most 10 evidence files"):
        make(club, files=[("a.png", "", PNG)] * 11)
    with refused("invalid", "run.sh is not a photo, a video or a PDF"):
        make(club, files=[("run.sh", "image/png", b"#!/bin/sh\necho hi\n")])
    with refused("invalid", "empty.png is empty"):
        make(club, files=[("empty.png", "image/png", b"")])
    with refused("invalid", "NUL"):
        make(club, "bad\x00title")
    services.kind_retire(thread=club.thread, slug="race")
    with refused("invalid", "keeps no kind of achievement called race"):
        make(club)


def test_where_identity_is_not_enabled_the_services_say_so(node):
    from apps.messaging import services as messaging

    chat = messaging.conversation_create(name="Plain", my_name="Alice")
    with refused("not_enabled", "enables the identity app first") as error:
        services.claim_make(thread=chat, kind="race", title="x")
    check(error, "not_enabled")
    services.identity_enable(thread=chat)
    with refused("conflict", "already enabled"):
        services.identity_enable(thread=chat)


def test_withdrawing_only_ones_own_claim_once(club):
    mine, elis = make(club), club.eli.claim("Eli's")
    club.sync()
    with refused("forbidden", "only the member who made a claim withdraws it") as error:
        services.claim_withdraw(thread=club.thread, claim=elis)
    check(error, "forbidden", elis)
    services.claim_withdraw(thread=club.thread, claim=mine)
    with refused("conflict", "already withdrawn"):
        services.claim_withdraw(thread=club.thread, claim=mine)
    assert standing.claim_states(club.alias)[mine].state == "withdrawn"
    with refused("not_found", "no such claim"):
        services.claim_withdraw(thread=club.thread, claim="0" * 32)
    with refused("invalid", "not a claim of this thread"):
        services.claim_withdraw(thread=club.thread, claim="nonsense")


# -- attestations and retractions --------------------------------------------------------------


def test_an_attestation_is_signed_over_the_claims_digest(club):
    claim = club.eli.claim("Swam across")
    club.sync()
    pk = services.attest(thread=club.thread, claim=claim, verdict="witnessed", note="I was there")
    assert pk == formats.attestation_id(bytes.fromhex(club.me), claim)
    row = Attestation.objects.using(club.alias).get(pk=pk)
    columns = {
        c: getattr(Claim.objects.using(club.alias).get(pk=claim), c) for c in formats.CLAIM_COLUMNS
    }
    digest = formats.claim_digest(claim, columns)
    assert row.digest == digest.hex()
    problem = formats.endorsement_problem(
        row.jws,
        digest=digest,
        subject=bytes.fromhex(club.eli.member),
        witness=bytes.fromhex(club.me),
        verdict="witnessed",
        note="I was there",
        kind="race",
        title="Swam across",
    )
    assert problem is None


def test_attestations_refused_in_words(club):
    mine, elis = make(club), club.eli.claim("Eli's")
    club.sync()
    with refused("forbidden", "cannot attest your own claim") as error:
        services.attest(thread=club.thread, claim=mine, verdict="witnessed")
    check(error, "forbidden", mine)
    with refused("invalid", "witnessed or disputed"):
        services.attest(thread=club.thread, claim=elis, verdict="maybe")
    with refused("invalid", "at most 500 characters"):
        services.attest(thread=club.thread, claim=elis, verdict="witnessed", note="n" * 501)
    with refused("not_found", "no such claim"):
        services.attest(thread=club.thread, claim="0" * 32, verdict="witnessed")
    services.attest(thread=club.thread, claim=elis, verdict="disputed")
    with refused("conflict", "already attested this claim"):
        services.attest(thread=club.thread, claim=elis, verdict="witnessed")
    gone = club.eli.claim("Gone")
    club.eli.withdraw(gone)
    club.sync()
    with refused("conflict", "was withdrawn"):
        services.attest(thread=club.thread, claim=gone, verdict="witnessed")


def test_a_retraction_is_final_and_once(club):
    elis = club.eli.claim("Eli's")
    club.sync()
    with refused("not_found", "have not attested this claim"):
        services.retract(thread=club.thread, claim=elis)
    services.attest(thread=club.thread, claim=elis, verdict="witnessed")
    services.retract(thread=club.thread, claim=elis, reason="another day")
    with refused("conflict", "already retracted"):
        services.retract(thread=club.thread, claim=elis)
    with refused("conflict", "already attested"):  # the same id: never again
        services.attest(thread=club.thread, claim=elis, verdict="witnessed")
    mine = standing.standing(club.alias)[club.me]
    assert len(mine.retracted) == 1


# -- settings ----------------------------------------------------------------------------------


def test_settings_kinds_and_authorities_by_a_manager(club):
    services.settings_set(thread=club.thread, witnesses=3, flag_after=4)
    services.settings_set(thread=club.thread, witnesses=1, flag_after=1)
    assert standing.settings_of(club.alias) == standing.Settings(1, 1)
    for k, flag, words in ((0, 2, "1 to 50"), (51, 2, "1 to 50"), (2, 0, "1 to 50")):
        with refused("invalid", words):
            services.settings_set(thread=club.thread, witnesses=k, flag_after=flag)
    with refused("invalid", "whole numbers"):
        services.settings_set(thread=club.thread, witnesses="two", flag_after=2)
    services.kind_add(thread=club.thread, slug="first-aid", label="First aid")
    with refused("conflict", "already keeps the kind first-aid"):
        services.kind_add(thread=club.thread, slug="first-aid")
    with refused("invalid", "lowercase letters, digits or dashes"):
        services.kind_add(thread=club.thread, slug="First Aid")
    with refused("not_found", "no kind called chess"):
        services.kind_retire(thread=club.thread, slug="chess")
    services.kind_retire(thread=club.thread, slug="first-aid")
    services.kind_add(thread=club.thread, slug="first-aid")  # back in use
    services.authority_add(thread=club.thread, kind="race", member=club.dana.member)
    with refused("conflict", "already trusted"):
        services.authority_add(thread=club.thread, kind="race", member=club.dana.member)
    with refused("invalid", "not a member of this thread") as error:
        services.authority_add(thread=club.thread, kind="race", member="ab" * 32)
    check(error, "invalid", "ab" * 32)
    with refused("invalid", "no kind called chess"):
        services.authority_add(thread=club.thread, kind="chess", member=club.dana.member)
    services.authority_revoke(thread=club.thread, kind="race", member=club.dana.member)
    with refused("not_found", "not trusted for that kind"):
        services.authority_revoke(thread=club.thread, kind="race", member=club.dana.member)
    with refused("conflict", "a revocation is final"):
        services.authority_add(thread=club.thread, kind="race", member=club.dana.member)


def test_a_writer_may_not_change_settings(tmp_path, node):
    """Carol's conversation with identity enabled, where this node is the writer Bob."""
    conversation = carols_conversation(tmp_path, name="Club")
    conversation.carol.database.write(lambda w: w.control(p.EnableApp(identity_spec())))
    conversation.receive_from_carol()
    thread = conversation.thread
    thread.refresh_from_db()
    for action in (
        lambda: services.kind_add(thread=thread, slug="race"),
        lambda: services.settings_set(thread=thread, witnesses=3, flag_after=2),
        lambda: services.authority_add(thread=thread, kind="race", member=thread.member_id),
    ):
        with refused("forbidden", "only the thread's owner and admins") as error:
            action()
        check(error, "forbidden", thread.member_id)


# -- challenges --------------------------------------------------------------------------------


def test_challenges_refused_in_words(club):
    pending = club.eli.claim("Pending")
    club.sync()
    with refused("conflict", "only a verified claim is challenged"):
        services.challenge_make(thread=club.thread, feat="x", mode="poll", claim=pending)
    mine = make(club)
    with refused("forbidden", "cannot challenge your own claim"):
        services.challenge_make(thread=club.thread, feat="x", mode="poll", claim=mine)
    claim = verified_of_eli(club)
    base = {"thread": club.thread, "feat": "Run it again", "claim": claim}
    with refused("invalid", "judges or by a poll"):
        services.challenge_make(**base, mode="dice")
    with refused("invalid", "the feat is needed"):
        services.challenge_make(**{**base, "feat": " "}, mode="poll")
    with refused("invalid", "a day like 2026-06-01"):
        services.challenge_make(**base, mode="poll", deadline="soon")
    with refused("invalid", "the deadline has passed already"):
        services.challenge_make(**base, mode="poll", deadline="2020-01-01")
    with refused("invalid", "a claim or a challenge, not both"):
        services.challenge_make(**base, mode="poll", against=claim)
    with refused("invalid", "at least one judge"):
        services.challenge_make(**base, mode="judges")
    with refused("invalid", "neither side of a challenge judges it"):
        services.challenge_make(**base, mode="judges", judges=[club.eli.member])
    with refused("invalid", "a witness of the claim cannot judge"):
        services.challenge_make(**base, mode="judges", judges=[club.fay.member])
    with refused("invalid", "at most 9 judges"):
        services.challenge_make(**base, mode="judges", judges=[str(n) for n in range(10)])
    with refused("invalid", "a duel names the member it challenges"):
        services.challenge_make(thread=club.thread, feat="x", mode="poll")
    with refused("invalid", "cannot challenge yourself"):
        services.challenge_make(thread=club.thread, feat="x", mode="poll", defendant=club.me)
    duel = services.challenge_make(
        thread=club.thread, feat="Arm wrestling", mode="judges", defendant=club.gus.member,
        judges=[club.dana.member],
    )  # fmt: skip
    with refused("conflict", "only a challenge its challenger won is challenged back"):
        services.challenge_make(thread=club.thread, feat="x", mode="poll", against=duel)
    with refused("forbidden", "cannot challenge back your own challenge"):
        # Even when won: the challenger does not challenge their own win.
        club.sync()
        club.gus.accept(duel)
        club.sync()
        club.dana.judge(duel, "challenger")
        club.sync()
        assert services.outcome_record(thread=club.thread, challenge=duel)
        services.challenge_make(thread=club.thread, feat="x", mode="poll", against=duel)


def test_a_poll_challenge_needs_voting_and_leaves_out_sides_and_witnesses(tmp_path, node):
    club = club_make(tmp_path, voting=False)
    claim = verified_of_eli(club)
    with refused("not_enabled", "needs the voting app") as error:
        services.challenge_make(thread=club.thread, feat="x", mode="poll", claim=claim)
    check(error, "not_enabled")
    voting.voting_enable(thread=club.thread)
    club.thread.refresh_from_db()
    made = services.challenge_make(
        thread=club.thread, feat="Run it again", mode="poll", claim=claim
    )
    row = Challenge.objects.using(club.alias).get(pk=made)
    poll = Poll.objects.using(club.alias).get(pk=row.poll)
    assert json.loads(poll.electorate) == [club.dana.member]
    assert json.loads(poll.options) == ["The defendant wins", "The challenger wins"]


def test_accepting_and_judging_refused_in_words(club):
    claim = verified_of_eli(club)
    made = club.dana.challenge(defendant=club.eli.member, claim=claim, judges=[club.me])
    polled = services.challenge_make(thread=club.thread, feat="x", mode="poll", claim=claim)
    club.sync()
    with refused("forbidden", "only the member challenged accepts"):
        services.challenge_accept(thread=club.thread, challenge=made)
    with refused("conflict", "the defendant has not accepted this challenge yet"):
        services.judge(thread=club.thread, challenge=made, winner="challenger")
    with refused("invalid", "the challenger or the defendant"):
        services.judge(thread=club.thread, challenge=made, winner="nobody")
    with refused("forbidden", "not a judge of this challenge"):
        services.judge(thread=club.thread, challenge=polled, winner="challenger")
    with refused("not_found", "no such challenge"):
        services.challenge_accept(thread=club.thread, challenge="0" * 32)
    assert services.outcome_record(thread=club.thread, challenge=made) is False
    club.eli.accept(made)
    club.sync()
    services.judge(thread=club.thread, challenge=made, winner="defendant")
    with refused("conflict", "already decided"):
        # This node wrote nothing yet, but the majority (one judge of one) decided; Dana's
        # node is a side and records it.
        club.sync()
        assert [*services.outcomes_due(thread=club.thread)] == []
        club.dana.outcome(made, "defendant")
        club.sync()
        services.judge(thread=club.thread, challenge=made, winner="challenger")
    assert services.outcome_record(thread=club.thread, challenge=made) is False


def test_a_side_writes_the_outcome_on_its_own(club):
    claim = make(club)
    club.sync()
    club.eli.attest(claim)
    club.fay.attest(claim)
    club.sync()
    made = club.gus.challenge(defendant=club.me, claim=claim, judges=[club.dana.member])
    club.sync()
    services.challenge_accept(thread=club.thread, challenge=made)
    assert services.outcomes_due(thread=club.thread) == []  # not decided yet
    club.sync()
    club.dana.judge(made, "defendant")
    club.sync()
    assert services.outcomes_due(thread=club.thread) == [made]  # the defendant's node
    assert services.outcomes_due(thread=club.thread) == []  # once
    (outcome,) = Outcome.objects.using(club.alias).filter(challenge=made)
    assert outcome.winner == "defendant"
    assert standing.claim_states(club.alias)[claim].state == "verified"


@pytest.mark.django_db(transaction=True)
def test_the_worker_writes_the_outcome_when_the_deciding_op_arrives(club):
    from apps.identity import duties

    claim = make(club)
    club.sync()
    club.eli.attest(claim)
    club.fay.attest(claim)
    club.sync()
    decided = club.gus.challenge(defendant=club.me, claim=claim, judges=[club.dana.member])
    club.sync()
    services.challenge_accept(thread=club.thread, challenge=decided)
    club.sync()
    duties.install()  # this test: the real worker, woken by the judgement's arrival
    club.dana.judge(decided, "challenger")
    club.dana.send()
    deadline = time.monotonic() + 20
    while not Outcome.objects.using(club.alias).filter(challenge=decided).exists():
        assert time.monotonic() < deadline, "the duty did not write the outcome"
        time.sleep(0.1)
    with thread_context(club.thread.thread):
        assert Outcome.objects.get(challenge=decided).winner == "challenger"
    assert standing.claim_states(club.alias)[claim].state == "overturned"


def test_a_poll_challenges_deadline_is_its_planned_end_and_the_outcome_follows(club):
    from datetime import timedelta

    from django.utils import timezone

    claim = verified_of_eli(club)
    ends = (timezone.now() + timedelta(hours=2)).replace(microsecond=0)
    made = services.challenge_make(
        thread=club.thread, feat="Run it again", mode="poll", claim=claim,
        deadline=ends.isoformat(),
    )  # fmt: skip
    row = Challenge.objects.using(club.alias).get(pk=made)
    assert row.deadline == ends.isoformat()
    poll = Poll.objects.using(club.alias).get(pk=row.poll)
    assert poll.ends_at == ends
    club.sync()
    club.dana.vote(row.poll.hex, 1)
    club.sync()
    assert services.outcomes_due(thread=club.thread) == []  # not yet ended
    assert voting.polls_due(thread=club.thread, now=ends + timedelta(seconds=1)) == [row.poll.hex]
    assert services.outcomes_due(thread=club.thread) == [made]
    assert Outcome.objects.using(club.alias).get(challenge=made).winner == "challenger"
    assert standing.claim_states(club.alias)[claim].state == "overturned"


def test_an_evidence_file_over_25_mb_is_refused_and_nothing_is_claimed(club):
    big = PNG + b"\x00" * (evidence.MAX_FILE_BYTES - len(PNG) + 1)
    with refused("invalid", "huge.png: the file is larger than 25 MiB"):
        make(club, "Too big", files=[("huge.png", "image/png", big)])
    assert not Claim.objects.using(club.alias).filter(title="Too big").exists()


def test_an_attestation_turned_over_by_an_earlier_withdrawal_is_told_in_words(club):
    from apps.identity import selectors

    claim = club.eli.claim("Ran a marathon")
    club.sync()
    club.eli.withdraw(claim)  # on Eli's node, before this node hears of it
    services.attest(thread=club.thread, claim=claim, verdict="witnessed")  # accepted here
    assert Attestation.objects.using(club.alias).filter(claim=claim).exists()
    club.sync()
    assert not Attestation.objects.using(club.alias).filter(claim=claim).exists()
    said = selectors.refused_mine(club.thread)
    assert said == {claim: ["Your word on this claim was refused: the claim was withdrawn."]}
    assert selectors.claim(club.thread, claim).refused == said[claim]
