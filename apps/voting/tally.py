"""Tallies of polls: a pure, deterministic function of the ballots.

Every member's node counts the same ballots and must reach the same result, so nothing here reads a
clock, draws a random number, depends on dict or set order, or uses floats.

Methods: "single" (one choice), "approval" (any number of choices), "ranked" (instant runoff) and
"score" (0 to MAX_SCORE per option, highest sum wins).

Tie-breaks:
- A tie for the win (single, approval, score): the option listed first (lowest index) wins; `tied`
  lists every option that tied.
- A tie for fewest votes in a ranked round (the "backwards tie-break"): among the tied options, look
  at the round before and keep only those lowest there, then the round before that, back to round 1;
  if more than one is still left, the one listed last (highest index) is eliminated. Two finalists
  at exactly half each are split by the same rule, and `tied` then lists both.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

METHODS = ("single", "approval", "ranked", "score")
MAX_SCORE = 5

TIE_BREAK = (
    "When options tie for the most votes, the one listed first in the poll wins. "
    "In a ranked poll, when options tie for the fewest votes (or two finalists have half the votes "
    "each), the one with fewer votes in the round before is eliminated, looking further back if "
    "needed, and if they were always equal the one listed last is eliminated."
)

# The field each method's ballot carries (and nothing else).
_FIELD = {"single": "choice", "approval": "choices", "ranked": "ranking", "score": "scores"}

# Above this an option number is not printed back: it cannot be a real option, and Python refuses
# to turn very long integers into text.
_PRINTABLE = 10**9


@dataclass(frozen=True)
class Round:
    """One round of a ranked poll."""

    counts: tuple[int, ...]  # per option: first preferences among the continuing (0 once out)
    eliminated: tuple[int, ...]  # eliminated at the end of this round; () in the last round
    exhausted: int  # ballots with no continuing option left


@dataclass(frozen=True)
class Result:
    """The outcome of a poll."""

    method: str
    ballots: int
    totals: tuple[int, ...]
    winner: int | None
    tied: tuple[int, ...]
    rounds: tuple[Round, ...]


def _is_int(value: object) -> TypeGuard[int]:
    # bool is a subclass of int, but True is not a valid option number or score.
    return isinstance(value, int) and not isinstance(value, bool)


def _option_problem(value: object, options: int) -> str | None:
    if not _is_int(value):
        return "A choice must be the number of one of this poll's options."
    if 0 <= value < options:
        return None
    if abs(value) >= _PRINTABLE:
        return f"A chosen option is not one of this poll's {options} options."
    return f"Option {value} is not one of this poll's {options} options."


def ballot_problem(method: str, options: int, ballot: Mapping[str, Any]) -> str | None:
    """None if `ballot` is well formed for this method and number of options, else one plain
    sentence saying what is wrong. Never raises, whatever the ballot holds."""
    if not isinstance(method, str) or method not in METHODS:
        return "This poll's voting method is not one we know."
    if not _is_int(options) or options < 1:
        return "This poll has no options to vote for."
    if options >= _PRINTABLE:
        return "This poll has more options than a ballot can hold."
    if not isinstance(ballot, Mapping):
        return "A ballot must be a set of named answers."
    field = _FIELD[method]
    try:
        keys = list(ballot.keys())
        if field not in keys:
            return f'This ballot has no "{field}" answer.'
        if len(keys) != 1:
            return f'A {method} ballot must hold only its "{field}" answer.'
        value = ballot[field]
    except Exception:  # a hostile Mapping; the validator must not crash on it
        return "This ballot could not be read."

    if method == "single":
        return _option_problem(value, options)

    if method == "score":
        if not isinstance(value, list | tuple):
            return "The scores must be a list with one score per option."
        if len(value) != options:
            return f"This ballot gives {len(value)} scores but the poll has {options} options."
        for score in value:
            if not _is_int(score) or not 0 <= score <= MAX_SCORE:
                return f"A score must be a whole number from 0 to {MAX_SCORE}."
        return None

    # JSON gives lists; tuples are accepted for callers that build ballots in Python.
    if not isinstance(value, list | tuple):
        what = "approved options" if method == "approval" else "ranking"
        return f"The {what} must be a list of option numbers."
    if method == "ranked" and not value:
        return "A ranking must list at least one option."
    seen: set[int] = set()
    for position, choice in enumerate(value):
        # Past `options` entries there must be a repeat or a stranger; stop before a huge list.
        if position >= options:
            return f"This ballot lists more than the poll's {options} options."
        problem = _option_problem(choice, options)
        if problem:
            return problem
        if choice in seen:
            verb = "approved" if method == "approval" else "ranked"
            return f"Option {choice} is {verb} twice."
        seen.add(choice)
    return None


def _check(method: str, options: int) -> None:
    if method not in METHODS:
        raise ValueError("This poll's voting method is not one we know.")
    if not _is_int(options) or options < 1:
        raise ValueError("A poll needs at least one option.")


def _plurality(method: str, totals: tuple[int, ...], ballots: int) -> Result:
    """The result where the highest total wins and the option listed first breaks a tie."""
    if ballots == 0:
        return Result(method, 0, totals, None, (), ())
    best = max(totals)
    top = tuple(i for i, total in enumerate(totals) if total == best)
    return Result(method, ballots, totals, top[0], top if len(top) > 1 else (), ())


def tally(method: str, options: int, ballots: Iterable[Mapping[str, Any]]) -> Result:
    """Count well-formed ballots (ballot_problem returned None for each). Their order does not
    matter."""
    _check(method, options)
    if method == "ranked":
        groups = Counter(tuple(ballot["ranking"]) for ballot in ballots)
        return _instant_runoff(options, groups)
    totals = [0] * options
    count = 0
    for ballot in ballots:
        count += 1
        if method == "single":
            totals[ballot["choice"]] += 1
        elif method == "approval":
            for choice in ballot["choices"]:
                totals[choice] += 1
        else:
            for option, score in enumerate(ballot["scores"]):
                totals[option] += score
    return _plurality(method, tuple(totals), count)


def tally_counts(method: str, options: int, totals: Sequence[int], ballots: int) -> Result:
    """The result from per-option totals (a secret poll's decrypted sums) and the ballot count."""
    _check(method, options)
    if method == "ranked":
        raise ValueError("A ranked poll cannot be counted from totals alone.")
    if len(totals) != options:
        raise ValueError(f"There are {len(totals)} totals but the poll has {options} options.")
    if not all(_is_int(t) and t >= 0 for t in totals) or not _is_int(ballots) or ballots < 0:
        raise ValueError(
            "The totals and the number of ballots must be whole numbers, not negative."
        )
    return _plurality(method, tuple(totals), ballots)


def _to_eliminate(tied: list[int], history: list[list[int]]) -> int:
    """Which of the options tied for fewest votes goes: the backwards tie-break, then the one
    listed last. `history` holds every round's counts, the current round last."""
    for counts in reversed(history[:-1]):
        low = min(counts[option] for option in tied)
        tied = [option for option in tied if counts[option] == low]
        if len(tied) == 1:
            return tied[0]
    return max(tied)


def _instant_runoff(options: int, groups: Counter[tuple[int, ...]]) -> Result:
    """Instant runoff over ballots grouped by identical ranking (a group counts as its size)."""
    total = sum(groups.values())
    if total == 0:
        return Result("ranked", 0, (0,) * options, None, (), ())
    continuing = set(range(options))
    history: list[list[int]] = []
    rounds: list[Round] = []
    tied: tuple[int, ...] = ()
    while True:
        counts = [0] * options
        exhausted = 0
        for ranking, size in groups.items():
            for option in ranking:
                if option in continuing:
                    counts[option] += size
                    break
            else:
                exhausted += size
        history.append(counts)
        # Never 0 here: an option with votes is only eliminated while every other continuing
        # option has at least as many, so some ballot always has a continuing option.
        active = total - exhausted
        leader = max(sorted(continuing), key=lambda option: counts[option])
        if counts[leader] * 2 > active or len(continuing) == 1:
            rounds.append(Round(tuple(counts), (), exhausted))
            return Result("ranked", total, tuple(counts), leader, tied, tuple(rounds))
        low = min(counts[option] for option in continuing)
        lowest = sorted(option for option in continuing if counts[option] == low)
        if len(continuing) == 2 and len(lowest) == 2:
            tied = tuple(lowest)  # two finalists at half each: a tie for the win
        out = _to_eliminate(lowest, history)
        continuing.discard(out)
        rounds.append(Round(tuple(counts), (out,), exhausted))
