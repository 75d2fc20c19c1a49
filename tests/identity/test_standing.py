"""Witness standing and claim states (``standing.py``, ADR 26).

Through the club (rows written by each member's own node, judged by every replica): a retracted
attestation no longer counting, flagging by retraction and by overturn, flagged witnesses not
counting, an authority counting only for its kind and not after revocation, a challenge back
undoing an overturn (and a second one redoing it), and every node deriving the same. Then
random histories written straight into a thread file, compared with a plain Python reckoning of
the ADR's words over the same rows."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.core.threads.database import WriteRefused
from apps.identity import formats, standing
from tests.identity.support import Club, Member


def states_on(alias: str) -> dict[str, str]:
    return {pk: s.state for pk, s in standing.claim_states(alias).items()}


def same_everywhere(club: Club) -> dict[str, str]:
    """The claim states and flags this node derives, checked equal on every member's node."""
    mine = states_on(club.alias)
    flags = {m: s.flagged for m, s in standing.standing(club.alias).items()}
    for member in club.others:
        assert states_on(member.alias) == mine, member.alias
        assert {m: s.flagged for m, s in standing.standing(member.alias).items()} == flags
    return mine


def decide(club: Club, challenger: Member, defendant: Member, judge: Member, winner: str, **what):
    """A challenge by judges, accepted, judged and recorded: its id."""
    made = challenger.challenge(defendant=defendant.member, judges=[judge.member], **what)
    club.sync()
    defendant.accept(made)
    club.sync()
    judge.judge(made, winner)
    club.sync()
    challenger.outcome(made, winner)
    club.sync()
    return made


def test_retractions_flag_a_witness_who_then_does_not_count(club):
    dana, eli, fay, gus = club.dana, club.eli, club.fay, club.gus
    first, second = dana.claim("Ran 10k"), dana.claim("Ran 20k")
    third = fay.claim("Swam a mile")
    club.sync()
    taken_back = [eli.attest(first), eli.attest(second)]
    eli.attest(third)
    gus.attest(third)
    club.sync()
    assert same_everywhere(club)[third] == "verified"
    eli.retract(taken_back[0], "wrong race")
    club.sync()
    assert not standing.standing(club.alias)[eli.member].flagged  # one strike of two
    eli.retract(taken_back[1])
    club.sync()
    found = standing.standing(club.alias)[eli.member]
    assert found.flagged
    assert sorted(found.retracted) == sorted(taken_back)
    assert found.attested == 3
    state = standing.claim_states(club.alias, [third])[third]
    assert state.state == "pending"
    assert state.witnesses == [gus.member]
    assert state.flagged == [eli.member]
    assert same_everywhere(club)[third] == "pending"


def test_a_retracted_attestation_no_longer_counts_on_any_node(club):
    """Eli and Fay verify Dana's claim (k = 2); Eli takes his word back: the claim is pending
    again on every node with Fay alone counting, though one retraction flags nobody yet."""
    claim = club.dana.claim("Ran a marathon")
    club.sync()
    eli = club.eli.attest(claim)
    club.fay.attest(claim)
    club.sync()
    assert same_everywhere(club)[claim] == "verified"
    club.eli.retract(eli, "it was the half marathon")
    club.sync()
    assert same_everywhere(club)[claim] == "pending"
    for alias in [club.alias, *(m.alias for m in club.others)]:
        state = standing.claim_states(alias, [claim])[claim]
        assert (state.witnesses, state.flagged) == ([club.fay.member], []), alias
        assert not standing.standing(alias)[club.eli.member].flagged, alias


