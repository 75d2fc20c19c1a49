"""Helpers for the ordered-table tests: light ops, random causal histories, the rules of a small
claims app, and a reference judge that replays everything from scratch, as plainly as possible."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from hypothesis import strategies as st

from apps.core.thread.hlc import Stamp
from apps.core.thread.ordered import Author, Changed, Closing, Entry, OrderedJudge, Validator
from apps.core.thread.ordered_view import pk_order
from apps.core.thread.payloads import DELETE, UPSERT, RowChange

OWNER = Author(b"o" * 32, "owner", 1000)
WRITER = Author(b"w" * 32, "writer", 50)


@dataclass(frozen=True)
class FakeOp:
    """An op as the judge sees it (``OrderedOp``): a place in a causal history, no payload."""

    device: bytes
    seq: int
    hlc: Stamp
    deps: tuple[tuple[bytes, int], ...] = ()
    hash: bytes = field(init=False)

    def __post_init__(self) -> None:
        seed = self.device + self.seq.to_bytes(8, "big")
        object.__setattr__(self, "hash", hashlib.blake2b(seed, digest_size=32).digest())

    def in_past(self, device: bytes, seq: int) -> bool:
        if device == self.device:
            return seq < self.seq
        return dict(self.deps).get(device, 0) >= seq


class Devices:
    """Devices writing ops by hand: ``write`` stamps past everything the device has seen,
    ``sync`` makes one device see all another has seen."""

    def __init__(self, count: int) -> None:
        self.names = [bytes([65 + i]) * 32 for i in range(count)]
        self.seen: dict[bytes, dict[bytes, int]] = {name: {} for name in self.names}
        self.clock: dict[bytes, int] = dict.fromkeys(self.names, 0)

    def write(self, device: int, bump: int = 0) -> FakeOp:
        name = self.names[device]
        seq = self.seen[name].get(name, 0) + 1
        self.seen[name][name] = seq
        self.clock[name] += 1 + bump
        deps = tuple(sorted((d, s) for d, s in self.seen[name].items() if d != name))
        return FakeOp(name, seq, Stamp(self.clock[name], 0), deps)

    def sync(self, target: int, source: int) -> None:
        into, other = self.names[target], self.names[source]
        for device, seq in self.seen[other].items():
            if seq > self.seen[into].get(device, 0):
                self.seen[into][device] = seq
        self.clock[into] = max(self.clock[into], self.clock[other])


# -- a small app: items, one claim per item, closes ------------------------------------------------


def item_rule(view: Any, change: RowChange, author: Author) -> str | None:
    """At most two items (a whole-table scan); an item with claims is not deleted."""
    if change.action == DELETE:
        return "the item has claims" if view.rows("claim", item=change.pk) else None
    others = [row for row in view.rows("item") if row["pk"] != change.pk]
    return "at most two items" if len(others) >= 2 else None


def claim_rule(view: Any, change: RowChange, author: Author) -> str | None:
    """One claim per existing item; at most two claims per claimant; n == 3 is an app bug."""
    if change.action == DELETE:
        return None if view.get("claim", change.pk) is not None else "no such claim"
    current = view.get("claim", change.pk) or {}
    merged = {**current, **change.cols}
    if merged.get("n") == 3:
        raise ZeroDivisionError("an app's bug")
    item = merged.get("item")
    if item is None or view.get("item", item) is None:
        return "no such item"
    if any(row["pk"] != change.pk for row in view.rows("claim", item=item)):
        return "the item is already claimed"
    mine = [row for row in view.rows("claim", who=merged.get("who")) if row["pk"] != change.pk]
    return "two claims each" if len(mine) >= 2 else None


def close_rule(view: Any, change: RowChange, author: Author) -> str | None:
    """Only the owner closes, an item that exists; an item tagged "b" only if it has a claim
    where the close stands: then the close depends on the very rows it may refuse (the cycle
    the judge must settle)."""
    if author.role != "owner":
        return "only the owner closes"
    if change.action == DELETE:
        return None
    scope = change.cols["scope"]
    row = view.get("item", scope)
    if row is None:
        return "no such item"
    if row.get("tag") == "b" and not view.rows("claim", item=scope):
        return "nothing to close"
    return None


RULES: Mapping[str, Validator] = {"item": item_rule, "claim": claim_rule, "close": close_rule}
CLOSES = {"close": Closing(target="claim", scope="item")}


def judge(cls: type[OrderedJudge] = OrderedJudge, **options: Any) -> OrderedJudge:
    return cls(RULES, CLOSES, **options)


# -- random histories ------------------------------------------------------------------------------

ITEMS = ["i0", "i1", "i2"]
_item = st.sampled_from(("i0", "i1", "i0", "i1", "i2"))  # i2 exists once an item is gone
_claim = st.fixed_dictionaries(
    {"item": _item, "who": st.sampled_from("ab")}, optional={"n": st.integers(0, 3)}
)
_claim_update = st.fixed_dictionaries(
    {}, optional={"item": _item, "who": st.sampled_from("ab"), "n": st.integers(0, 3)}
)
_cols = {
    "item": (
        st.fixed_dictionaries({"tag": st.sampled_from("ab")}, optional={"n": st.integers(0, 2)}),
        st.fixed_dictionaries({"n": st.integers(0, 2)}),
    ),
    "claim": (_claim, _claim_update),
    "close": (st.fixed_dictionaries({"scope": _item}), st.just({"at": 1})),  # no scope: refused
}
_pks = {"item": ITEMS, "claim": ["c0", "c1", "c2", "c3"], "close": ["k0", "k1"]}


def _one_in(n: int) -> st.SearchStrategy[bool]:
    """True about once in ``n`` draws (an integer compared with 0 would be true far more often:
    Hypothesis favours small values)."""
    return st.sampled_from((False,) * (n - 1) + (True,))


@st.composite
def row_changes(draw: st.DrawFn) -> RowChange:
    table = draw(st.sampled_from(["claim", "close", "claim", "item"]))
    pk = draw(st.sampled_from(_pks[table]))
    if draw(_one_in(6)):
        return RowChange(table, pk, DELETE, {})
    usual, odd = _cols[table]
    cols = dict(draw(odd if draw(_one_in(4)) else usual))
    if draw(_one_in(30)):
        cols["pk"] = "x"  # refused whatever the rules say
    return RowChange(table, pk, UPSERT, cols or {"note": "-"})


@dataclass(frozen=True)
class Step:
    device: int
    sync_from: int | None
    bump: int
    changes: tuple[RowChange, ...]
    pre: bool
    owner: bool


@st.composite
def histories(draw: st.DrawFn, max_steps: int = 14) -> list[Entry]:
    """A causal history of 1-3 devices writing ordered rows: some ops concurrent, some with
    equal stamps (ties broken by hash), some refused before ordering. It starts with the
    owner's items, which each device has seen or not."""
    devices = Devices(draw(st.sampled_from((2, 3, 1))))
    tags = draw(st.tuples(st.sampled_from("ab"), st.sampled_from("ab")))
    items = [
        RowChange("item", pk, UPSERT, {"tag": tag}) for pk, tag in zip(ITEMS, tags, strict=False)
    ]
    entries = [Entry(devices.write(0), OWNER, items)]
    for device in range(1, len(devices.names)):
        if not draw(_one_in(3)):
            devices.sync(device, 0)
    steps = draw(
        st.lists(
            st.builds(
                Step,
                device=st.integers(0, len(devices.names) - 1),
                sync_from=st.sampled_from((None, None, *range(len(devices.names)))),
                bump=st.integers(0, 1),
                changes=st.lists(row_changes(), min_size=1, max_size=3).map(tuple),
                pre=_one_in(10),
                owner=st.booleans(),
            ),
            min_size=2,
            max_size=max_steps,
        )
    )
    for step in steps:
        if step.sync_from is not None:
            devices.sync(step.device, step.sync_from)
        op = devices.write(step.device, step.bump)
        author = OWNER if step.owner else WRITER
        pre = "refused before ordering" if step.pre else None
        entries.append(Entry(op, author, list(step.changes), pre))
    return entries


