"""Sharing profile fields into threads (ADR 26): one copy per field with its proof, seen by the
thread's members and only there (the other thread's file does not hold it); stopping deletes
the copy; a changed or deleted field reaches every thread it is shared with through the duty;
and a forged copy is never shown as the member's field."""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from pathlib import Path

import pytest

from apps.core.threads.app_kit import app_enabled
from apps.core.threads.database import WriteRefused
from apps.core.threads.registry import thread_database
from apps.core.threads.signals import ops_written
from apps.identity import formats, policy, profile, profile_duties
from apps.identity.models import ProfileShare, SharedField
from apps.identity.profile import ProfileError
from apps.identity.profile_selectors import shared_in
from apps.messaging import services as messaging
from tests.identity.support import Club, member_join

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def duty_by_hand():
    """The duty runs when a test calls its step, not on a worker thread behind its back."""
    ops_written.disconnect(dispatch_uid="identity-profile-duties")
    yield
    profile_duties.install()


def copies(alias: str) -> dict[str, SharedField]:
    return {row.name: row for row in SharedField.objects.using(alias)}


def proven(row: SharedField, member: str) -> str | None:
    columns = {k: getattr(row, k) for k in ("name", "disclosure", "commitment", "profile")}
    return formats.shared_problem({**columns, "binding": row.binding}, bytes.fromhex(member))


def value_of(row: SharedField) -> str:
    return formats.disclosure_open(row.disclosure)[2]


def file_bytes(thread) -> bytes:
    """The thread database's file as it is on disk (with its write-ahead log)."""
    return file_bytes_at(thread_database(thread.thread))


def file_bytes_at(database) -> bytes:
    path = Path(database.path)
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA wal_checkpoint(FULL)")
    raw.close()
    found = path.read_bytes()
    wal = path.with_name(path.name + "-wal")
    return found + (wal.read_bytes() if wal.exists() else b"")


def test_a_shared_field_is_in_its_thread_with_a_proof_every_member_checks(club: Club) -> None:
    profile.fields_set(
        {
            "name": {"value": "Alice Martin"},
            "location": {"value": "Lyon"},
            "contact": {"value": "a@x"},
        }
    )
    assert profile.share(thread=club.thread, names=["name", "location"]) == ["name", "location"]
    here = copies(club.alias)
    assert set(here) == {"name", "location"}
    assert all(proven(row, club.me) is None for row in here.values())
    seen = shared_in(club.thread)
    assert [(f.label, f.value, f.member_name) for f in seen[club.me]] == [
        ("Name", "Alice Martin", "you"),
        ("Location", "Lyon", "you"),
    ]
    club.sync()
    there = copies(club.dana.alias)  # Dana's node has the copies, and they check there too
    assert {n: value_of(r) for n, r in there.items()} == {
        "name": "Alice Martin",
        "location": "Lyon",
    }
    assert all(proven(row, club.me) is None for row in there.values())
    assert [s.thread_name for s in profile.shares()["name"]] == ["Climbing club"]
    assert "contact" not in profile.shares()


def test_a_field_shared_into_t_is_absent_from_u_and_its_file(club: Club, tmp_path: Path) -> None:
    other = messaging.conversation_create(name="Work", my_name="Alice")
    bob = member_join(other, tmp_path, "Bob", "writer")  # in Work, not in the club
    secret = "Rue des Capucins 7, Lyon"
    profile.fields_set({"location": {"value": secret}, "name": {"value": "Alice"}})
    profile.share(thread=club.thread, names=["location"])
    profile.share(thread=other, names=["name"])
    assert app_enabled(other, policy.APP)  # this node owns Work: sharing turned Identity on
    assert set(copies(thread_database(other.thread).alias)) == {"name"}
    assert "location" not in {f.name for f in shared_in(other).get(other.member_id, [])}
    # On disk: the leaf (and the value it encodes) is in the club's file, not in Work's.
    leaf = copies(club.alias)["location"].disclosure.encode()
    assert leaf in file_bytes(club.thread)
    assert leaf not in file_bytes(other)
    assert secret.encode() not in file_bytes(other)
    # And on the other nodes: Dana (in the club) holds it, Bob (in Work only) never does.
    club.sync()
    bob.send()
    bob.receive()
    assert leaf in file_bytes_at(club.dana.node.database)
    assert copies(bob.alias).keys() == {"name"}
    assert leaf not in file_bytes_at(bob.node.database)


def test_stopping_deletes_the_copy_and_marks_the_share_stopped(club: Club) -> None:
    profile.fields_set({"name": {"value": "Alice"}, "location": {"value": "Lyon"}})
    profile.share(thread=club.thread, names=["name", "location"])
    assert profile.unshare(thread=club.thread, names=["location"]) == ["location"]
    assert set(copies(club.alias)) == {"name"}
    assert "location" not in profile.shares()
    stopped = ProfileShare.objects.using(profile._alias(profile.profile_thread()))
    assert {(r.name, r.active) for r in stopped} == {("name", True), ("location", False)}
    club.sync()
    assert set(copies(club.dana.alias)) == {"name"}
    with pytest.raises(ProfileError, match="None of these fields is shared"):
        profile.unshare(thread=club.thread, names=["location"])


