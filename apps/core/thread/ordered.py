"""Ordered tables: rows judged one by one in the thread's order, each against the state that the
rows ordered before it produced (APPS.md §0 "Ordered tables" and "Time without trusting clocks";
issue 10). Last-writer-wins is right for messages, wrong for money, ballots and claims: "one
claim per item" needs to know which claim came first, the same on every replica.

**The order** is the op's key ``(hlc, hash)``. Every replica refuses an op whose hybrid-clock
stamp is not greater than the stamps of the ops it cites (``replica.py``), so stamps grow along
every causal edge and sorting by stamp is a topological order of the causal graph: a row is
judged after everything its author had seen. Concurrent ops are ordered by stamp and then by
hash, alike everywhere. Nothing else enters: not arrival, not a clock, not which replica asks.

**Judging an entry** (one data op's changes to ordered tables, ``Entry``):

1. refused before ordering (``pre``: policy, keys, ...): refused, no effect; it keeps its place.
2. a change to the target table of a ``Closing`` whose scope (old or new value of the scope
   column) an accepted close row names is refused unless that close's op saw this op (has it in
   its causal past, or is the same op). This is order-free: a row concurrent with the close is
   refused even when it orders before the close and even when it arrived first, because the
   close names what its author saw, not a time (``ordered_closes.py``).
3. each change is put to its table's validator with the view at the op's place; the op's changes
   apply in sequence (a later change sees an earlier one). Any refusal refuses the whole op.
   Accepted: an upsert merges its columns into the row, a delete removes it.

**Closes that refuse what they stand on.** A close is judged at its own place, where the rows it
refuses may still count: a close whose validator accepts it only because of such a row would be
accepted exactly when it is refused. So every close not refused before ordering is *in force*
from the start; a close that turns out refused while in force is dropped (refused, with the
reason its rule gave, whatever it would say once out of force) and the rows it had refused are
judged again. Drops only ever shrink the set in force, so this ends, and the result is a function
of the op set (the control fold treats restrictions the same way, ADR 7). Every ``put`` or
``remove`` starts again from every close in force, as judging the new op set from scratch would.
A close row is an event: deleting it does not reopen its scope.

**Incremental judging.** Each judgment records what it read through the ``View`` (rows, scans,
whole tables, closed scopes) and what it wrote; a write implicitly reads its row (it merges
columns). When an entry is inserted, removed or changes outcome, only the entries ordered after
it that read what changed are judged again, in order (a heap), and so on transitively. Rows are
kept as versions at their order keys (``ordered_view.py``): the state at a place is a bisect, not
a replay. The result is the same as judging everything from scratch in order (tested against a
plain replay, ``tests/core/thread/ordered_support.py``).

Validators must be pure functions of (view, change, author); ``strict=True`` enforces it
(``ordered_purity.py``). An exception in a validator refuses the row ("the app's rule failed") on
every replica alike: a bug in an app must not stop the node.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from apps.core.thread.ordered_closes import Closes, Closing, OrderedOp
from apps.core.thread.ordered_purity import ImpureValidator, PurityGuard
from apps.core.thread.ordered_view import OrderKey, Readers, ReadKey, RowKey, RowStore, State, View
from apps.core.thread.payloads import UPSERT, RowChange

__all__ = [
    "Author",
    "Changed",
    "Closing",
    "Entry",
    "ImpureValidator",
    "OrderedJudge",
    "OrderedOp",
    "Outcome",
    "Validator",
    "View",
]


@dataclass(frozen=True, slots=True)
class Author:
    """The author's standing where its op stands (the caller decides it from control state)."""

    member: bytes  # member public key
    role: str
    rank: int


@dataclass(frozen=True, slots=True)
class Entry:
    """One data op's changes to ordered tables."""

    op: OrderedOp
    author: Author
    changes: Sequence[RowChange]
    pre: str | None = None  # a refusal decided before ordering


@dataclass(frozen=True, slots=True)
class Outcome:
    accepted: bool
    reason: str | None  # why it was refused, in plain words
    changes: tuple[RowChange, ...]  # the changes that took effect (none when refused)


@dataclass(frozen=True, slots=True)
class Changed:
    """What a ``put`` or ``remove`` changed."""

    outcomes: frozenset[bytes]  # ops whose outcome is new or different
    removed: frozenset[bytes]  # ops no longer judged
    rows: frozenset[RowKey]  # rows whose versions changed (their final state may have)
    judged: int  # how many judgments it took


