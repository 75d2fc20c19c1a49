"""Tallies of polls: hand examples, ballot checks, and property tests against a plain reference."""

import random
import time
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.voting.tally import (
    MAX_SCORE,
    METHODS,
    TIE_BREAK,
    Result,
    Round,
    ballot_problem,
    tally,
    tally_counts,
)

PROPERTY = settings(derandomize=True, database=None, deadline=None)


def ranked(*groups: tuple[int, list[int]]) -> list[dict[str, Any]]:
    """Ballots from (how many, ranking) pairs."""
    return [{"ranking": list(ranking)} for count, ranking in groups for _ in range(count)]


def eliminated(result: Result) -> list[tuple[int, ...]]:
    return [r.eliminated for r in result.rounds]


# --- Hand examples: single, approval, score ---------------------------------------------------


def test_single_counts_votes_and_the_most_wins() -> None:
    result = tally("single", 3, [{"choice": c} for c in [0, 1, 1, 2, 1]])
    assert result == Result("single", 5, (1, 3, 1), 1, (), ())


def test_single_tie_goes_to_the_option_listed_first() -> None:
    result = tally("single", 3, [{"choice": c} for c in [2, 0, 2, 0, 1]])
    assert (result.totals, result.winner, result.tied) == ((2, 1, 2), 0, (0, 2))


def test_approval_counts_each_approval() -> None:
    ballots = [{"choices": [0, 2]}, {"choices": [2]}, {"choices": []}, {"choices": [1, 2, 3]}]
    result = tally("approval", 4, ballots)
    assert result == Result("approval", 4, (1, 1, 3, 1), 2, (), ())


def test_approval_where_nobody_approves_anything_is_a_tie_of_all() -> None:
    result = tally("approval", 3, [{"choices": []}, {"choices": []}])
    assert (result.ballots, result.totals, result.winner, result.tied) == (
        2,
        (0, 0, 0),
        0,
        (0, 1, 2),
    )


def test_score_sums_scores_and_ties_go_to_the_first_listed() -> None:
    result = tally("score", 3, [{"scores": [5, 0, 3]}, {"scores": [1, 4, 2]}])
    assert result == Result("score", 2, (6, 4, 5), 0, (), ())
    tie = tally("score", 3, [{"scores": [0, 4, 4]}, {"scores": [1, 2, 2]}])
    assert (tie.totals, tie.winner, tie.tied) == ((1, 6, 6), 1, (1, 2))


@pytest.mark.parametrize("method", METHODS)
def test_no_ballots_means_no_winner(method: str) -> None:
    assert tally(method, 3, []) == Result(method, 0, (0, 0, 0), None, (), ())


def test_unknown_method_or_no_options_is_refused_in_plain_words() -> None:
    with pytest.raises(ValueError, match="voting method is not one we know"):
        tally("borda", 3, [])
    with pytest.raises(ValueError, match="at least one option"):
        tally("single", 0, [])


# --- Hand examples: ranked (instant runoff) -------------------------------------------------


def test_classic_instant_runoff_with_transfers_and_exhausted_ballots() -> None:
    # A leads the first round but B wins once C's and D's ballots move on or run out.
    ballots = ranked((5, [0]), (4, [1, 2]), (2, [2, 1]), (2, [3, 2]), (1, [3]))
    result = tally("ranked", 4, ballots)
    assert result.rounds == (
        Round((5, 4, 2, 3), (2,), 0),  # C fewest; its ballots go to B
        Round((5, 6, 0, 3), (3,), 0),  # nobody above 7 of 14; D out: C is gone, so they run out
        Round((5, 6, 0, 0), (), 3),  # 6 of the 11 still counting is a majority
    )
    assert (result.winner, result.tied, result.totals, result.ballots) == (1, (), (5, 6, 0, 0), 14)


def test_a_first_round_majority_wins_at_once() -> None:
    result = tally("ranked", 3, ranked((3, [2, 0]), (2, [0, 1])))
    assert result.rounds == (Round((2, 0, 3), (), 0),)
    assert result.winner == 2


def test_backwards_tie_break_eliminates_the_one_lower_in_the_round_before() -> None:
    # Round 2: B and C tie at 3; in round 1 B had 2 and C had 3, so B goes (not C, listed last),
    # and that decides the poll: B's ballots carry C past A.
    ballots = ranked((5, [0]), (2, [1, 2]), (3, [2, 0]), (1, [3, 1, 2]))
    result = tally("ranked", 4, ballots)
    assert [r.counts for r in result.rounds] == [(5, 2, 3, 1), (5, 3, 3, 0), (5, 0, 6, 0)]
    assert eliminated(result) == [(3,), (1,), ()]
    assert (result.winner, result.tied) == (2, ())