def test_the_duty_brings_every_copy_in_line_after_a_change_and_a_delete(club: Club) -> None:
    other = messaging.conversation_create(name="Work", my_name="Alice")
    profile.fields_set({"name": {"value": "Alice"}, "location": {"value": "Lyon"}})
    profile.share(thread=club.thread, names=["name", "location"])
    profile.share(thread=other, names=["name"])
    assert profile_duties.step(profile.profile_thread()) == []  # all in line already
    profile.fields_set({"location": {"value": "Grenoble"}})
    # Before the duty runs, the club's copy is the old leaf, no longer in the new commitment.
    old = copies(club.alias)["location"]
    assert value_of(old) == "Lyon"
    written = profile_duties.step(profile.profile_thread())
    assert set(written) == {club.thread.id, other.id}  # Work: name's commitment refreshed
    club_rows = copies(club.alias)
    assert value_of(club_rows["location"]) == "Grenoble"
    assert club_rows["name"].commitment == club_rows["location"].commitment
    assert all(proven(r, club.me) is None for r in club_rows.values())
    work_rows = copies(thread_database(other.thread).alias)
    assert proven(work_rows["name"], other.member_id) is None
    assert work_rows["name"].commitment == club_rows["name"].commitment
    # A deleted field: its copy goes, its share stops, the others still prove their leaves.
    profile.fields_set({"location": {"value": ""}})
    profile_duties.step(profile.profile_thread())
    assert set(copies(club.alias)) == {"name"}
    assert proven(copies(club.alias)["name"], club.me) is None
    assert "location" not in profile.shares()
    assert profile_duties.step(profile.profile_thread()) == []
    club.sync()
    assert value_of(copies(club.dana.alias)["name"]) == "Alice"
    assert "location" not in copies(club.dana.alias)


def test_the_duty_runs_on_its_own_after_a_profile_change(club: Club) -> None:
    import time

    profile_duties.install()  # this test: the real worker, after the profile thread's op
    profile.fields_set({"name": {"value": "Alice"}})
    profile.share(thread=club.thread, names=["name"])
    profile.fields_set({"name": {"value": "Alice M."}})
    deadline = time.monotonic() + 20
    while value_of(copies(club.alias)["name"]) != "Alice M.":
        assert time.monotonic() < deadline, "the duty did not update the shared copy"
        time.sleep(0.1)
    assert proven(copies(club.alias)["name"], club.me) is None


def test_sharing_a_field_you_do_not_have_or_into_your_own_thread_is_refused(club: Club) -> None:
    profile.fields_set({"name": {"value": "Alice"}})
    with pytest.raises(ProfileError, match="has no Contact"):
        profile.share(thread=club.thread, names=["contact"])
    with pytest.raises(ProfileError, match="cannot be shared into"):
        profile.share(thread=profile.profile_thread(), names=["name"])
    assert profile.profile_thread() not in profile.share_targets()
    assert club.thread in profile.share_targets()
    assert copies(club.alias) == {}


def _forge(member, name: str, **cols: str) -> None:
    """``member``'s node writes a shared copy with the columns given, bypassing nothing: if its
    replica refuses it (the rules), nothing reaches anyone."""
    pk = uuid.UUID(hex=formats.shared_id(member.me, name))
    with contextlib.suppress(WriteRefused):  # its own replica refused the forged row
        SharedField.objects.using(member.alias).create(pk=pk, name=name, **cols)