# -- the reference: judging everything from scratch ------------------------------------------------


class PlainView:
    """The view over a plain dict of rows (table, pk) -> values."""

    def __init__(self, rows: dict[tuple[str, Any], dict[str, Any]]) -> None:
        self._rows = rows

    def get(self, table: str, pk: Any) -> Mapping[str, Any] | None:
        row = self._rows.get((table, pk))
        return MappingProxyType({**row, "pk": pk}) if row is not None else None

    def rows(self, table: str, **equal: Any) -> list[Mapping[str, Any]]:
        if len(equal) > 1:
            raise TypeError("one column at most")
        found = [
            MappingProxyType({**row, "pk": pk})
            for (name, pk), row in self._rows.items()
            if name == table and all(row.get(c, _NONE) == v for c, v in equal.items())
        ]
        return sorted(found, key=lambda row: pk_order(row["pk"]))


_NONE = object()


def _static(entry: Entry) -> str | None:
    for change in entry.changes:
        if change.action == UPSERT and "pk" in change.cols:
            return f"{change.table}: an ordered row has no column named pk"
        if change.action == UPSERT and change.table in CLOSES and "scope" not in change.cols:
            return f"{change.table}: a close row names the scope it closes (column scope)"
    return None


def _closes_in_force(entries: Iterable[Entry], dropped: Mapping[bytes, str]) -> list[tuple]:
    return [
        (change.table, change.cols["scope"], entry.op)
        for entry in entries
        if entry.pre is None and _static(entry) is None and entry.op.hash not in dropped
        for change in entry.changes
        if change.table in CLOSES and change.action == UPSERT
    ]