def test_backwards_tie_break_looks_back_past_an_equal_round() -> None:
    # X (1) and Y (2) tie in rounds 3 and 2; they first differ in round 1, where X was lower.
    ballots = ranked((8, [0]), (2, [1]), (3, [2]), (1, [3, 1]), (1, [4, 1]), (1, [4, 2]))
    result = tally("ranked", 5, ballots)
    assert [r.counts for r in result.rounds] == [
        (8, 2, 3, 1, 2),
        (8, 3, 3, 0, 2),
        (8, 4, 4, 0, 0),
        (8, 0, 4, 0, 0),
    ]
    assert eliminated(result) == [(3,), (4,), (1,), ()]
    assert [r.exhausted for r in result.rounds] == [0, 0, 0, 4]
    assert result.winner == 0


def test_backwards_tie_break_keeps_only_the_lowest_as_it_looks_back() -> None:
    # Round 3: X, Y and Z tie at 8. Round 2: X and Y (7) were below Z (8), so Z is safe; round 1:
    # X (6) was below Y (7), so X goes, even though Z was lowest of all in round 1.
    ballots = ranked(
        (10, [0]), (6, [1]), (7, [2]), (5, [3]), (1, [4, 1]), (3, [4, 3]), (1, [5, 1]), (1, [5, 2]),
        (3, [5]),
    )  # fmt: skip
    result = tally("ranked", 6, ballots)
    assert [r.counts for r in result.rounds] == [
        (10, 6, 7, 5, 4, 5),
        (10, 7, 7, 8, 0, 5),
        (10, 8, 8, 8, 0, 0),
        (10, 0, 8, 8, 0, 0),
        (10, 0, 0, 8, 0, 0),
    ]
    assert eliminated(result) == [(4,), (5,), (1,), (2,), ()]
    assert [r.exhausted for r in result.rounds] == [0, 0, 3, 11, 19]
    assert (result.winner, result.tied) == (0, ())


def test_a_tie_that_never_differs_eliminates_the_option_listed_last() -> None:
    # Round 2: B and C tie at 2, and had 2 each in round 1 too: C (listed last) goes.
    ballots = ranked((3, [0]), (2, [1, 0]), (2, [2, 1]), (1, [3]))
    result = tally("ranked", 4, ballots)
    assert [r.counts for r in result.rounds] == [(3, 2, 2, 1), (3, 2, 2, 0), (3, 4, 0, 0)]
    assert eliminated(result) == [(3,), (2,), ()]
    assert [r.exhausted for r in result.rounds] == [0, 1, 1]
    assert (result.winner, result.tied) == (1, ())


def test_two_finalists_at_half_each_are_split_by_the_elimination_rule() -> None:
    # No history: the one listed last is eliminated, so the first listed wins.
    even = tally("ranked", 2, ranked((2, [0, 1]), (2, [1, 0])))
    assert even.rounds == (Round((2, 2), (1,), 0), Round((4, 0), (), 0))
    assert (even.winner, even.tied) == (0, (0, 1))
    # With history: A had fewer votes in round 1, so A goes and B wins the tie.
    result = tally("ranked", 3, ranked((1, [0]), (2, [1]), (1, [2, 0])))
    assert [r.counts for r in result.rounds] == [(1, 2, 1), (2, 2, 0), (0, 2, 0)]
    assert eliminated(result) == [(2,), (0,), ()]
    assert (result.winner, result.tied) == (1, (0, 1))


def test_options_nobody_ranked_are_eliminated_one_per_round() -> None:
    result = tally("ranked", 5, ranked((1, [0]), (1, [1]), (1, [2])))
    assert eliminated(result) == [(4,), (3,), (2,), (1,), ()]
    assert [r.exhausted for r in result.rounds] == [0, 0, 0, 1, 2]
    assert (result.winner, result.tied, result.totals) == (0, (0, 1), (1, 0, 0, 0, 0))


def test_one_option_wins_in_one_round() -> None:
    result = tally("ranked", 1, ranked((3, [0])))
    assert result == Result("ranked", 3, (3,), 0, (), (Round((3,), (), 0),))


def test_tie_break_text_says_first_listed_wins_and_last_listed_is_eliminated() -> None:
    assert "listed first" in TIE_BREAK
    assert "listed last is eliminated" in TIE_BREAK
    assert TIE_BREAK.count(".") <= 2


# --- tally_counts (secret polls) -------------------------------------------------------------


