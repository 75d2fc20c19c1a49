"""A replica's ordered tables: which data ops the ordered judge decides, and for whom.

The data checker decides every data op first (its author's role, keys, row ownership, column
types). An op it accepts that changes a table some enabled app declared *ordered* then goes to
the ``OrderedJudge``, which accepts or refuses it where it stands in the thread's order; a late
op that orders before others can turn their outcome over, and the replica records those changes
(``OpStore.redecide``).

The judge's order is ``(hlc, device, hash)``: stamps grow along causal edges, so it is a
topological order, and it is the order last-writer-wins uses for cells (stamp, then device), so
the rows the judge's validators saw are the rows the database shows. The hash only separates the
two ops a forked device signed at one place, which are refused anyway.

Validators are this node's code (``validators_register`` in an ``AppConfig.ready``): an op that
changes an ordered table whose rules this node does not have waits (``waiting``), like an op of
an unknown schema version, and is decided after an upgrade.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from apps.core.thread import payloads as p
from apps.core.thread.appspec import Closing
from apps.core.thread.control import Timeline
from apps.core.thread.named import Named
from apps.core.thread.op import Op
from apps.core.thread.ordered import Author, Entry, OrderedJudge, OrderedOp, Validator
from apps.core.thread.store import Decision

ACCEPTED = Decision("accepted")

_VALIDATORS: Named[Mapping[str, Validator]] = Named(
    lambda app: LookupError(f"no ordered tables registered for app {app!r}")
)


def validators_register(app: str, factory: Callable[[], Mapping[str, Validator]]) -> None:
    """An app's rules for its ordered tables (table -> validator), in ``AppConfig.ready``."""
    _VALIDATORS.register(app, factory)


def ordered_validators() -> dict[str, Validator]:
    """Every ordered table's rule this node has."""
    found: dict[str, Validator] = {}
    for app in _VALIDATORS.names():
        found.update(_VALIDATORS.make(app))
    return found


class ThreadOrder(OrderedJudge):
    def order_key(self, op: OrderedOp) -> Any:
        return (*op.hlc, op.device, op.hash)


def _accept_all(view, change, author) -> str | None:
    return None  # a close table without rules of its own: the policy says who may close


class OrderedData:
    """The ordered judge of one replica, made for the ordered tables its thread ever had."""

    def __init__(self, validators: Mapping[str, Validator], *, strict: bool = False) -> None:
        self.validators = validators
        self.strict = strict
        self.judge: ThreadOrder | None = None
        self._made_for: tuple[frozenset[str], tuple] | None = None
        self.tables: frozenset[str] = frozenset()
        self._close_tables: frozenset[str] = frozenset()
        self._seen: tuple[Timeline, int] | None = None

    def reset(self) -> None:
        """Every data op is about to be decided again."""
        self.judge = None
        self._seen = None

    def prepare(self, timeline: Timeline) -> None:
        """Know the thread's ordered tables: every table an enabled app ever declared ordered
        (an app disabled later keeps its old rows judged as they were)."""
        seen = len(timeline.policy_events)
        if self.judge is not None and self._seen == (timeline, seen):
            return  # no policy changed since (the usual case: asked for every data op)
        self._seen = (timeline, seen)
        ordered: set[str] = set()
        closes: dict[str, Closing] = {}
        for _op, policy in timeline.policy_events:
            ordered |= policy.ordered
            closes.update(policy.closes)
        made_for = (frozenset(ordered), tuple(sorted(closes.items())))
        if self.judge is not None and made_for == self._made_for:
            return
        self._made_for, self.tables = made_for, frozenset(ordered)
        self._close_tables = frozenset(closes)
        validators = {t: self.validators[t] for t in ordered if t in self.validators}
        for table in closes:
            validators.setdefault(table, _accept_all)
        closes = {t: c for t, c in closes.items() if c.target in validators}
        self.judge = ThreadOrder(validators, closes, strict=self.strict)

    def touches(self, changes: list[p.RowChange]) -> bool:
        return any(change.table in self.tables for change in changes)

    def missing_rules(self, changes: list[p.RowChange]) -> Decision | None:
        for change in changes:
            table = change.table
            if (
                table in self.tables
                and table not in self.validators
                and table not in self._close_tables
            ):
                return Decision(
                    "waiting",
                    f"this node does not have the rules of {table} (its app is not "
                    "installed here, or older): decided after an upgrade",
                )
        return None

    def entry(self, op: Op, changes: list[p.RowChange], author: Author) -> Entry:
        return Entry(op, author, [change for change in changes if change.table in self.tables])

    def decision(self, op_hash: bytes) -> Decision:
        assert self.judge is not None
        outcome = self.judge.outcome(op_hash)
        if outcome.accepted:
            return ACCEPTED
        return Decision("refused", outcome.reason or "refused by the app's rules")
