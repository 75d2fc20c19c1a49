"""Ordered tables: rows judged one by one in (hlc, hash) order, closes that refuse what they did
not see, and incremental judging that always equals judging everything from scratch."""

from __future__ import annotations

import datetime
import hashlib
import random
import socket
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from apps.core.thread.ordered import (
    Author,
    Changed,
    Entry,
    ImpureValidator,
    OrderedJudge,
    OrderedOp,
)
from apps.core.thread.ordered_closes import Closes
from apps.core.thread.ordered_purity import pure_validators
from apps.core.thread.ordered_view import OrderKey, State
from apps.core.thread.payloads import DELETE, UPSERT, RowChange
from apps.core.thread.writer import ThreadWriter
from tests.core.thread.conftest import Party, join, rid
from tests.core.thread.ordered_support import (
    CLOSES,
    OWNER,
    RULES,
    WRITER,
    Devices,
    feed,
    histories,
    judge,
    reference,
    verdicts,
)

PROPERTY = settings(
    max_examples=500,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


def item(pk: str, **cols: Any) -> RowChange:
    return RowChange("item", pk, UPSERT, cols or {"n": 0})


def claim(pk: str, on: str, who: str = "a", **cols: Any) -> RowChange:
    return RowChange("claim", pk, UPSERT, {"item": on, "who": who, **cols})


def close(pk: str, scope: str) -> RowChange:
    return RowChange("close", pk, UPSERT, {"scope": scope})


def entry(op: OrderedOp, *changes: RowChange, author: Author = WRITER, pre: str | None = None):
    return Entry(op, author, list(changes), pre)


def reason(judge: OrderedJudge, e: Entry) -> str | None:
    return judge.outcome(e.op.hash).reason


@pytest.fixture
def devices() -> Devices:
    return Devices(3)


@pytest.fixture
def base(devices: Devices) -> Entry:
    """The owner's items i0 and i1, seen by every device; i0 is closed only with a claim."""
    e = entry(devices.write(0), item("i0", n=0, tag="b"), item("i1"), author=OWNER)
    devices.sync(1, 0)
    devices.sync(2, 0)
    return e


# -- the order -------------------------------------------------------------------------------------


def test_the_first_claim_in_the_order_wins_whatever_arrives_first(devices, base):
    early = entry(devices.write(1), claim("c1", "i0"))
    late = entry(devices.write(2, bump=1), claim("c2", "i0", who="b"))
    j = judge()
    j.put([base, late])
    assert reason(j, late) is None
    changed = j.put([early])
    assert reason(j, early) is None
    assert reason(j, late) == "claim: the item is already claimed"
    assert changed.outcomes == {early.op.hash, late.op.hash}
    assert changed.judged == 2  # the late claim and the claim that read its item, nothing else
    assert j.rows()["claim"] == {"c1": {"item": "i0", "who": "a"}}


def test_equal_stamps_are_ordered_by_hash(devices, base):
    one = entry(devices.write(1), claim("c1", "i0"))
    two = entry(devices.write(2), claim("c2", "i0", who="b"))
    assert one.op.hlc == two.op.hlc
    first, second = sorted([one, two], key=lambda e: e.op.hash)
    for arrival in ([one, two], [two, one]):
        j = judge()
        j.put([base, *arrival])
        assert reason(j, first) is None
        assert reason(j, second) == "claim: the item is already claimed"


def test_an_op_is_all_or_nothing_and_sees_its_own_earlier_changes(devices, base):
    both = entry(devices.write(1), claim("c1", "i0"), claim("c2", "i0"))
    gone = RowChange("claim", "c3", DELETE, {})
    own = entry(devices.write(1), claim("c3", "i1"), gone, claim("c4", "i1"))
    j = judge()
    j.put([base, both, own])
    assert reason(j, both) == "claim: the item is already claimed"  # by its own first claim
    assert j.outcome(both.op.hash).changes == ()
    assert reason(j, own) is None  # it deletes the claim it made, and claims the item again
    assert j.outcome(own.op.hash).changes == tuple(own.changes)
    assert j.rows()["claim"] == {"c4": {"item": "i1", "who": "a"}}


def test_a_refusal_before_ordering_holds_its_place_without_effect(devices, base):
    refused = entry(devices.write(1), claim("c1", "i0"), pre="role writer may not insert")
    later = entry(devices.write(1), claim("c2", "i0"))
    j = judge()
    j.put([base, refused, later])
    assert reason(j, refused) == "role writer may not insert"
    assert reason(j, later) is None


def test_upserts_merge_columns_and_deletes_remove_rows(devices, base):
    first = entry(devices.write(1), claim("c1", "i0", n=1))
    merge = entry(devices.write(1), RowChange("claim", "c1", UPSERT, {"n": 2}))
    gone = entry(devices.write(1), RowChange("claim", "c1", DELETE, {}))
    j = judge()
    j.put([base, first, merge])
    assert j.rows()["claim"] == {"c1": {"item": "i0", "who": "a", "n": 2}}
    j.put([gone])
    assert "claim" not in j.rows()
    again = entry(devices.write(1), RowChange("claim", "c1", DELETE, {}))
    j.put([again])
    assert reason(j, again) == "claim: no such claim"


def test_the_view_is_read_only_and_lists_rows_by_key(devices, base):
    seen: list[Any] = []

    def nosy(view, change, author):
        seen.append([row["pk"] for row in view.rows("item")])
        seen.append(view.rows("item", n=0)[0])
        view.get("item", "i0")["n"] = 5  # refused: the app's rule failed

    j = OrderedJudge({"item": RULES["item"], "nosy": nosy})
    j.put([base])
    probe = entry(devices.write(1), RowChange("nosy", "x", UPSERT, {"a": 1}))
    j.put([probe])
    assert reason(j, probe) == "nosy: the app's rule failed: TypeError"
    assert seen[0] == ["i0", "i1"]
    assert dict(seen[1]) == {"pk": "i0", "n": 0, "tag": "b"}
    assert j.rows()["item"]["i0"] == {"n": 0, "tag": "b"}


def test_rows_filters_on_one_column_at_most(devices):
    j = OrderedJudge({"t": lambda view, change, author: view.rows("t", a=1, b=2)})
    e = entry(devices.write(0), RowChange("t", "x", UPSERT, {"a": 1}))
    j.put([e])
    assert reason(j, e) == "t: the app's rule failed: TypeError"


# -- incremental judging ---------------------------------------------------------------------------


def test_a_late_row_judges_again_only_the_rows_that_read_what_it_changed(devices, base):
    j = judge(cls=OrderedJudge)
    j.put([base])
    claims = [entry(devices.write(1), claim(f"c{i}", "i0" if i % 2 else "i1")) for i in range(200)]
    j.put(claims)
    ops = [c.op.hash for c in claims]
    assert [reason(j, c) for c in claims[:3]] == [None, None, "claim: the item is already claimed"]
    # A third item, ordered before every claim: no claim read the items table whole.
    late = entry(devices.write(0), item("i9"))
    changed = j.put([late])
    assert changed.judged == 1
    assert changed.outcomes == {late.op.hash}
    assert reason(j, late) == "item: at most two items"
    # Without the first claim of i1, the next one takes the item: the claims of i1 are judged
    # again (they read the claims of i1), and the one accepted claim of i0 (it read the claims
    # of its claimant); the other 99 claims of i0 are not.
    changed = j.remove([ops[0]])
    assert reason(j, claims[2]) is None
    assert changed.judged == 100
    assert changed.removed == {ops[0]}
    assert changed.outcomes == {ops[2]}


def test_putting_an_entry_again_changes_nothing_and_a_changed_one_is_judged_again(devices, base):
    c = entry(devices.write(1), claim("c1", "i0"))
    j = judge()
    j.put([base, c])
    assert j.put([entry(c.op, *c.changes)]) == Changed(frozenset(), frozenset(), frozenset(), 0)
    changed = j.put([entry(c.op, *c.changes, pre="no")])
    assert changed.outcomes == {c.op.hash}
    assert reason(j, c) == "no"


@PROPERTY
@given(entries=histories(), seed=st.integers(0, 2**32 - 1))
def test_incremental_judging_equals_judging_everything_from_scratch(entries, seed):
    _agrees_with_reference(OrderedJudge, entries, random.Random(seed))


@settings(PROPERTY, max_examples=200)
@given(entries=histories(), seed=st.integers(0, 2**32 - 1))
def test_the_outcome_does_not_depend_on_arrival(entries, seed):
    _arrival_free(OrderedJudge, entries, random.Random(seed))


def _agrees_with_reference(cls: type[OrderedJudge], entries: list[Entry], rng) -> None:
    previous: dict[bytes, str | None] = {}

    def check(j: OrderedJudge, present: list[Entry], changed: Changed) -> None:
        nonlocal previous
        expected, rows = reference(present)
        assert verdicts(j, present) == expected
        assert j.rows() == rows
        assert changed.outcomes == {h for h, v in expected.items() if previous.get(h, ()) != v}
        assert changed.removed == previous.keys() - expected.keys()
        previous = expected

    feed(judge(cls), entries, rng, check)


def _arrival_free(cls: type[OrderedJudge], entries: list[Entry], rng) -> None:
    results = []
    for _ in range(2):
        j = judge(cls)
        feed(j, entries, rng, lambda *_: None)
        results.append((verdicts(j, entries), j.rows()))
    assert results[0] == results[1]


# -- the properties catch a broken judge -----------------------------------------------------------


class HashOrder(OrderedJudge):
    """Orders by hash alone: not a topological order of the causal graph."""

    def order_key(self, op: OrderedOp) -> OrderKey:
        return (op.hash,)


class ArrivalOrder(OrderedJudge):
    """Orders by arrival: a different order on every replica."""

    arrivals = 0

    def order_key(self, op: OrderedOp) -> OrderKey:
        self.arrivals += 1
        return (self.arrivals, op.hash)


class ForgetsScans(OrderedJudge):
    """Does not judge again the rows whose scans a write changed."""

    def _dirty_readers(self, key, position: OrderKey, before: State, after: State) -> None:
        self._mark_after(self._readers.of(key), position)


class ForgetsCloses(OrderedJudge):
    """Does not judge again the rows of a scope when a close there comes into force or not."""

    def _force(self, node, on: bool) -> None:
        readers, self._readers = self._readers, type(self._readers)()
        super()._force(node, on)
        self._readers = readers


class KeepsRefusedCloses(OrderedJudge):
    """Leaves a close in force when its own rule refused it."""

    def _drop_refused_closes(self) -> bool:
        self._closes_judged = []
        return False


class ForwardCloses(Closes):
    def unseen(self, op, closers) -> bool:
        return any(
            (closer.hlc, closer.hash) < (op.hlc, op.hash) and not closer.in_past(op.device, op.seq)
            for closer in closers.values()
        )


class ClosesOnlyForward(OrderedJudge):
    """Lets a close refuse only the rows ordered after it (a close judged by time, not by what
    it saw)."""

    def __init__(self, validators, closes=None, **options) -> None:
        super().__init__(validators, closes, **options)
        self._closes = ForwardCloses(closes or {}, validators)


@pytest.mark.parametrize(
    ("mutant", "prop"),
    [
        (HashOrder, _agrees_with_reference),
        (ArrivalOrder, _arrival_free),
        (ArrivalOrder, _agrees_with_reference),
        (ForgetsScans, _agrees_with_reference),
        (ForgetsCloses, _agrees_with_reference),
        (KeepsRefusedCloses, _agrees_with_reference),
        (ClosesOnlyForward, _agrees_with_reference),
    ],
)
def test_the_properties_catch_a_broken_judge(mutant, prop):
    @settings(PROPERTY, database=None, phases=[Phase.generate])
    @given(entries=histories(), seed=st.integers(0, 2**32 - 1))
    def run(entries, seed):
        prop(mutant, entries, random.Random(seed))

    with pytest.raises(AssertionError):
        run()


# -- closes ----------------------------------------------------------------------------------------


def test_a_row_the_close_did_not_see_is_refused_even_ordered_before_it(devices, base):
    seen = entry(devices.write(1), claim("c1", "i0"))
    devices.sync(0, 1)
    unseen = entry(devices.write(2), RowChange("claim", "c2", UPSERT, {"item": "i0", "n": 1}))
    shut = entry(devices.write(0, bump=5), close("k", "i0"), author=OWNER)
    assert unseen.op.hlc < shut.op.hlc  # ordered before the close, but concurrent with it
    for arrival in ([base, seen, unseen, shut], [shut, unseen, base, seen]):
        j = judge()
        for e in arrival:
            j.put([e])
        assert reason(j, seen) is None
        assert reason(j, unseen) == "claim: the item was closed before this row was seen"
        assert reason(j, shut) is None


def test_a_close_arriving_late_refuses_rows_accepted_before_and_later_rows_too(devices, base):
    early = entry(devices.write(1), claim("c1", "i0"))
    devices.sync(0, 1)
    shut = entry(devices.write(0), close("k", "i0"), author=OWNER)
    concurrent = entry(devices.write(1), RowChange("claim", "c1", UPSERT, {"n": 1}))
    devices.sync(1, 0)
    after = entry(devices.write(1), RowChange("claim", "c1", DELETE, {}))
    j = judge()
    j.put([base, early, concurrent])
    assert reason(j, concurrent) is None
    changed = j.put([shut])
    assert reason(j, shut) is None
    closed = "claim: the item was closed before this row was seen"
    assert reason(j, concurrent) == closed
    assert changed.outcomes == {shut.op.hash, concurrent.op.hash}
    j.put([after])
    assert reason(j, after) == closed
    assert j.rows()["claim"] == {"c1": {"item": "i0", "who": "a"}}


def test_a_row_cannot_leave_a_closed_scope(devices, base):
    early = entry(devices.write(1), claim("c1", "i0"))
    devices.sync(0, 1)
    shut = entry(devices.write(0), close("k", "i0"), author=OWNER)
    devices.sync(1, 0)
    move = entry(devices.write(1), RowChange("claim", "c1", UPSERT, {"item": "i1"}))
    j = judge()
    j.put([base, early, shut, move])
    assert reason(j, move) == "claim: the item was closed before this row was seen"


def test_a_close_its_rule_refuses_closes_nothing(devices, base):
    early = entry(devices.write(1), claim("c1", "i0"))
    devices.sync(0, 1)
    unseen = entry(devices.write(2), claim("c2", "i1", who="b"))
    shut = entry(devices.write(0, bump=3), close("k", "i1"), author=WRITER)
    j = judge()
    changed = j.put([base, early, unseen, shut])
    assert reason(j, shut) == "close: only the owner closes"
    assert reason(j, unseen) is None
    assert changed.outcomes == {e.op.hash for e in (base, early, unseen, shut)}


def test_a_close_that_stands_on_the_row_it_refuses_is_dropped_for_good(devices, base):
    # The close's rule wants a claim on item i0 where it stands; the only one is concurrent
    # with it. In force, the close refuses that claim and then has nothing to close: refused,
    # dropped, and the claim stands. Every replica gets there, whatever arrives first.
    unseen = entry(devices.write(1), claim("c1", "i0"))
    shut = entry(devices.write(0, bump=3), close("k", "i0"), author=OWNER)
    assert unseen.op.hlc < shut.op.hlc
    for arrival in ([base, unseen, shut], [shut, base, unseen], [unseen, shut, base]):
        j = judge()
        for e in arrival:
            j.put([e])
        assert reason(j, shut) == "close: nothing to close"
        assert reason(j, unseen) is None
    assert reference([base, unseen, shut])[0][unseen.op.hash] is None


def test_deleting_a_close_row_does_not_reopen_its_scope(devices, base):
    early = entry(devices.write(1), claim("c1", "i0"))
    devices.sync(0, 1)
    shut = entry(devices.write(0), close("k", "i0"), author=OWNER)
    reopen = entry(devices.write(0), RowChange("close", "k", DELETE, {}), author=OWNER)
    unseen = entry(devices.write(2, bump=9), claim("c2", "i0", who="b"))
    j = judge()
    j.put([base, early, shut, reopen, unseen])
    assert reason(j, reopen) is None
    assert "close" not in j.rows()
    assert reason(j, unseen) == "claim: the item was closed before this row was seen"


# -- refusals that depend on the change alone, and broken apps -------------------------------------


def test_rows_refused_for_their_shape(devices, base):
    named_pk = entry(devices.write(1), RowChange("claim", "c1", UPSERT, {"item": "i0", "pk": 1}))
    no_scope = entry(devices.write(0), RowChange("close", "k", UPSERT, {"at": 1}), author=OWNER)
    j = judge()
    j.put([base, named_pk, no_scope])
    assert reason(j, named_pk) == "claim: an ordered row has no column named pk"
    assert reason(j, no_scope) == "close: a close row names the scope it closes (column scope)"


def test_a_table_that_is_not_ordered_is_a_caller_bug(devices):
    j = judge()
    with pytest.raises(ValueError, match="not an ordered table"):
        j.put([entry(devices.write(0), RowChange("notes", "n", UPSERT, {"a": 1}))])
    assert len(j) == 0
    with pytest.raises(ValueError, match="not ordered"):
        OrderedJudge({}, CLOSES)


def test_a_rule_that_fails_or_gives_no_reason_refuses_its_row(devices, base):
    broken = entry(devices.write(1), claim("c1", "i0", n=3))
    j = OrderedJudge({**RULES, "flag": lambda view, change, author: False}, CLOSES)
    flag = entry(devices.write(1), RowChange("flag", "f", UPSERT, {"a": 1}))
    j.put([base, broken, flag])
    assert reason(j, broken) == "claim: the app's rule failed: ZeroDivisionError"
    assert reason(j, flag) == "flag: the app's rule refused it without saying why"


# -- pure validators -------------------------------------------------------------------------------


def _reads_time(view, change, author):
    return "late" if time.time() > 0 else None


def _reads_datetime(view, change, author):
    return None if datetime.datetime.now() else "no"


def _opens_socket(view, change, author):
    socket.socket().close()


def _opens_file(view, change, author):
    with open(__file__) as handle:
        return handle.read(0) or None


def _touches_database(view, change, author):
    from django.db import connection

    connection.cursor()


def _draws_random(view, change, author):
    return "unlucky" if random.random() < 0.5 else None


def _swallows(view, change, author):
    try:
        time.monotonic()
    except Exception:
        return None
    return None


@pytest.mark.parametrize(
    ("rule", "words"),
    [
        (_reads_time, "reads the clock (time.time)"),
        (_reads_datetime, "reads the clock (datetime.now)"),
        (_opens_socket, "opens a socket"),
        (_opens_file, "opens a file"),
        (_touches_database, "touches a database connection"),
        (_draws_random, "draws random numbers"),
        (_swallows, "reads the clock (time.monotonic)"),
    ],
)
def test_pure_validators_catches_impure_rules(rule, words, devices):
    change = RowChange("t", "x", UPSERT, {"a": 1})
    pattern = words.replace("(", r"\(").replace(")", r"\)")
    with pytest.raises(ImpureValidator, match=pattern), pure_validators():
        rule(None, change, WRITER)
    j = OrderedJudge({"t": rule}, strict=True)
    with pytest.raises(ImpureValidator):
        j.put([entry(devices.write(0), change)])
    with pytest.raises(RuntimeError, match="build a new one"):
        j.put([])
    assert time.time() > 0  # the guard is gone


def test_pure_validators_lets_a_rule_compute_whatever_it_likes_from_its_arguments():
    with pure_validators():
        draw = random.Random(b"seeded by the row").random()
        stamp = datetime.datetime.fromtimestamp(0, tz=datetime.UTC).isoformat()
        digest = hashlib.blake2b(b"row", digest_size=8).hexdigest()
    assert draw == random.Random(b"seeded by the row").random()
    assert stamp.startswith("1970")
    assert len(digest) == 16


def test_a_strict_judge_runs_pure_rules_and_freezes_the_change(devices, base):
    def mutates(view, change, author):
        change.cols["a"] = 2

    j = OrderedJudge({**RULES, "t": mutates}, CLOSES, strict=True)
    e = entry(devices.write(1), claim("c1", "i0"), RowChange("t", "x", UPSERT, {"a": 1}))
    j.put([base, e])
    assert reason(j, base) is None
    assert reason(j, e) == "t: the app's rule failed: TypeError"
    assert e.changes[1].cols == {"a": 1}


def test_a_lax_judge_refuses_rows_whose_rule_raises_without_stopping(devices):
    def fails(view, change, author):
        raise KeyError("missing")

    j = OrderedJudge({"t": fails})
    e = entry(devices.write(0), RowChange("t", "x", UPSERT, {"a": 1}))
    j.put([e])
    assert reason(j, e) == "t: the app's rule failed: KeyError"


# -- real ops --------------------------------------------------------------------------------------


def test_real_ops_a_claim_concurrent_with_a_close_is_refused(alice: Party, bob: Party):
    owner = ThreadWriter.create(master_secret=alice.master, device_key=alice.device, name="t")
    items = owner.write_data([item("i0")])
    member = join(owner, bob)
    seen = member.write_data([claim(rid(member, "c1"), "i0")])
    owner.replica.ingest(seen.raw)
    unseen = member.write_data([claim(rid(member, "c2"), "i0", who="b", n=1)])
    shut = owner.write_data([close(rid(owner, "k"), "i0")])
    assert shut.in_past(seen.device, seen.seq)
    assert not shut.in_past(unseen.device, unseen.seq)
    as_owner = Author(owner.member, "owner", 1000)
    as_member = Author(member.member, "writer", 50)
    entries = [
        Entry(items, as_owner, [item("i0")]),
        Entry(seen, as_member, [claim(rid(member, "c1"), "i0")]),
        Entry(unseen, as_member, [claim(rid(member, "c2"), "i0", who="b", n=1)]),
        Entry(shut, as_owner, [close(rid(owner, "k"), "i0")]),
    ]
    for arrival in (entries, entries[::-1]):
        j = judge()
        for e in arrival:
            j.put([e])
        assert [reason(j, e) for e in entries] == [
            None,
            None,
            "claim: the item was closed before this row was seen",
            None,
        ]
        assert verdicts(j, entries) == reference(entries)[0]


def test_the_reference_replays_plainly(devices, base):
    # Guard the guard: the reference itself refuses a second claim and honours pre-refusals.
    one = entry(devices.write(1), claim("c1", "i0"))
    two = entry(devices.write(2, bump=1), claim("c2", "i0", who="b"))
    three = entry(devices.write(2), claim("c3", "i1", who="b"), pre="no")
    found, rows = reference([two, three, base, one])
    assert found == {
        base.op.hash: None,
        one.op.hash: None,
        two.op.hash: "claim: the item is already claimed",
        three.op.hash: "no",
    }
    assert rows["claim"] == {"c1": {"item": "i0", "who": "a"}}


def test_a_judge_from_scratch_and_fed_randomly_agree_on_a_long_history():
    rng = random.Random(7)
    devices = Devices(3)
    entries = [entry(devices.write(0), item("i0"), item("i1"), author=OWNER)]
    for i in range(300):
        device = rng.randrange(3)
        if rng.random() < 0.3:
            devices.sync(device, rng.randrange(3))
        change = claim(f"c{rng.randrange(40)}", rng.choice(["i0", "i1"]), who=rng.choice("ab"))
        if rng.random() < 0.05:
            change = close(f"k{i}", change.cols["item"])
        entries.append(entry(devices.write(device, rng.randrange(2)), change, author=OWNER))
    scratch = judge()
    scratch.put(entries)
    fed = judge()
    feed(fed, entries, rng, lambda *_: None)
    assert verdicts(fed, entries) == verdicts(scratch, entries) == reference(entries)[0]
    assert fed.rows() == scratch.rows()


def test_a_rule_reads_the_stamp_of_the_op_that_wrote_a_row_as_it_stands(devices, base):
    """``View.stamp_of``: the stamp of the version in force before the judged row (an edit
    ordered later does not show), the judged op's own for its own earlier writes, None when
    absent; and a row written again earlier in the order judges the reader again."""
    seen: list[tuple[str, int | None, int | None]] = []

    def stamp_rule(view: Any, change: RowChange, author: Author) -> str | None:
        seen.append(
            (change.pk, view.stamp_of("item", change.cols["item"]), view.stamp_of("item", "zz"))
        )
        if change.pk == "c9":
            assert view.stamp_of("claim", "c8") == view.stamp_millis
        return None

    rules = dict(RULES) | {"claim": stamp_rule}
    first = entry(devices.write(1, bump=5), claim("c1", "i1"))
    own = entry(devices.write(1), claim("c8", "i1"), claim("c9", "i1"))
    edit = entry(devices.write(2), item("i1", n=7), author=OWNER)  # concurrent, stamped earlier
    later_edit = entry(devices.write(0, bump=50), item("i1", n=5), author=OWNER)
    j = OrderedJudge(rules, CLOSES)
    j.put([base, first, own, later_edit])
    stamp = base.op.hlc[0]
    assert ("c1", stamp, None) in seen
    assert ("c9", stamp, None) in seen
    # An edit of the item ordered before the claim: the claim is judged again, with its stamp.
    seen.clear()
    assert edit.op.hlc[0] < first.op.hlc[0]
    j.put([edit])
    assert ("c1", edit.op.hlc[0], None) in seen
