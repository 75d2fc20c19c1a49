"""A poll as its pages say it: state, turnout and result in words, for the polls list, the poll
page and their live renders. Names, never keys; the one hex string shown is the fingerprint of
the counted ballots, which members compare across nodes."""

from __future__ import annotations

from dataclasses import dataclass, field

from apps.voting.selectors import CLOSED, OPEN, WAITING_KEY, PollView
from apps.voting.tally import TIE_BREAK
from apps.voting.words import METHOD_WORDS


@dataclass(frozen=True)
class Bar:
    option: str
    total: int
    most: int  # the bar's full length
    winner: bool


@dataclass(frozen=True)
class RoundRow:
    number: int
    counts: list[str]  # per option: its count, or "" once eliminated
    eliminated: str  # the option eliminated at its end ("" in the last round)
    exhausted: int


@dataclass
class Shown:
    poll: PollView
    method: str
    state: str  # "Open · 3 of 5 voted"
    mine: str  # "You voted", "Waiting for your vote", ""
    turnout: str  # "3 of 5 voted · needs 3 to stand"
    result: str  # a one-line summary ("Leading: Pizza", "Winner: Pizza"), "" when none
    bars: list[Bar] = field(default_factory=list)
    winner: str = ""
    tie: str = ""  # which options tied, with the tie-break in words
    rounds: list[RoundRow] = field(default_factory=list)
    waiting: str = ""  # why no result shows yet
    stands: str = ""  # the quorum's verdict once closed
    fingerprint: str = ""  # "ab12 cd34 ef56 7890"

    @property
    def heading(self) -> str:
        """The state alone, above the turnout line."""
        return self.state.split(" · ")[0]

    @property
    def can_vote(self) -> bool:
        return self.poll.state == OPEN and self.poll.voter

    @property
    def open(self) -> bool:
        return self.poll.state != CLOSED


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def fingerprint(counted_hash: str) -> str:
    """The first 16 hex digits, in groups of 4: short enough to read out to someone."""
    head = counted_hash[:16]
    return " ".join(head[i : i + 4] for i in range(0, len(head), 4))


def _state(poll: PollView) -> str:
    if poll.state == WAITING_KEY:
        ready, trustees = len(poll.dealt), len(poll.shape.trustees)
        return f"Waiting for trustees ({ready} of {trustees} ready)"
    if poll.state == OPEN:
        return f"Open · {poll.turnout} of {poll.electorate} voted"
    return f"Closed · {poll.turnout} of {poll.electorate} voted"


def _mine(poll: PollView) -> str:
    if not poll.voter:
        return "" if poll.voted else "You do not vote in this poll"
    if poll.voted:
        return "You voted"
    return "Waiting for your vote" if poll.state != CLOSED else "You did not vote"


def _turnout(poll: PollView) -> str:
    said = f"{poll.turnout} of {poll.electorate} voted"
    if poll.shape.quorum:
        said += f" · needs {poll.shape.quorum} to stand"
    return said


def _names(options: tuple[str, ...], indices: tuple[int, ...]) -> str:
    named = [options[i] for i in indices if 0 <= i < len(options)]
    return ", ".join(named[:-1]) + " and " + named[-1] if len(named) > 1 else "".join(named)


def _tied_lowest(counts: tuple[int, ...], out: set[int]) -> tuple[int, ...]:
    """The continuing options of a ranked round with the fewest votes."""
    continuing = [i for i in range(len(counts)) if i not in out]
    if not continuing:
        return ()
    low = min(counts[i] for i in continuing)
    return tuple(i for i in continuing if counts[i] == low)


def shown(poll: PollView) -> Shown:
    options = poll.shape.options
    view = Shown(
        poll=poll,
        method=METHOD_WORDS.get(poll.shape.method, poll.shape.method),
        state=_state(poll),
        mine=_mine(poll),
        turnout=_turnout(poll),
        result="",
    )
    result = poll.result
    if result is None:
        if poll.state != CLOSED:
            view.waiting = "Results show when the poll closes."
        return view
    view.fingerprint = fingerprint(result.counted_hash)
    if result.final and poll.shape.quorum:
        view.stands = (
            "The quorum was reached: the result stands."
            if result.quorum_met
            else f"Only {result.ballots} of the {poll.shape.quorum} ballots needed were cast: "
            "the result does not stand."
        )
    tally = result.tally
    if tally is None:
        missing = result.missing_trustees
        view.waiting = (
            f"Not yet decrypted: waiting for {_plural(missing, 'more trustee')}."
            if missing
            else "Not yet decrypted: the trustees' parts do not add up on this node yet."
        )
        view.result = "Counting: waiting for the trustees"
        return view
    most = max([result.ballots, *tally.totals, 1])
    if poll.shape.method == "score":
        most = max(most, result.ballots * 5)
    view.bars = [
        Bar(option, total, most, tally.winner == i)
        for i, (option, total) in enumerate(zip(options, tally.totals, strict=False))
    ]
    if tally.winner is not None:
        name = options[tally.winner]
        view.winner = name
        view.result = f"{'Winner' if result.final else 'Leading'}: {name}"
    elif not result.ballots:
        view.result = "No ballots yet" if not result.final else "No ballots were cast"
    if tally.tied:
        view.tie = (
            f"{_names(options, tally.tied)} tied; {options[tally.winner]} "
            f"{'wins' if result.final else 'leads'} by the tie-break. {TIE_BREAK}"
            if tally.winner is not None
            else TIE_BREAK
        )
    out: set[int] = set()
    for number, step in enumerate(tally.rounds, start=1):
        low = _tied_lowest(step.counts, out)
        if step.eliminated and len(low) > 1 and not view.tie:
            view.tie = (
                f"In round {number}, {_names(options, low)} tied for the fewest votes; "
                f"{_names(options, step.eliminated)} was eliminated by the tie-break. {TIE_BREAK}"
            )
        view.rounds.append(
            RoundRow(
                number=number,
                counts=["" if i in out else str(c) for i, c in enumerate(step.counts)],
                eliminated=_names(options, step.eliminated),
                exhausted=step.exhausted,
            )
        )
        out.update(step.eliminated)
    return view