def test_tally_counts_builds_the_same_result_as_tally() -> None:
    ballots = [{"choices": [0, 2]}, {"choices": [2, 1]}, {"choices": []}]
    assert tally_counts("approval", 3, [1, 1, 2], 3) == tally("approval", 3, ballots)
    assert tally_counts("single", 2, [0, 0], 0) == Result("single", 0, (0, 0), None, (), ())


def test_tally_counts_refuses_ranked_and_bad_totals() -> None:
    with pytest.raises(ValueError, match="ranked poll cannot be counted from totals"):
        tally_counts("ranked", 2, [1, 1], 2)
    with pytest.raises(ValueError, match="2 totals but the poll has 3 options"):
        tally_counts("single", 3, [1, 1], 2)
    with pytest.raises(ValueError, match="whole numbers"):
        tally_counts("single", 2, [1, -1], 2)
    with pytest.raises(ValueError, match="whole numbers"):
        tally_counts("single", 2, [True, 0], 1)


# --- ballot_problem -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "options", "ballot", "message"),
    [
        ("single", 4, {"choice": 7}, "Option 7 is not one of this poll's 4 options."),
        ("single", 4, {"choice": -1}, "Option -1 is not one of this poll's 4 options."),
        ("single", 4, {"choice": 10**5000}, "A chosen option is not one of this poll's 4 options."),
        (
            "single",
            4,
            {"choice": True},
            "A choice must be the number of one of this poll's options.",
        ),
        (
            "single",
            4,
            {"choice": 1.0},
            "A choice must be the number of one of this poll's options.",
        ),
        (
            "single",
            4,
            {"choice": "1"},
            "A choice must be the number of one of this poll's options.",
        ),
        (
            "single",
            4,
            {"choice": None},
            "A choice must be the number of one of this poll's options.",
        ),
        ("single", 4, {}, 'This ballot has no "choice" answer.'),
        ("single", 4, {"choices": [1]}, 'This ballot has no "choice" answer.'),
        ("single", 4, {"choice": 1, "x": 2}, 'A single ballot must hold only its "choice" answer.'),
        ("single", 4, None, "A ballot must be a set of named answers."),
        ("single", 4, [1], "A ballot must be a set of named answers."),
        ("single", 4, "choice", "A ballot must be a set of named answers."),
        ("single", 0, {"choice": 0}, "This poll has no options to vote for."),
        ("single", True, {"choice": 0}, "This poll has no options to vote for."),
        pytest.param(
            "single",
            10**5000,
            {"choice": 0},
            "This poll has more options than a ballot can hold.",
            id="huge-options",
        ),
        ("plurality", 4, {"choice": 0}, "This poll's voting method is not one we know."),
        ("approval", 4, {"choices": 2}, "The approved options must be a list of option numbers."),
        (
            "approval",
            4,
            {"choices": {1: 1}},
            "The approved options must be a list of option numbers.",
        ),
        ("approval", 4, {"choices": [1, 4]}, "Option 4 is not one of this poll's 4 options."),
        ("approval", 4, {"choices": [1, 3, 1]}, "Option 1 is approved twice."),
        (
            "approval",
            4,
            {"choices": [0, False]},
            "A choice must be the number of one of this poll's options.",
        ),
        (
            "approval",
            2,
            {"choices": [0, 1, 0]},
            "This ballot lists more than the poll's 2 options.",
        ),
        ("ranked", 4, {"ranking": []}, "A ranking must list at least one option."),
        ("ranked", 4, {"ranking": "012"}, "The ranking must be a list of option numbers."),
        ("ranked", 4, {"ranking": [3, 2, 3]}, "Option 3 is ranked twice."),
        ("ranked", 4, {"ranking": [0, 9]}, "Option 9 is not one of this poll's 4 options."),
        (
            "ranked",
            4,
            {"ranking": [[0]]},
            "A choice must be the number of one of this poll's options.",
        ),
        (
            "ranked",
            4,
            {"ranking": [0], "scores": []},
            'A ranked ballot must hold only its "ranking" answer.',
        ),
        ("ranked", 3, {"ranking": [0] * 10**6}, "Option 0 is ranked twice."),
        (
            "ranked",
            3,
            {"ranking": list(range(10**6))},
            "This ballot lists more than the poll's 3 options.",
        ),
        ("score", 3, {"scores": [1, 2]}, "This ballot gives 2 scores but the poll has 3 options."),
        (
            "score",
            3,
            {"scores": [0] * 10**6},
            "This ballot gives 1000000 scores but the poll has 3 options.",
        ),
        (
            "score",
            3,
            {"scores": [1, 2, 6]},
            f"A score must be a whole number from 0 to {MAX_SCORE}.",
        ),
        ("score", 3, {"scores": [1, -1, 0]}, "A score must be a whole number from 0 to 5."),
        ("score", 3, {"scores": [1, 2.5, 0]}, "A score must be a whole number from 0 to 5."),
        ("score", 3, {"scores": [1, True, 0]}, "A score must be a whole number from 0 to 5."),
        ("score", 3, {"scores": 5}, "The scores must be a list with one score per option."),
    ],
)
def test_ballot_problem_refuses_with_a_plain_sentence(
    method: str, options: int, ballot: Any, message: str
) -> None:
    assert ballot_problem(method, options, ballot) == message