def test_overturned_claims_strike_their_witnesses(club):
    eli, fay, gus, dana = club.eli, club.fay, club.gus, club.dana
    claims = [eli.claim("Ran a marathon"), eli.claim("Climbed K2")]
    club.sync()
    for claim in claims:
        fay.attest(claim)
        gus.attest(claim)
    club.sync()
    assert set(same_everywhere(club).values()) == {"verified"}
    with pytest.raises(WriteRefused, match="a witness of the claim does not judge"):
        dana.challenge(defendant=eli.member, claim=claims[0], judges=[fay.member])
    # A fair judge: this node (Alice) judges.
    extra = dana.challenge(defendant=eli.member, claim=claims[0], judges=[club.me])
    club.sync()
    eli.accept(extra)
    club.sync()
    from apps.identity import services

    services.judge(thread=club.thread, challenge=extra, winner="challenger")
    club.sync()
    assert services.outcomes_due(thread=club.thread) == []  # not a side: Dana's node writes it
    dana.outcome(extra, "challenger")
    club.sync()
    after = same_everywhere(club)
    assert after[claims[0]] == "overturned"
    assert after[claims[1]] == "verified"
    fay_standing = standing.standing(club.alias)[fay.member]
    assert [(c, ch) for _a, c, ch in fay_standing.overturned] == [(claims[0], extra)]
    assert not fay_standing.flagged
    second = decide(club, gus, eli, dana, "challenger", claim=claims[1])
    assert second in standing.challenges_in_effect(club.alias)
    # Gus challenged a claim he witnessed: he struck himself too, and both witnesses are out.
    flags = {m: s.flagged for m, s in standing.standing(club.alias).items()}
    assert flags[fay.member]
    assert flags[gus.member]
    assert same_everywhere(club)[claims[1]] == "overturned"


def test_an_authority_counts_for_its_kind_only_and_not_after_revocation(tmp_path, node):
    from tests.identity.support import club as club_make

    club = club_make(tmp_path, kinds=("race", "swim"))
    dana, eli = club.dana, club.eli
    authority = dana.authority_add("race", club.gus.member)
    race, swim = eli.claim("Ran 5k", kind="race"), eli.claim("Swam 1k", kind="swim")
    club.sync()
    club.gus.attest(race)
    club.gus.attest(swim)
    club.sync()
    found = same_everywhere(club)
    assert found[race] == "verified"
    assert found[swim] == "pending"
    assert standing.claim_states(club.alias, [race])[race].authority == club.gus.member
    dana.authority_revoke(authority)
    club.sync()
    assert same_everywhere(club)[race] == "pending"
    # A disputed word of an authority verifies nothing.
    other = eli.claim("Ran 8k", kind="race")
    club.sync()
    dana.authority_add("race", club.fay.member)
    club.fay.attest(other, verdict="disputed")
    club.sync()
    state = standing.claim_states(club.alias, [other])[other]
    assert state.state == "pending"
    assert state.disputes == [club.fay.member]


def test_a_challenge_back_undoes_an_overturn_and_another_redoes_it(club):
    dana, eli, fay, gus = club.dana, club.eli, club.fay, club.gus
    claim = eli.claim("Ran a marathon")
    club.sync()
    fay.attest(claim)
    gus.attest(claim)
    club.sync()
    first = dana.challenge(defendant=eli.member, claim=claim, judges=[club.me])
    club.sync()
    eli.accept(first)
    club.sync()
    from apps.identity import services

    services.judge(thread=club.thread, challenge=first, winner="challenger")
    club.sync()
    dana.outcome(first, "challenger")
    club.sync()
    assert same_everywhere(club)[claim] == "overturned"
    back = decide(club, eli, dana, gus, "challenger", against=first)
    assert same_everywhere(club)[claim] == "verified"
    assert standing.challenges_in_effect(club.alias) == {back}
    assert standing.standing(club.alias)[fay.member].overturned == []
    again = decide(club, dana, eli, fay, "challenger", against=back)
    assert same_everywhere(club)[claim] == "overturned"
    assert standing.challenges_in_effect(club.alias) == {first, again}
    lost = decide(club, eli, dana, gus, "defendant", against=again)
    assert same_everywhere(club)[claim] == "overturned"
    assert lost not in standing.challenges_in_effect(club.alias)