# A refusal reason in plain words, or None to accept.
Validator = Callable[[View, RowChange, Author], "str | None"]

_NO_WRITES: dict[RowKey, State] = {}
_NO_READS: tuple[ReadKey, ...] = ()
_ABSENT = object()
# A node's verdict: None (accepted), a refusal reason, or this before its first judgment.
# Plain values, not ``Outcome`` objects: they are compared after every call, and every object the
# judge keeps is one more for the garbage collector to walk.
_UNJUDGED: Any = object()


class _Node:
    """An entry in the judge: its place, what its last judgment read and wrote, and its outcome."""

    __slots__ = (
        "changes",
        "close_scopes",
        "dirty",
        "dropped",
        "entry",
        "hash",
        "key",
        "op",
        "pre",
        "reads",
        "removed",
        "verdict",
        "writes",
    )

    def __init__(self, entry: Entry, key: OrderKey, changes: tuple[RowChange, ...]) -> None:
        self.entry = entry
        self.op = entry.op
        self.hash = entry.op.hash
        self.key = key
        self.changes = changes
        self.pre: str | None = entry.pre
        self.close_scopes: tuple[ReadKey, ...] = ()  # (close table, scope, CLOSED)
        self.verdict: str | None = _UNJUDGED
        self.dirty = True
        self.dropped: str | None = None
        self.removed = False
        self.reads: tuple[ReadKey, ...] = _NO_READS
        self.writes: dict[RowKey, State] = _NO_WRITES


def _frozen(change: RowChange) -> RowChange:
    """A copy whose columns a validator cannot change (strict mode: a rule that mutates the
    change it judges fails in the app's tests, not on one replica in production)."""
    return RowChange(change.table, change.pk, change.action, MappingProxyType(dict(change.cols)))  # type: ignore[arg-type]


def _same(one: Entry, other: Entry) -> bool:
    return (
        one.pre == other.pre
        and one.author == other.author
        and tuple(one.changes) == tuple(other.changes)
    )