@pytest.mark.parametrize(
    ("method", "ballot"),
    [
        ("single", {"choice": 3}),
        ("approval", {"choices": []}),
        ("approval", {"choices": [3, 0]}),
        ("ranked", {"ranking": [2]}),
        ("ranked", {"ranking": (3, 1, 0, 2)}),
        ("score", {"scores": [0, 5, 2, 5]}),
    ],
)
def test_ballot_problem_accepts_well_formed_ballots(method: str, ballot: Any) -> None:
    assert ballot_problem(method, 4, ballot) is None


class Hostile(Mapping):
    """A mapping whose every look-up fails."""

    def __getitem__(self, key: object) -> Any:
        raise RuntimeError("no")

    def __iter__(self) -> Any:
        raise RuntimeError("no")

    def __len__(self) -> int:
        raise RuntimeError("no")


def test_ballot_problem_survives_a_mapping_that_raises() -> None:
    assert ballot_problem("single", 3, Hostile()) == "This ballot could not be read."


junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(PROPERTY, max_examples=600)
@given(
    method=st.sampled_from(METHODS),
    options=st.integers(1, 5),
    value=junk | st.lists(st.integers(-2, 6), max_size=8),
    extra=st.dictionaries(
        st.sampled_from(["choice", "choices", "ranking", "scores", "x"]), junk, max_size=2
    ),
    keyed=st.booleans(),
)
def test_ballot_problem_never_raises_and_what_it_accepts_can_be_counted(
    method: str, options: int, value: Any, extra: dict[str, Any], keyed: bool
) -> None:
    field = {"single": "choice", "approval": "choices", "ranked": "ranking", "score": "scores"}
    ballot = {**extra, field[method]: value} if keyed else extra
    problem = ballot_problem(method, options, ballot)
    if problem is None:
        assert set(ballot) == {field[method]}
        tally(method, options, [ballot])  # must not raise
    else:
        assert problem.endswith(".")
        assert problem[0].isupper()
    bare = ballot_problem(method, options, value)  # the junk itself as a ballot
    assert bare is None or isinstance(bare, str)


# --- Reference implementation (deliberately different shape) ------------------------------------


def reference(method: str, options: int, ballots: list[dict[str, Any]]) -> Result:
    """A plain re-count: ranked ballots are re-walked every round, the eliminated kept in a set,
    and the backwards tie-break reads an explicit list of past rounds."""
    n = len(ballots)
    if method != "ranked":
        sums = {option: 0 for option in range(options)}
        for ballot in ballots:
            if method == "single":
                sums[ballot["choice"]] += 1
            elif method == "approval":
                for option in ballot["choices"]:
                    sums[option] += 1
            else:
                for option in range(options):
                    sums[option] += ballot["scores"][option]
        totals = tuple(sums[option] for option in range(options))
        if n == 0:
            return Result(method, 0, totals, None, (), ())
        order = sorted(range(options), key=lambda option: (-totals[option], option))
        top = [option for option in order if totals[option] == totals[order[0]]]
        return Result(method, n, totals, order[0], tuple(top) if len(top) > 1 else (), ())

    if n == 0:
        return Result(method, 0, (0,) * options, None, (), ())
    gone: set[int] = set()
    past: list[tuple[int, ...]] = []
    rounds: list[Round] = []
    tied: tuple[int, ...] = ()
    while True:
        tallies = dict.fromkeys(range(options), 0)
        exhausted = 0
        for ballot in ballots:
            left = [option for option in ballot["ranking"] if option not in gone]
            if left:
                tallies[left[0]] += 1
            else:
                exhausted += 1
        now = tuple(tallies[option] for option in range(options))
        alive = [option for option in range(options) if option not in gone]
        majority = [option for option in alive if now[option] > (n - exhausted) / 2]
        if majority or len(alive) == 1:
            rounds.append(Round(now, (), exhausted))
            winner = majority[0] if majority else alive[0]
            return Result(method, n, now, winner, tied, tuple(rounds))
        fewest = min(now[option] for option in alive)
        candidates = [option for option in alive if now[option] == fewest]
        if len(alive) == 2 and len(candidates) == 2:
            tied = tuple(candidates)
        back = len(past) - 1
        while len(candidates) > 1 and back >= 0:
            low = min(past[back][option] for option in candidates)
            candidates = [option for option in candidates if past[back][option] == low]
            back -= 1
        loser = candidates[-1]
        past.append(now)
        gone.add(loser)
        rounds.append(Round(now, (loser,), exhausted))