def test_forged_rows_of_a_modified_node_change_no_standing_anywhere(club):
    """Gus's modified node signs an outcome nobody decided, a retraction of Fay's word and an
    attestation over another digest: every replica refuses them and derives what it did."""
    from apps.core.thread import payloads as p
    from apps.core.threads import services as threads
    from apps.identity.policy import ATTESTATION, OUTCOME, RETRACTION
    from tests.support.replica_groups import forge_at

    dana, eli, fay, gus = club.dana, club.eli, club.fay, club.gus
    claim = eli.claim("Ran a marathon")
    club.sync()
    fays = fay.attest(claim)
    dana.attest(claim)
    club.sync()
    made = gus.challenge(defendant=eli.member, claim=claim, judges=[club.me])
    club.sync()
    before = same_everywhere(club)
    assert before[claim] == "verified"
    writer = gus.node.database.writer()
    me = bytes.fromhex(gus.member)
    changes = [
        p.RowChange(
            OUTCOME, formats.outcome_id(me, made), p.UPSERT,
            {"challenge": made, "winner": "challenger"},
        ),
        p.RowChange(
            RETRACTION, formats.retraction_id(me, fays), p.UPSERT,
            {"attestation": fays, "reason": ""},
        ),
        p.RowChange(
            ATTESTATION, formats.attestation_id(me, claim), p.UPSERT,
            {"claim": claim, "digest": "00" * 32, "verdict": "disputed", "note": "", "jws": "x"},
        ),
    ]  # fmt: skip
    raws = [forge_at(writer, change).raw for change in changes]
    threads.thread_ingest(thread=club.thread, raws=raws)
    eli.node.database.ingest(raws)
    for alias in (club.alias, eli.alias):
        assert states_on(alias) == before
        found = standing.standing(alias)
        assert found[fay.member].retracted == []
        assert gus.member not in found
        assert standing.challenges_in_effect(alias) == set()


# -- random histories against a plain reckoning -------------------------------------------------


@dataclass
class History:
    members: list[bytes]
    kinds: list[str]
    claims: list[tuple[str, bytes, str, bool]]  # id, subject, kind, withdrawn
    attestations: list[tuple[str, bytes, str, str]]  # id, witness, claim, verdict
    retracted: set[str]
    challenges: list[tuple[str, str | None, str | None, str | None]]  # id, claim, against, won
    authorities: list[tuple[str, str, bool]]  # kind, member hex, revoked
    k: int
    flag_after: int


@st.composite
def histories(draw) -> History:
    from apps.core.thread.rowid import row_id_new

    rng = random.Random(draw(st.integers(0, 2**32)))
    members = [rng.randbytes(32) for _ in range(draw(st.integers(2, 5)))]
    kinds = ["race", "swim"]
    claims = []
    for _ in range(draw(st.integers(0, 6))):
        subject = rng.choice(members)
        claims.append(
            (
                row_id_new(subject).hex,
                subject,
                rng.choice(kinds),
                draw(st.booleans()) and rng.random() < 0.2,
            )
        )
    attestations = []
    for claim, subject, _kind, _w in claims:
        for witness in members:
            if witness != subject and rng.random() < 0.6:
                verdict = "witnessed" if rng.random() < 0.8 else "disputed"
                attestations.append(
                    (formats.attestation_id(witness, claim), witness, claim, verdict)
                )
    retracted = {a[0] for a in attestations if rng.random() < draw(st.floats(0, 0.5))}
    challenges: list[tuple[str, str | None, str | None, str | None]] = []
    for _ in range(draw(st.integers(0, 6))):
        challenger = rng.choice(members)
        won_ones = [c[0] for c in challenges if c[3] == "challenger"]
        if won_ones and rng.random() < 0.5:
            target: tuple[str | None, str | None] = (None, rng.choice(won_ones))
        elif claims:
            target = (rng.choice(claims)[0], None)
        else:
            continue
        outcome = rng.choice([None, "challenger", "challenger", "defendant"])
        challenges.append((row_id_new(challenger).hex, *target, outcome))
    authorities = [
        (rng.choice(kinds), rng.choice(members).hex(), rng.random() < 0.3)
        for _ in range(draw(st.integers(0, 3)))
    ]
    return History(
        members,
        kinds,
        claims,
        attestations,
        retracted,
        challenges,
        authorities,
        draw(st.integers(1, 3)),
        draw(st.integers(1, 3)),
    )


