"""Members' names in a thread (set_name, ADR 16): a member names itself only, with a name every
replica accepts alike, the newest in control order counts, and a removed member cannot rename
itself, not even with an op its node wrote before it saw its removal."""

from __future__ import annotations

import pytest

from apps.core.thread import payloads as p
from apps.core.thread.writer import ThreadWriter, WriteError
from tests.core.thread.conftest import Party, auditor, forge, join, sync


@pytest.fixture
def thread(alice: Party) -> ThreadWriter:
    return ThreadWriter.create(master_secret=alice.master, device_key=alice.device, name="Club")


def _names(*replicas) -> set:
    """The names every replica shows (one element when they agree)."""
    return {tuple(sorted(r.control.state.names.items())) for r in replicas}


def _deliver(forged, owner: ThreadWriter, *others):
    """The forged op straight to the owner's replica, and the owner's log to the others."""
    owner.replica.ingest(forged.raw)
    for other in others:
        sync(owner.replica, other)
    return [owner.replica, *others]


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("Ada Lovelace", None),
        ("Zoë 🙂", None),
        ("👩\u200d💻 dev", None),  # a zero-width joiner inside an emoji sequence
        ("x" * 80, None),
        ("", "1 to 80"),
        ("x" * 81, "1 to 80"),
        (" Ada", "single spaces"),
        ("Ada  L", "single spaces"),
        ("Ada\tL", "control"),
        ("Ada\nL", "control"),
        ("Ada\u202eecilA", "direction"),
        ("Ada\u2066x\u2069", "direction"),
        ("Ada\u200b", "control"),
        (b"Ada", "1 to 80"),
        (None, "1 to 80"),
    ],
)
def test_what_a_name_may_be(name, problem):
    found = p.name_problem(name)
    assert (found is None) if problem is None else (problem in found)


def test_normalizing_makes_typed_names_writable():
    assert p.name_normalize("  Ada \u00a0 Lovelace\n") == "Ada Lovelace"
    assert p.name_problem(p.name_normalize("  Ada \u00a0 Lovelace\n")) is None


def test_each_member_names_itself_and_the_newest_name_counts_everywhere(
    thread: ThreadWriter, alice: Party, bob: Party
):
    b = join(thread, bob)
    thread.set_name("  Alice ")
    b.set_name("Bob")
    b.set_name("Robert")
    sync(b.replica, thread.replica)
    fresh = auditor(thread.thread, alice, bob)
    sync(thread.replica, fresh)
    sync(thread.replica, b.replica)
    expected = {thread.member: "Alice", b.member: "Robert"}
    assert thread.replica.control.state.names == expected
    assert _names(thread.replica, b.replica, fresh) == {tuple(sorted(expected.items()))}
    assert thread.replica.snapshot() == fresh.snapshot()


def test_a_forged_op_naming_another_member_is_refused_by_every_replica(
    thread: ThreadWriter, alice: Party, bob: Party
):
    b = join(thread, bob)
    thread.set_name("Alice")
    sync(thread.replica, b.replica)
    forged = forge(
        b, kind="control", payload=p.control_doc(p.SetName(member=thread.member, name="Mallory"))
    )
    observers = _deliver(forged, thread, auditor(thread.thread, alice, bob))
    for observer in observers:
        assert observer.decisions[forged.hash].status == "refused"
        assert "names only itself" in observer.decisions[forged.hash].reason
    assert _names(*observers) == {((thread.member, "Alice"),)}
    # The honest writer does not even send it: its own replica refuses first.
    with pytest.raises(WriteError, match="names only itself"):
        b.control(p.SetName(member=thread.member, name="Mallory"))


@pytest.mark.parametrize("name", ["x" * 81, "", " Bob", "Bob\u202e", "Bob\x00", 42], ids=repr)
def test_a_forged_invalid_name_is_refused_by_every_replica(
    thread: ThreadWriter, alice: Party, bob: Party, name
):
    b = join(thread, bob)
    b.set_name("Bob")
    sync(b.replica, thread.replica)
    forged = forge(
        b, kind="control", payload={"type": "set_name", "member": b.member, "name": name}
    )
    observers = _deliver(forged, thread, auditor(thread.thread, alice, bob))
    for observer in observers:
        assert observer.decisions[forged.hash].status == "refused"
        assert "name" in observer.decisions[forged.hash].reason
    assert _names(*observers) == {((b.member, "Bob"),)}


def test_a_removed_member_cannot_rename_itself_even_unaware_of_its_removal(
    thread: ThreadWriter, alice: Party, bob: Party, carol: Party
):
    b = join(thread, bob)
    c = join(thread, carol)
    b.set_name("Bob")
    sync(b.replica, thread.replica)
    removal, _rotation = thread.remove_member(b.member)
    # Bob's node has not heard of its removal: it writes, and its own replica accepts.
    late = b.set_name("The real Alice")
    assert not late.in_past(removal.device, removal.seq)
    observers = [thread.replica, c.replica, auditor(thread.thread, alice, carol)]
    for observer in observers:
        sync(thread.replica, observer)
        sync(b.replica, observer)
        assert observer.decisions[late.hash].status == "refused"
    # What it called itself while a member stays, for what it wrote then.
    assert _names(*observers) == {((b.member, "Bob"),)}
    # After the removal reached it, its own node refuses too.
    sync(thread.replica, b.replica)
    with pytest.raises(WriteError):
        b.set_name("Bob again")
