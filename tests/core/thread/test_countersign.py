"""Countersigned rows: k of the n named parties sign a row's canonical hash; signature rows are
checked by an ordered rule, and a row counts only with enough of them where it is read."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

import nacl.signing
import pytest

from apps.core.thread import codec, keys, rowid
from apps.core.thread.countersign import (
    Countersigned,
    digest_of,
    parties_decode,
    parties_encode,
    row_digest,
    signature_change,
    signature_check,
    signature_make,
    signature_rule,
    signatures_enough,
    signers,
)
from apps.core.thread.ordered import Author, Entry, OrderedJudge
from apps.core.thread.payloads import DELETE, UPSERT, RowChange
from tests.core.thread.conftest import Party
from tests.core.thread.ordered_support import Devices, verdicts

THREAD = hashlib.blake2b(b"escrow thread", digest_size=32).digest()
SPEC = Countersigned(
    thread=THREAD,
    table="escrow",
    parties="parties",
    columns=("amount", "to"),
    signatures="escrow_sig",
)


def release_rule(view, change: RowChange, author: Author) -> str | None:
    """Money leaves the escrow with 2 of its 3 parties' signatures on it as it stands."""
    if not signatures_enough(view, SPEC, change.cols["escrow"], 2):
        return "the escrow needs 2 of 3 signatures"
    return None


RULES = {
    "escrow": lambda view, change, author: None,
    "escrow_sig": signature_rule(SPEC),
    "release": release_rule,
}


class Signer:
    """A party of the thread: its member key and a device writing its ops."""

    def __init__(self, party: Party, devices: Devices, index: int) -> None:
        self.key = party.member_key(THREAD)
        self.member = bytes(self.key.verify_key)
        self.author = Author(self.member, "writer", 50)
        self._devices, self._index = devices, index

    def op(self, *changes: RowChange) -> Entry:
        """An op that has seen every op written so far: the order is the order of writing."""
        for other in range(len(self._devices.names)):
            self._devices.sync(self._index, other)
        return Entry(self._devices.write(self._index), self.author, list(changes))

    def sign(self, row: dict[str, Any], pk: str = "e1") -> Entry:
        return self.op(signature_change(SPEC, self.key, pk, row))


@pytest.fixture
def devices() -> Devices:
    return Devices(4)


@pytest.fixture
def people(alice, bob, carol, devices) -> dict[str, Signer]:
    named = {"alice": alice, "bob": bob, "carol": carol, "dave": Party("dave")}
    return {name: Signer(party, devices, i) for i, (name, party) in enumerate(named.items())}


@pytest.fixture
def escrow(people) -> dict[str, Any]:
    members = [people[name].member for name in ("alice", "bob", "carol")]
    return {"parties": parties_encode(members), "amount": 300, "to": "bob"}


def opened(people, escrow) -> tuple[OrderedJudge, Entry]:
    judge = OrderedJudge(RULES)
    made = people["alice"].op(RowChange("escrow", "e1", UPSERT, escrow))
    judge.put([made])
    return judge, made


def release(signer: Signer) -> Entry:
    return signer.op(RowChange("release", "r1", UPSERT, {"escrow": "e1"}))


def reason(judge: OrderedJudge, entry: Entry) -> str | None:
    return judge.outcome(entry.op.hash).reason


# -- the pieces ------------------------------------------------------------------------------------


def test_the_digest_is_canonical_and_names_thread_table_row_and_content():
    values = {"amount": 300, "to": "bob", "memo": "not signed"}
    digest = row_digest(THREAD, "escrow", "e1", values, ["amount", "to"])
    assert digest == row_digest(
        THREAD, "escrow", "e1", {"to": "bob", "amount": 300}, ["to", "amount"]
    )
    others = [
        row_digest(bytes(32), "escrow", "e1", values, ["amount", "to"]),
        row_digest(THREAD, "escrow2", "e1", values, ["amount", "to"]),
        row_digest(THREAD, "escrow", "e2", values, ["amount", "to"]),
        row_digest(THREAD, "escrow", "e1", {**values, "amount": 301}, ["amount", "to"]),
        row_digest(THREAD, "escrow", "e1", values, ["amount"]),
    ]
    assert len({digest, *others}) == 6
    # An absent column signs as null; the hash is domain-separated from a plain BLAKE2b.
    assert row_digest(THREAD, "t", 1, {}, ["a"]) == row_digest(THREAD, "t", 1, {"a": None}, ["a"])
    doc = {"v": 1, "thread": THREAD, "table": "t", "pk": 1, "cols": {"a": None}}
    assert (
        row_digest(THREAD, "t", 1, {}, ["a"])
        != hashlib.blake2b(codec.encode(doc), digest_size=32).digest()
    )


def test_a_signature_checks_only_for_its_member_thread_and_digest(alice, bob):
    key = keys.member_key(alice.master, THREAD)
    member = bytes(key.verify_key)
    digest = row_digest(THREAD, "escrow", "e1", {"amount": 1}, ["amount"])
    sig = signature_make(key, THREAD, digest)
    assert signature_check(member, THREAD, digest, sig)
    assert not signature_check(bob.member(THREAD), THREAD, digest, sig)
    assert not signature_check(member, THREAD, bytes(32), sig)
    assert not signature_check(member, bytes(32), digest, sig)
    assert not signature_check(member, THREAD, digest, sig[:-1] + bytes([sig[-1] ^ 1]))
    assert not signature_check(member, THREAD, digest, b"short")
    # Not an op signature either: the same key signing the digest as an op does not count.
    other = nacl.signing.SigningKey.generate()
    assert not signature_check(member, THREAD, digest, signature_make(other, THREAD, digest))