def plain(history: History) -> tuple[dict[str, tuple], dict[str, str]]:
    """The ADR's words as plain Python: standing per witness and the state of each claim."""
    won = {c[0]: c for c in history.challenges if c[3] == "challenger"}

    def in_effect(pk: str) -> bool:
        backs = [c for c in won.values() if c[2] == pk]
        return pk in won and not any(in_effect(b[0]) for b in backs)

    overturned: dict[str, str] = {}
    for pk in sorted(won):
        claim = won[pk][1]
        if claim is not None and in_effect(pk):
            overturned.setdefault(claim, pk)
    witnesses: dict[str, tuple] = {}
    for witness in {a[1] for a in history.attestations}:
        mine = [a for a in history.attestations if a[1] == witness]
        retracted = sorted(a[0] for a in mine if a[0] in history.retracted)
        struck = sorted(
            (a[0], a[2], overturned[a[2]])
            for a in mine
            if a[3] == "witnessed" and a[2] in overturned
        )
        strikes = len(set(retracted) | {s[0] for s in struck})
        witnesses[witness.hex()] = (len(mine), retracted, struck, strikes >= history.flag_after)
    trusted = {(kind, member) for kind, member, revoked in history.authorities if not revoked}
    states = {}
    for claim, _subject, kind, withdrawn in history.claims:
        words = [
            a
            for a in history.attestations
            if a[2] == claim and a[3] == "witnessed" and a[0] not in history.retracted
        ]
        counting = {a[1] for a in words if not witnesses[a[1].hex()][3]}
        by_authority = any((kind, a[1].hex()) in trusted for a in words)
        if withdrawn:
            states[claim] = "withdrawn"
        elif claim in overturned:
            states[claim] = "overturned"
        elif len(counting) >= history.k or by_authority:
            states[claim] = "verified"
        else:
            states[claim] = "pending"
    return witnesses, states


_TABLES = (
    "sereus_members",
    "identity_setting",
    "identity_kind",
    "identity_authority",
    "identity_claim",
    "identity_attestation",
    "identity_retraction",
    "identity_challenge",
    "identity_outcome",
)


def _fill(path: Path, history: History) -> None:
    """The rows straight into the thread file, the capture triggers kept quiet (as when the
    node applies other members' ops), after emptying what the last example wrote."""
    from apps.core.thread.rowid import member_tag, row_id_new

    db = sqlite3.connect(str(path), isolation_level=None)
    db.create_function("sereus_capture", 0, lambda: 0)
    db.create_function("sereus_row", -1, lambda *values: None)
    db.execute("BEGIN")
    for table in _TABLES:
        db.execute(f"DELETE FROM {table}")  # noqa: S608 - this module's constant names
    first = history.members[0]
    db.executemany(
        "INSERT INTO sereus_members (tag, member) VALUES (?, ?)",
        [(member_tag(m).hex(), m) for m in history.members],
    )
    db.execute(
        "INSERT INTO identity_setting (id, seq, witnesses, flag_after) VALUES (?, 1, ?, ?)",
        (row_id_new(first).hex, history.k, history.flag_after),
    )
    db.executemany(
        "INSERT INTO identity_authority (id, kind, member, revoked) VALUES (?, ?, ?, ?)",
        [(row_id_new(first).hex, k, m, int(r)) for k, m, r in history.authorities],
    )
    db.executemany(
        "INSERT INTO identity_claim (id, kind, title, description, event_date, place, evidence,"
        " withdrawn) VALUES (?, ?, 'x', '', '', '', '[]', ?)",
        [(pk, kind, int(w)) for pk, _s, kind, w in history.claims],
    )
    db.executemany(
        "INSERT INTO identity_attestation (id, claim, digest, verdict, note, jws)"
        " VALUES (?, ?, '', ?, '', '')",
        [(pk, claim, verdict) for pk, _w, claim, verdict in history.attestations],
    )
    by_id = {a[0]: a[1] for a in history.attestations}
    db.executemany(
        "INSERT INTO identity_retraction (id, attestation, reason) VALUES (?, ?, '')",
        [(formats.retraction_id(by_id[pk], pk), pk) for pk in sorted(history.retracted)],
    )
    db.executemany(
        "INSERT INTO identity_challenge (id, claim, against, defendant, feat, deadline, mode,"
        " judges, poll) VALUES (?, ?, ?, '', 'x', '', 'judges', '[]', NULL)",
        [(pk, claim, against) for pk, claim, against, _o in history.challenges],
    )
    db.executemany(
        "INSERT INTO identity_outcome (id, challenge, winner) VALUES (?, ?, ?)",
        [(row_id_new(first).hex, pk, o) for pk, _c, _a, o in history.challenges if o],
    )
    db.execute("COMMIT")
    db.close()