class OrderedJudge:
    """Judges ordered rows incrementally; see the module docstring. Not thread-safe.

    ``validators``: ordered table -> its rule. ``closes``: close table -> the ``Closing`` its
    rows close (a close table is ordered too; its validator, if any, in ``validators``).
    ``strict``: validators run under ``PurityGuard``, and an impure one raises
    ``ImpureValidator`` out of ``put``/``remove`` (the judge is unusable after that).
    """

    def __init__(
        self,
        validators: Mapping[str, Validator],
        closes: Mapping[str, Closing] | None = None,
        *,
        strict: bool = False,
    ) -> None:
        self._validators = dict(validators)
        self._closes = Closes(closes or {}, self._validators)
        self._strict = strict
        self._ordered = frozenset(self._validators) | frozenset(self._closes.tables)
        self._store = RowStore()
        self._readers = Readers()
        self._nodes: dict[bytes, _Node] = {}
        self._dropped: list[_Node] = []  # closes refused while in force
        self._heap: list[tuple[OrderKey, bytes]] = []
        self._closes_judged: list[_Node] = []
        self._broken = False
        self._call_reset()

    # -- the order ------------------------------------------------------------------------------

    def order_key(self, op: OrderedOp) -> OrderKey:
        """Where an op's rows are judged: by stamp (a topological order of the causal graph),
        then by hash (concurrent ops, alike on every replica)."""
        return (*op.hlc, op.hash)

    # -- the interface --------------------------------------------------------------------------

    def put(self, entries: Iterable[Entry]) -> Changed:
        """Add entries, or replace those whose op is already here; judge what must be judged."""
        entries = list(entries)
        for entry in entries:
            self._check_tables(entry)
        self._call_start()
        fresh: list[_Node] = []
        for entry in entries:
            node = self._nodes.get(entry.op.hash)
            if node is not None:
                if _same(node.entry, entry):
                    continue
                self._remove(node)
            fresh.append(self._insert(entry))
        fresh.sort(key=lambda node: node.key)
        return self._settle(fresh)

    def remove(self, op_hashes: Iterable[bytes]) -> Changed:
        """Take entries out (unknown hashes are ignored) and judge again what read them."""
        self._call_start()
        for op_hash in op_hashes:
            node = self._nodes.get(op_hash)
            if node is not None:
                self._remove(node)
        return self._settle([])

    def outcome(self, op_hash: bytes) -> Outcome:
        node = self._nodes[op_hash]
        if node.verdict is None:
            return Outcome(True, None, node.changes)
        return Outcome(False, node.verdict, ())

    def __contains__(self, op_hash: object) -> bool:
        return op_hash in self._nodes

    def __len__(self) -> int:
        return len(self._nodes)

    def rows(self) -> dict[str, dict[Any, dict[str, Any]]]:
        """The ordered tables after every entry: table -> pk -> values."""
        return self._store.final()

    # -- entries in and out ---------------------------------------------------------------------

    def _check_tables(self, entry: Entry) -> None:
        for change in entry.changes:
            if change.table not in self._ordered:
                raise ValueError(f"table {change.table} is not an ordered table of this judge")

    def _static_refusal(self, changes: Sequence[RowChange]) -> str | None:
        """Refusals that depend on the change alone."""
        for change in changes:
            if change.action != UPSERT:
                continue
            if "pk" in change.cols:
                return f"{change.table}: an ordered row has no column named pk"
            reason = self._closes.refusal(change)
            if reason is not None:
                return reason
        return None

    def _insert(self, entry: Entry) -> _Node:
        if self._strict:
            changes = tuple(_frozen(change) for change in entry.changes)
        else:
            changes = tuple(entry.changes)
        node = _Node(entry, self.order_key(entry.op), changes)
        if node.pre is None:
            node.pre = self._static_refusal(changes)
        if node.pre is None:  # only then does every close row name its scope
            node.close_scopes = self._closes.named(changes)
        self._nodes[node.hash] = node
        self._before.setdefault(node.hash, _UNJUDGED)
        if node.close_scopes:
            self._force(node, True)
        return node

    def _remove(self, node: _Node) -> None:
        self._before.setdefault(node.hash, node.verdict)
        self._set_writes(node, _NO_WRITES)
        self._readers.discard(node.hash, node.reads)
        if node.close_scopes:
            self._force(node, False)
        del self._nodes[node.hash]
        node.removed = True

    # -- one call: start, settle, report --------------------------------------------------------

    def _call_reset(self) -> None:
        self._before: dict[bytes, str | None] = {}  # verdicts before this call
        self._rows_changed: set[RowKey] = set()
        self._judged = 0

    def _call_start(self) -> None:
        """Every close is in force again at the start (see the module docstring): the closes
        dropped last time are judged again, and so is what they close."""
        if self._broken:
            raise RuntimeError(
                "this judge stopped in the middle of a call (an impure validator, or an "
                "interruption): build a new one"
            )
        self._call_reset()
        for node in self._dropped:
            node.dropped = None
            self._force(node, True)
            self._mark(node)
        self._dropped = []

    def _settle(self, fresh: list[_Node]) -> Changed:
        try:
            self._run(fresh)
            while self._drop_refused_closes():
                self._run([])
        except BaseException:
            self._broken = True
            raise
        return self._changed()

    def _changed(self) -> Changed:
        outcomes, removed = set(), set()
        for op_hash, before in self._before.items():
            node = self._nodes.get(op_hash)
            if node is None:
                if before is not _UNJUDGED:
                    removed.add(op_hash)
            elif node.verdict != before:
                outcomes.add(op_hash)
        changed = Changed(
            frozenset(outcomes), frozenset(removed), frozenset(self._rows_changed), self._judged
        )
        self._call_reset()
        return changed

    def _run(self, fresh: list[_Node]) -> None:
        """Judge the new entries and every dirty one, in order: a judgment only dirties entries
        ordered after it, so each is judged at most once per run."""
        heap, nodes = self._heap, self._nodes
        at, count = 0, len(fresh)
        while True:
            if at < count and (not heap or fresh[at].key < heap[0][0]):
                node = fresh[at]
                at += 1
                if node.removed or not node.dirty:
                    continue
            elif heap:
                key, op_hash = heapq.heappop(heap)
                found = nodes.get(op_hash)
                if found is None or not found.dirty or found.key != key:
                    continue
                node = found
            else:
                return
            node.dirty = False
            self._judge(node)

    # -- closes in force ------------------------------------------------------------------------

    def _force(self, node: _Node, on: bool) -> None:
        """Put a close in force or take it out, and dirty the rows that asked about its scopes
        (wherever they stand: closing is order-free)."""
        self._closes.force(node.op, node.close_scopes, on)
        for key in node.close_scopes:
            for reader in self._readers.of(key):
                self._mark(self._nodes[reader])

    def _drop_refused_closes(self) -> bool:
        """Drop for good the closes in force that were refused in this run."""
        dropped = False
        for node in self._closes_judged:
            if node.removed or node.dropped is not None or node.verdict is None:
                continue
            node.dropped = node.verdict
            self._dropped.append(node)
            self._force(node, False)
            dropped = True
        self._closes_judged = []
        return dropped

    # -- judging one entry ----------------------------------------------------------------------

    def _judge(self, node: _Node) -> None:
        self._judged += 1
        if node.hash not in self._before:
            self._before[node.hash] = node.verdict
        reason = node.pre if node.pre is not None else node.dropped
        reads, writes = _NO_READS, _NO_WRITES
        if reason is None:
            view = View(self._store, node.key)
            reason = self._judge_changes(view, node)
            reads = tuple(view.reads)
            if reason is None:
                writes = view._written()
            if node.close_scopes:
                self._closes_judged.append(node)
        self._set_reads(node, reads)
        self._set_writes(node, writes)
        node.verdict = reason

    def _judge_changes(self, view: View, node: _Node) -> str | None:
        author, closed = node.entry.author, self._closes.closed
        for change in node.changes:
            table = change.table
            reason = closed(view, node.op, change)
            if reason is None:
                validator = self._validators.get(table)
                if validator is not None:
                    reason = self._ask(validator, view, change, author)
            if reason is not None:
                return f"{table}: {reason}"
            view._apply(change)
        return None

    def _ask(
        self, validator: Validator, view: View, change: RowChange, author: Author
    ) -> str | None:
        try:
            if self._strict:
                with PurityGuard():
                    verdict = validator(view, change, author)
            else:
                verdict = validator(view, change, author)
        except ImpureValidator:
            raise
        except Exception as error:  # an app's bug refuses its row alike everywhere
            return f"the app's rule failed: {type(error).__name__}"
        if verdict is None:
            return None
        if type(verdict) is str and verdict:
            return verdict
        return "the app's rule refused it without saying why"

    # -- what a judgment read and wrote ---------------------------------------------------------

    def _set_reads(self, node: _Node, reads: tuple[ReadKey, ...]) -> None:
        old = node.reads
        if old is reads or old == reads:
            return
        if old:
            self._readers.discard(node.hash, old)
        self._readers.add(node.hash, reads)
        node.reads = reads

    def _set_writes(self, node: _Node, new: dict[RowKey, State]) -> None:
        """Swap an entry's versions for new ones and dirty the later readers of what changed."""
        old = node.writes
        if not old and not new:
            return
        node.writes = new
        store, position = self._store, node.key
        for key in old.keys() | new.keys():
            before, after = old.get(key, _ABSENT), new.get(key, _ABSENT)
            if before == after:
                continue
            if before is _ABSENT or after is _ABSENT:
                previous = store.state_at(key, position)
                before = previous if before is _ABSENT else before
                after = previous if after is _ABSENT else after
                if key not in new:
                    store.drop(key, position)
            if key in new:
                store.put(key, position, new[key])
            self._rows_changed.add(key)
            self._dirty_readers(key, position, before, after)  # type: ignore[arg-type]

    def _dirty_readers(self, key: RowKey, position: OrderKey, before: State, after: State) -> None:
        """Dirty the entries after ``position`` whose reads a change of the row from ``before``
        to ``after`` (its state just after ``position``) can have changed."""
        readers, table = self._readers, key[0]
        self._mark_after(readers.of(key), position)
        for column in self._store.indexed_columns(table):
            for state in (before, after):
                if state is not None and column in state:
                    self._mark_after(readers.of((table, column, state[column])), position)
        self._mark_after(readers.of(table), position)

    def _mark_after(self, readers: Iterable[bytes], position: OrderKey) -> None:
        nodes = self._nodes
        for reader in readers:
            node = nodes[reader]
            if not node.dirty and node.key > position:
                node.dirty = True
                heapq.heappush(self._heap, (node.key, reader))

    def _mark(self, node: _Node) -> None:
        if not node.dirty:
            node.dirty = True
            heapq.heappush(self._heap, (node.key, node.hash))