def _closed(rows: dict, entry: Entry, change: RowChange, in_force: list[tuple]) -> str | None:
    closing = next((c for t, c in CLOSES.items() if c.target == change.table), None)
    if closing is None:
        return None
    old = rows.get((change.table, change.pk), {})
    scopes = {change.cols.get(closing.scope), old.get(closing.scope)} - {None}
    for _table, scope, close_op in in_force:
        seen = close_op.hash == entry.op.hash or close_op.in_past(entry.op.device, entry.op.seq)
        if scope in scopes and not seen:
            return f"{change.table}: the {closing.scope} was closed before this row was seen"
    return None


def _ask(rule: Validator, rows: dict, change: RowChange, author: Author) -> str | None:
    try:
        verdict = rule(PlainView(rows), change, author)  # type: ignore[arg-type]
    except Exception as error:
        return f"the app's rule failed: {type(error).__name__}"
    return verdict


def _judge_one(rows: dict, entry: Entry, in_force: list[tuple]) -> tuple[str | None, dict]:
    work = {key: dict(values) for key, values in rows.items()}
    for change in entry.changes:
        reason = _closed(work, entry, change, in_force)
        if reason is not None:
            return reason, rows
        verdict = _ask(RULES[change.table], work, change, entry.author)
        if verdict is not None:
            return f"{change.table}: {verdict}", rows
        key = (change.table, change.pk)
        if change.action == UPSERT:
            work[key] = {**work.get(key, {}), **change.cols}
        else:
            work.pop(key, None)
    return None, work


def reference(entries: Sequence[Entry]) -> tuple[dict[bytes, str | None], dict]:
    """Verdicts (None: accepted) and final rows, judging in (hlc, hash) order from nothing,
    with every close in force until it is refused (then dropped for good, and all again)."""
    order = sorted(entries, key=lambda e: (e.op.hlc, e.op.hash))
    dropped: dict[bytes, str] = {}
    while True:
        in_force = _closes_in_force(entries, dropped)
        rows: dict = {}
        verdicts: dict[bytes, str | None] = {}
        for entry in order:
            reason = entry.pre or _static(entry) or dropped.get(entry.op.hash)
            if reason is None:
                reason, rows = _judge_one(rows, entry, in_force)
            verdicts[entry.op.hash] = reason
        newly = {op.hash for _t, _s, op in in_force if verdicts[op.hash] is not None}
        if not newly:
            return verdicts, _final(rows)
        dropped.update((h, verdicts[h]) for h in newly)  # type: ignore[misc]


def _final(rows: dict) -> dict:
    final: dict = {}
    for (table, pk), values in rows.items():
        final.setdefault(table, {})[pk] = values
    return final


def verdicts(judge: OrderedJudge, entries: Iterable[Entry]) -> dict[bytes, str | None]:
    return {e.op.hash: judge.outcome(e.op.hash).reason for e in entries}


# -- feeding a judge in random batches -------------------------------------------------------------

Check = Callable[[OrderedJudge, list[Entry], Changed], None]


def feed(judge: OrderedJudge, entries: Sequence[Entry], rng: random.Random, check: Check) -> None:
    """Put ``entries`` in random batches and orders, taking some out and putting some in
    changed on the way, and end with exactly ``entries`` in the judge. ``check`` runs after
    every call with the entries the judge holds and what the call said it changed."""
    originals = {entry.op.hash: entry for entry in entries}
    pending = [entry.op.hash for entry in entries]
    rng.shuffle(pending)
    present: dict[bytes, Entry] = {}

    def call(changed: Changed) -> None:
        check(judge, list(present.values()), changed)

    while pending:
        size = rng.randint(1, max(1, len(pending) // 2))
        batch, pending = pending[:size], pending[size:]
        present.update((h, originals[h]) for h in batch)
        call(judge.put([originals[h] for h in batch]))
        roll = rng.random()
        if roll < 0.25:
            gone = rng.sample(sorted(present), k=rng.randint(1, len(present)))
            for h in gone:
                del present[h]
            call(judge.remove(gone))
            pending += gone
        elif roll < 0.4:
            h = rng.choice(sorted(present))
            entry = present[h]
            present[h] = replace(entry, pre=None if entry.pre else "refused for a while")
            call(judge.put([present[h]]))
            pending.append(h)