def test_parties_are_distinct_member_keys():
    a, b = b"a" * 32, b"b" * 32
    assert parties_decode(parties_encode([a, b])) == (a, b)
    assert parties_decode(a + a) == ()
    assert parties_decode(a + b"b") == ()
    assert parties_decode("a" * 32) == ()
    assert parties_decode(b"") == ()
    with pytest.raises(ValueError, match="32-byte"):
        parties_encode([b"short"])


def test_a_signature_row_belongs_to_its_signer(people, escrow):
    change = signature_change(SPEC, people["carol"].key, "e1", escrow)
    assert rowid.is_owned_by(change.pk, people["carol"].member)
    assert change.cols["digest"] == digest_of(SPEC, "e1", escrow)
    assert change.cols["signer"] == people["carol"].member


# -- through the judge -----------------------------------------------------------------------------


def test_k_minus_one_signatures_do_not_count_and_k_do(people, escrow):
    judge, _ = opened(people, escrow)
    first = people["alice"].sign(escrow)
    early = release(people["bob"])
    judge.put([first, early])
    assert reason(judge, first) is None
    assert reason(judge, early) == "release: the escrow needs 2 of 3 signatures"
    second = people["carol"].sign(escrow)
    late = release(people["bob"])
    judge.put([second, late])
    assert reason(judge, second) is None
    assert reason(judge, late) is None
    assert reason(judge, early) == "release: the escrow needs 2 of 3 signatures"
    assert set(judge.rows()["escrow_sig"]) == {first.changes[0].pk, second.changes[0].pk}


def test_a_signature_arriving_late_but_ordered_first_lets_the_release_through(people, escrow):
    judge, _ = opened(people, escrow)
    first, second = people["alice"].sign(escrow), people["carol"].sign(escrow)
    release_ = release(people["bob"])
    judge.put([first, release_])
    assert reason(judge, release_) == "release: the escrow needs 2 of 3 signatures"
    changed = judge.put([second])
    assert reason(judge, release_) is None
    assert changed.outcomes == {second.op.hash, release_.op.hash}


def test_bad_signatures_are_refused(people, escrow):
    judge, _ = opened(people, escrow)
    alice, bob, dave = people["alice"], people["bob"], people["dave"]
    good = signature_change(SPEC, alice.key, "e1", escrow)
    stale = signature_change(SPEC, alice.key, "e1", {**escrow, "amount": 1})
    flipped = {**good.cols, "sig": good.cols["sig"][:-1] + bytes([good.cols["sig"][-1] ^ 1])}
    cases = {
        "escrow_sig: the signer is not a party the row names": dave.sign(escrow),
        "escrow_sig: the signature is over another version of the row": alice.op(stale),
        "escrow_sig: the signature does not verify": alice.op(replace(good, cols=flipped)),
        "escrow_sig: a member signs only for itself": bob.op(good),
        "escrow_sig: the signed row does not exist": alice.sign(escrow, pk="e9"),
        "escrow_sig: a signature names its target, digest, signer and sig": alice.op(
            replace(good, cols={**good.cols, "sig": None})
        ),
    }
    judge.put(cases.values())
    assert {reason(judge, entry): entry for entry in cases.values()} == cases
    assert "escrow_sig" not in judge.rows()


def test_a_party_signs_once_and_never_withdraws(people, escrow):
    judge, _ = opened(people, escrow)
    alice = people["alice"]
    first = alice.sign(escrow)
    again = alice.op(signature_change(SPEC, alice.key, "e1", escrow))
    other_row = alice.op(replace(first.changes[0], pk=rowid.row_id_for(alice.member, b"x").hex))
    withdraw = alice.op(RowChange("escrow_sig", first.changes[0].pk, DELETE, {}))
    judge.put([first, again, other_row, withdraw])
    assert reason(judge, first) is None
    written_once = "escrow_sig: a signature is written once and never withdrawn"
    assert reason(judge, again) == written_once
    assert reason(judge, other_row) == "escrow_sig: the party signed this version already"
    assert reason(judge, withdraw) == written_once


def test_changing_the_row_voids_its_signatures(people, escrow):
    judge, _ = opened(people, escrow)
    signed = [people[name].sign(escrow) for name in ("alice", "carol")]
    raised = {**escrow, "amount": 900}
    change = people["alice"].op(RowChange("escrow", "e1", UPSERT, {"amount": 900}))
    blocked = release(people["bob"])
    judge.put([*signed, change, blocked])
    assert reason(judge, blocked) == "release: the escrow needs 2 of 3 signatures"
    again = [people[name].sign(raised) for name in ("bob", "carol")]
    freed = release(people["bob"])
    judge.put([*again, freed])
    assert reason(judge, freed) is None
    assert set(verdicts(judge, [*signed, change, *again]).values()) == {None}


def test_the_signers_a_view_counts(people, escrow):
    counted: list[frozenset[bytes]] = []

    def watch(view, change, author):
        counted.append(signers(view, SPEC, "e1"))

    judge = OrderedJudge({**RULES, "watch": watch})
    made = people["alice"].op(RowChange("escrow", "e1", UPSERT, escrow))
    sigs = [people[name].sign(escrow) for name in ("alice", "bob")]
    probe = people["bob"].op(RowChange("watch", "w", UPSERT, {"a": 1}))
    judge.put([made, *sigs, probe])
    assert counted == [frozenset({people["alice"].member, people["bob"].member})]