def random_ballot(rng: random.Random, method: str, options: int) -> dict[str, Any]:
    if method == "single":
        return {"choice": rng.randrange(options)}
    if method == "approval":
        return {"choices": rng.sample(range(options), rng.randint(0, options))}
    if method == "score":
        return {"scores": [rng.randint(0, MAX_SCORE) for _ in range(options)]}
    return {"ranking": rng.sample(range(options), rng.randint(1, options))}


@st.composite
def elections(draw: st.DrawFn, methods: tuple[str, ...] = METHODS) -> tuple[str, int, list[Any]]:
    method = draw(st.sampled_from(methods))
    options = draw(st.integers(2, 6))
    # Few distinct ballots repeated makes ties (and tie-break chains) frequent.
    kinds = draw(st.integers(1, 6))
    rng = random.Random(draw(st.integers(0, 2**32)))
    menu = [random_ballot(rng, method, options) for _ in range(kinds)]
    ballots = draw(st.lists(st.sampled_from(menu), max_size=30))
    return method, options, ballots


@settings(PROPERTY, max_examples=1500)
@given(elections(("ranked",)))
def test_ranked_tally_matches_the_reference(election: tuple[str, int, list[Any]]) -> None:
    method, options, ballots = election
    assert all(ballot_problem(method, options, b) is None for b in ballots)
    assert tally(method, options, ballots) == reference(method, options, ballots)


@settings(PROPERTY, max_examples=600)
@given(elections(("single", "approval", "score")))
def test_other_tallies_match_the_reference(election: tuple[str, int, list[Any]]) -> None:
    method, options, ballots = election
    assert all(ballot_problem(method, options, b) is None for b in ballots)
    result = tally(method, options, ballots)
    assert result == reference(method, options, ballots)
    assert tally_counts(method, options, result.totals, len(ballots)) == result


@settings(PROPERTY, max_examples=300)
@given(elections(), st.randoms(use_true_random=False))
def test_ballot_order_does_not_matter(
    election: tuple[str, int, list[Any]], shuffler: random.Random
) -> None:
    method, options, ballots = election
    shuffled = list(ballots)
    shuffler.shuffle(shuffled)
    assert tally(method, options, shuffled) == tally(method, options, ballots)


def test_larger_elections_match_the_reference() -> None:
    rng = random.Random(20261206)
    for _ in range(120):
        method = rng.choice(METHODS)
        options = rng.randint(2, 10)
        ballots = [random_ballot(rng, method, options) for _ in range(rng.randint(30, 300))]
        assert tally(method, options, ballots) == reference(method, options, ballots)


def test_ties_and_multi_round_polls_are_really_exercised() -> None:
    # Guards the property tests against a generator that never reaches the hard cases.
    rng = random.Random(7)
    seen = {"win tie": 0, "elimination tie": 0, "three or more rounds": 0}
    for _ in range(400):
        options = rng.randint(2, 6)
        menu = [random_ballot(rng, "ranked", options) for _ in range(rng.randint(1, 6))]
        ballots = [rng.choice(menu) for _ in range(rng.randint(1, 30))]
        result = tally("ranked", options, ballots)
        seen["win tie"] += bool(result.tied)
        seen["three or more rounds"] += len(result.rounds) >= 3
        gone: set[int] = set()
        for r in result.rounds:
            live = [count for option, count in enumerate(r.counts) if option not in gone]
            seen["elimination tie"] += bool(r.eliminated) and live.count(min(live)) > 1
            gone.update(r.eliminated)
    assert all(count >= 20 for count in seen.values()), seen


def test_ten_thousand_ranked_ballots_over_ten_options(capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(1)
    ballots = [{"ranking": rng.sample(range(10), rng.randint(1, 10))} for _ in range(10_000)]
    start = time.perf_counter()
    result = tally("ranked", 10, ballots)
    elapsed = time.perf_counter() - start
    assert result.ballots == 10_000
    assert result.winner is not None
    assert sum(result.rounds[0].counts) == 10_000
    with capsys.disabled():
        rounds = len(result.rounds)
        print(
            f"\n[tally] 10 000 ranked ballots, 10 options, {rounds} rounds: {elapsed * 1e3:.1f} ms"
        )