@pytest.fixture
def scratch(tmp_path, thread_databases_allowed) -> Iterator[tuple[Path, str]]:
    """A real thread file (every app's tables) that examples fill by direct SQL."""
    import nacl.signing
    import nacl.utils
    from django.db import connections

    from apps.core.thread.writer import ThreadWriter
    from apps.core.threads.database import NodeKeys, ThreadDatabase

    keys = NodeKeys(nacl.signing.SigningKey.generate(), nacl.utils.random(32))
    writer = ThreadWriter.create(
        master_secret=keys.master_secret, device_key=keys.device, name="Scratch"
    )
    path = tmp_path / "scratch.sqlite3"
    database = ThreadDatabase(
        writer.thread, path=path, alias=f"thread_{writer.thread.hex()}_scratch", node=keys
    )
    database.open()
    database.wrapper.close()
    yield path, database.alias
    connections[database.alias].close()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(history=histories())
def test_standing_and_states_agree_with_a_plain_reckoning(scratch, history):
    from django.db import connections

    path, alias = scratch
    connections[alias].close()
    _fill(path, history)
    expected_witnesses, expected_states = plain(history)
    found = standing.standing(alias)
    assert {
        m: (s.attested, s.retracted, s.overturned, s.flagged) for m, s in found.items()
    } == expected_witnesses
    # The flags alone (what a claim's state reads), from the striking rows only: the same.
    assert standing.flagged(alias) == {m for m, s in expected_witnesses.items() if s[3]}
    assert states_on(alias) == expected_states
    every = standing.claim_states(alias)
    for claim in list(expected_states)[:3]:  # a claim's page reads only its witnesses
        assert standing.claim_states(alias, [claim]) == {claim: every[claim]}


def test_both_sides_record_the_outcome_at_once_and_one_stands_everywhere(club):
    from apps.identity.models import Outcome

    dana, eli, fay, gus = club.dana, club.eli, club.fay, club.gus
    claim = eli.claim("Ran a marathon")
    club.sync()
    fay.attest(claim)
    gus.attest(claim)
    club.sync()
    made = dana.challenge(defendant=eli.member, claim=claim, judges=[club.me])
    club.sync()
    eli.accept(made)
    club.sync()
    from apps.identity import services

    services.judge(thread=club.thread, challenge=made, winner="challenger")
    club.sync()
    dana.outcome(made, "challenger")  # each side's node, before hearing of the other's
    eli.outcome(made, "challenger")
    club.sync()
    club.sync()
    for alias in (club.alias, *(m.alias for m in club.others)):
        assert Outcome.objects.using(alias).filter(challenge=made).count() == 1, alias
    assert same_everywhere(club)[claim] == "overturned"
