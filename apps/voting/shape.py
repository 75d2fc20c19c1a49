"""A poll's row read as a poll: its options, voters, roles and trustees, however the row was
written. Used alike by the rules (on the rows of an op, which a modified node may fill with
anything), the services and the pages, so that all three read a poll the same way."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from apps.voting.tally import METHODS

MIN_OPTIONS, MAX_OPTIONS = 2, 50
MAX_ROLES = 20
MAX_ELECTORATE = 5000
MIN_TRUSTEES, MAX_TRUSTEES = 2, 20
SECRET_METHODS = ("single", "approval")
_MEMBER = re.compile(r"[0-9a-f]{64}\Z")
_JSON_LIMIT = 400_000  # characters: the electorate of 5 000 voters fits


class PollProblem(ValueError):
    """What is wrong with a poll row, in plain words."""


@dataclass(frozen=True)
class PollShape:
    pk: str  # 32 hex digits
    question: str
    options: tuple[str, ...]
    method: str
    roles: tuple[str, ...]
    electorate: tuple[str, ...]  # member keys, hex
    quorum: int
    results_visible: bool
    secret: bool
    trustees: tuple[str, ...]  # member keys, hex
    threshold: int

    @property
    def exactly_one(self) -> bool:
        return self.method == "single"

    def trustee_keys(self) -> list[bytes]:
        return [bytes.fromhex(member) for member in self.trustees]


def poll_context(pk: str) -> bytes:
    """What binds a secret poll's keys and proofs to this poll alone."""
    return b"sereus-vote/v1/poll/" + uuid.UUID(hex=pk).bytes


def ballot_context(pk: str, voter: bytes) -> bytes:
    """A ballot's proofs are bound to its poll and its voter: copied under another voter's
    name they do not verify."""
    return poll_context(pk) + b"/voter/" + voter


def _json_list(value: Any, what: str) -> list[Any]:
    if type(value) is not str or len(value) > _JSON_LIMIT:
        raise PollProblem(f"a poll's {what} are a list")
    try:
        found = json.loads(value)
    except ValueError:
        raise PollProblem(f"a poll's {what} are not readable") from None
    if type(found) is not list:
        raise PollProblem(f"a poll's {what} are a list")
    return found


def _members(value: Any, what: str, most: int) -> tuple[str, ...]:
    found = _json_list(value, what)
    if len(found) > most:
        raise PollProblem(f"a poll names at most {most} {what}")
    if any(type(m) is not str or not _MEMBER.match(m) for m in found):
        raise PollProblem(f"a poll's {what} are members of the thread")
    if len(set(found)) != len(found):
        raise PollProblem(f"a poll names each of its {what} once")
    return tuple(found)


def _int(value: Any) -> int:
    return int(value) if type(value) in (int, bool) else -1


def poll_shape(pk: str, row: Mapping[str, Any]) -> PollShape:
    """Read a poll row, or raise ``PollProblem`` saying what is wrong with it."""
    question = row.get("question")
    if type(question) is not str or not question.strip():
        raise PollProblem("a poll asks a question")
    options = _json_list(row.get("options"), "options")
    if not MIN_OPTIONS <= len(options) <= MAX_OPTIONS:
        raise PollProblem(f"a poll has {MIN_OPTIONS} to {MAX_OPTIONS} options")
    if any(type(o) is not str or not o.strip() or len(o) > 200 for o in options):
        raise PollProblem("each option is a few words (1 to 200 characters)")
    if len({o.strip().casefold() for o in options}) != len(options):
        raise PollProblem("a poll lists each option once")
    method = row.get("method")
    if method not in METHODS:
        raise PollProblem("a poll's method is single choice, approval, ranked or score")
    roles = _json_list(row.get("roles"), "voting roles")
    if not roles or len(roles) > MAX_ROLES or any(type(r) is not str or not r for r in roles):
        raise PollProblem("a poll names the roles that vote")
    electorate = _members(row.get("electorate"), "voters", MAX_ELECTORATE)
    if not electorate:
        raise PollProblem("a poll has at least one voter")
    quorum = _int(row.get("quorum", 0))
    if not 0 <= quorum <= len(electorate):
        raise PollProblem("a poll's quorum is a number of ballots no larger than its voters")
    secret = bool(row.get("secret"))
    trustees = _members(row.get("trustees", "[]"), "trustees", MAX_TRUSTEES)
    threshold = _int(row.get("threshold", 0))
    if secret:
        if method not in SECRET_METHODS:
            raise PollProblem(
                "a secret poll is single choice or approval: ranked and score ballots cannot "
                "be counted without reading each one"
            )
        if len(trustees) < MIN_TRUSTEES:
            raise PollProblem(f"a secret poll names {MIN_TRUSTEES} to {MAX_TRUSTEES} trustees")
        if not MIN_TRUSTEES <= threshold <= len(trustees):
            raise PollProblem(
                f"a secret poll needs {MIN_TRUSTEES} or more of its trustees to count, and no "
                "more than it names"
            )
    elif trustees or threshold:
        raise PollProblem("only a secret poll has trustees")
    return PollShape(
        pk=pk,
        question=question.strip(),
        options=tuple(o.strip() for o in options),
        method=method,
        roles=tuple(roles),
        electorate=electorate,
        quorum=quorum,
        results_visible=bool(row.get("results_visible", True)),
        secret=secret,
        trustees=trustees,
        threshold=threshold,
    )


def ballot_json(ballot: Mapping[str, Any]) -> str:
    """A named ballot as its column holds it (compact, keys sorted)."""
    return json.dumps(ballot, separators=(",", ":"), sort_keys=True)


def ballot_read(value: Any) -> Any:
    """A named ballot's column read back (anything: ``tally.ballot_problem`` judges it)."""
    if type(value) is not str or len(value) > 20_000:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return None
