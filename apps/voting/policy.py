"""What voting brings to a thread that enables it (``AppSpec``). The policy says who may touch
a table at all; who votes in which poll, and what a ballot may say, are the rules of
``rules.py``, which refuse in words."""

from apps.core.thread.appspec import AppSpec, Closing
from apps.core.thread.policy import ADMIN, OWNER, READER, WRITER

APP = "voting"
POLL, BALLOT, CLOSE, DEALING, PARTIAL = (
    "voting_poll",
    "voting_ballot",
    "voting_close",
    "voting_dealing",
    "voting_partial",
)

# Polls, closes, dealings and partials are written once: the rules refuse changes in words.
_ONCE = {"insert": "any", "update": "any"}
# A voter replaces or withdraws only their own ballot (its id names them).
_OWN = {"insert": "any", "update": "own", "delete": "own"}
# Anyone a poll names may vote or hold a key share; the rules check the poll's lists.
_TAKES_PART = {BALLOT: _OWN, DEALING: _ONCE, PARTIAL: _ONCE}
_CREATES = {POLL: _ONCE, CLOSE: _ONCE, **_TAKES_PART}

_CREATES_WORDS = "can open polls, vote in those they are called to, and close their own polls"
ROLE_WORDS = {
    OWNER: _CREATES_WORDS,
    ADMIN: _CREATES_WORDS,
    WRITER: _CREATES_WORDS,
    READER: "can vote in polls that call readers to vote",
}


def voting_spec() -> AppSpec:
    return AppSpec(
        app=APP,
        tables=frozenset({POLL, BALLOT, CLOSE, DEALING, PARTIAL}),
        rules={OWNER: _CREATES, ADMIN: _CREATES, WRITER: _CREATES, READER: _TAKES_PART},
        ordered=frozenset({POLL, BALLOT, CLOSE, DEALING, PARTIAL}),
        closes={CLOSE: Closing(target=BALLOT, scope="poll")},
    )