def test_forged_copies_are_never_shown_as_the_forgers_fields(club: Club) -> None:
    profile.fields_set({"name": {"value": "Alice"}, "location": {"value": "Lyon"}})
    profile.share(thread=club.thread, names=["name", "location"])
    club.sync()
    mine = copies(club.alias)
    eli, fay, gus = club.eli, club.fay, club.gus
    # Eli copies Alice's copy, binding and all, as his own.
    taken = {
        k: getattr(mine["name"], k) for k in ("disclosure", "commitment", "profile", "binding")
    }
    _forge(eli, "name", **taken)
    # Fay signs her own commitment but shows a leaf that is not in it.
    key = formats.profile_key(b"\x01" * 32)
    fay_leaf = formats.disclosure("c2FsdHNhbHRzYWx0", "name", "Fay")
    head = formats.commitment_make(key, [formats.disclosure_digest(fay_leaf)])
    stray = formats.disclosure("c2FsdHNhbHRzYWx0", "name", "The Queen")
    _forge(
        fay,
        "name",
        disclosure=stray,
        commitment=head,
        profile=bytes(key.verify_key).hex(),
        binding=formats.binding_make(key, fay.me),
    )
    # Gus names a profile key that did not sign the commitment.
    wrong = formats.profile_key(b"\x02" * 32)
    gus_leaf = formats.disclosure("c2FsdHNhbHRzYWx0", "name", "Gus")
    gus_cols = {
        "disclosure": gus_leaf,
        "commitment": formats.commitment_make(key, [formats.disclosure_digest(gus_leaf)]),
        "profile": bytes(wrong.verify_key).hex(),
        "binding": formats.binding_make(wrong, gus.me),
    }
    _forge(gus, "name", **gus_cols)
    club.sync()
    assert SharedField.objects.using(club.alias).count() == 2  # the rules refused all three
    seen = shared_in(club.thread)
    assert set(seen) == {club.me}
    # The same forged rows written straight into this node's table (a modified node's store,
    # past every rule): the selector still shows none of them.
    forged = [
        (eli, taken),
        (
            fay,
            {
                "disclosure": stray,
                "commitment": head,
                "profile": bytes(key.verify_key).hex(),
                "binding": formats.binding_make(key, fay.me),
            },
        ),
        (gus, gus_cols),
    ]
    raw = sqlite3.connect(thread_database(club.thread.thread).path)
    raw.create_function("sereus_capture", 0, lambda: 0)  # another program: nothing captured
    raw.create_function("sereus_row", -1, lambda *values: None)  # named by the triggers' bodies
    with raw:
        for member, cols in forged:
            raw.execute(
                "INSERT OR REPLACE INTO identity_shared_field "
                "(id, name, disclosure, commitment, profile, binding) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    formats.shared_id(member.me, "name"),
                    "name",
                    cols["disclosure"],
                    cols["commitment"],
                    cols["profile"],
                    cols["binding"],
                ],
            )
    raw.close()
    assert SharedField.objects.using(club.alias).count() == 5  # Alice's two and three forged
    seen = shared_in(club.thread)
    assert set(seen) == {club.me}
    assert [f.value for f in seen[club.me]] == ["Alice", "Lyon"]


def test_a_writer_cannot_turn_identity_on_and_is_told_whom_to_ask(node, tmp_path: Path) -> None:
    from apps.core.thread import payloads as p
    from apps.core.threads import services as threads
    from tests.core.threads.conftest import new_thread
    from tests.core.threads.test_leave import invite_from, join_here, raws

    owner = new_thread(tmp_path, "choir")  # someone else's thread, this node a writer in it
    thread = join_here(owner, invite_from(owner.database, role="writer"))
    profile.fields_set({"name": {"value": "Alice"}})
    with pytest.raises(ProfileError) as refused:
        profile.share(thread=thread, names=["name"])
    assert refused.value.code == "not_enabled"
    assert refused.value.words == profile.NOT_ENABLED
    assert profile.shares() == {}
    # Its owner turns Identity on; then the writer's field goes in with its proof.
    owner.database.write(lambda w: w.control(p.EnableApp(policy.identity_spec())))
    threads.thread_ingest(thread=thread, raws=raws(owner.database))
    thread.refresh_from_db()
    assert profile.share(thread=thread, names=["name"]) == ["name"]
    assert [f.value for f in shared_in(thread)[thread.member_id]] == ["Alice"]


def honest_share(member, values: dict[str, str], secret: bytes) -> None:
    """``member``'s node shares ``values`` as an honest node does: leaves under one commitment
    by its profile key, bound to its member key in the thread (one op)."""
    from django.db import transaction

    key = formats.profile_key(secret)
    leaves = {n: formats.disclosure(formats.salt_new(), n, v) for n, v in values.items()}
    head = formats.commitment_make(key, [formats.disclosure_digest(t) for t in leaves.values()])
    with transaction.atomic(using=member.alias):
        for name, leaf in leaves.items():
            SharedField.objects.using(member.alias).create(
                pk=uuid.UUID(hex=formats.shared_id(member.me, name)),
                name=name,
                disclosure=leaf,
                commitment=head,
                profile=bytes(key.verify_key).hex(),
                binding=formats.binding_make(key, member.me),
            )


def test_other_members_shared_fields_are_shown_by_their_names(club: Club) -> None:
    honest_share(club.dana, {"name": "Dana Berg", "x-grade": "6c"}, b"\x05" * 32)
    honest_share(club.eli, {"location": "Oslo"}, b"\x06" * 32)
    club.sync()
    seen = shared_in(club.thread)
    assert {m: [(f.member_name, f.label, f.value, f.mine) for f in v] for m, v in seen.items()} == {
        club.dana.member: [("Dana", "Name", "Dana Berg", False), ("Dana", "Grade", "6c", False)],
        club.eli.member: [("Eli", "Location", "Oslo", False)],
    }
