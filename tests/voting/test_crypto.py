"""The cryptography of secret ballots: round trips, thresholds, forgeries, damaged encodings."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations

import cbor2
import nacl.public
import nacl.signing
import pytest

from apps.voting.crypto import (
    CryptoError,
    ShareError,
    aggregate,
    ballot_check,
    ballot_make,
    dealing_check,
    dealing_make,
    group,
    partial_check,
    partial_index,
    partial_make,
    poll_key,
    result,
    share_open,
    trustee_key,
)
from apps.voting.crypto.elgamal import BALLOT, _option_parts, _sum_parts
from apps.voting.crypto.proofs import bit_prove, dleq_prove

POLL = b"poll:test-1"
THRESHOLD = 2
# The order of the group, written out here only to test what a multiple of it does.
ORDER = 2**252 + 27742317777372353535851937790883648493


def voter(n: int) -> bytes:
    return POLL + b"/voter:" + str(n).encode()


@dataclass
class Poll:
    members: list[nacl.signing.SigningKey]
    trustees: list[bytes]
    dealings: list[bytes]
    shares: dict[int, bytes]
    publics: dict[int, bytes]
    key: bytes


@pytest.fixture(scope="module")
def poll() -> Poll:
    members = [nacl.signing.SigningKey.generate() for _ in range(3)]
    trustees = [m.verify_key.encode() for m in members]
    dealings = [dealing_make(POLL, THRESHOLD, trustees) for _ in trustees]
    for d in dealings:
        dealing_check(POLL, THRESHOLD, trustees, d)
    shares = {
        i: share_open(POLL, THRESHOLD, trustees, dealings, i, members[i - 1]) for i in (1, 2, 3)
    }
    publics = {i: trustee_key(dealings, i) for i in (1, 2, 3)}
    return Poll(members, trustees, dealings, shares, publics, poll_key(dealings))


def decrypt(
    poll: Poll, ballots: list[bytes], options: int, trustees=(1, 2), max_count: int | None = None
) -> list[int]:
    total = aggregate(ballots, options)
    partials = {i: partial_make(POLL, total, poll.shares[i], i) for i in trustees}
    for i, p in partials.items():
        partial_check(POLL, total, poll.publics[i], p)
    return result(total, partials, THRESHOLD, len(ballots) if max_count is None else max_count)


def edit(data: bytes, change: Callable[[list], object]) -> bytes:
    """The canonical encoding of `data` after `change` edited its decoded fields in place."""
    value = cbor2.loads(data)
    change(value)
    return cbor2.dumps(value, canonical=True)


# -- the group wrapper: the identity where libsodium refuses it ------------------------------


def test_identity_is_handled_in_every_operation() -> None:
    p = group.int_mul(5)
    assert group.base_mul(group.SCALAR_ZERO) == group.ZERO
    assert group.int_mul(0) == group.ZERO
    assert group.mul(group.SCALAR_ZERO, p) == group.ZERO
    assert group.mul(group.scalar_int(7), group.ZERO) == group.ZERO
    # A multiple of the order (not reduced) also gives the identity, not an exception.
    assert group.mul(ORDER.to_bytes(32, "little"), p) == group.ZERO
    assert group.sub(p, p) == group.ZERO
    assert group.add(p, group.ZERO) == p
    assert group.add(group.int_mul(2), group.int_mul(3)) == p
    assert group.mul(group.scalar_int(3), group.GENERATOR) == group.int_mul(3)
    assert group.check_point(group.ZERO, "x") == group.ZERO
    with pytest.raises(CryptoError, match="not a valid point"):
        group.check_point(b"\xff" * 32, "ballot's ciphertext")
    with pytest.raises(CryptoError, match="not a valid number"):
        group.check_scalar(ORDER.to_bytes(32, "little"), "proof")


def test_hash_to_scalar_separates_its_inputs() -> None:
    h = group.hash_to_scalar
    assert h("a", b"xy", b"z") != h("a", b"x", b"yz")
    assert h("a", b"x") != h("b", b"x")
    assert h("a", 1) != h("a", 2)
    assert h("a", b"x") == h("a", b"x")


# -- round trips ----------------------------------------------------------------------------


def test_approval_round_trip_any_two_trustees(poll: Poll) -> None:
    choices = [[1, 0, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0], [0, 1, 0, 0, 1]]
    choices += [[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [0, 0, 1, 0, 1]]
    ballots = []
    for n, c in enumerate(choices):
        ballot = ballot_make(voter(n), poll.key, c, exactly_one=False)
        ballot_check(voter(n), poll.key, 5, False, ballot)
        ballots.append(ballot)
    expected = [sum(col) for col in zip(*choices, strict=True)]
    assert expected == [4, 3, 3, 1, 3]
    total = aggregate(ballots, 5)
    partials = {i: partial_make(POLL, total, poll.shares[i], i) for i in (1, 2, 3)}
    for i, p in partials.items():
        partial_check(POLL, total, poll.publics[i], p)
        assert partial_index(p) == i
    for pair in combinations((1, 2, 3), 2):
        assert result(total, {i: partials[i] for i in pair}, THRESHOLD, 7) == expected
    assert result(total, partials, THRESHOLD, 7) == expected


def test_single_choice_round_trip(poll: Poll) -> None:
    picks = [0, 3, 3, 1, 3, 0, 2]
    ballots = []
    for n, pick in enumerate(picks):
        choices = [int(i == pick) for i in range(4)]
        ballot = ballot_make(voter(n), poll.key, choices, exactly_one=True)
        ballot_check(voter(n), poll.key, 4, True, ballot)
        ballots.append(ballot)
    assert decrypt(poll, ballots, 4, trustees=(2, 3)) == [2, 1, 1, 3]


def test_one_trustee_alone_cannot_decrypt(poll: Poll) -> None:
    ballots = [ballot_make(voter(n), poll.key, [1, 0, 1], False) for n in range(3)]
    total = aggregate(ballots, 3)
    alone = {1: partial_make(POLL, total, poll.shares[1], 1)}
    with pytest.raises(CryptoError, match="Only 1 of the 2"):
        result(total, alone, THRESHOLD, 3)
    # Pretending one share is enough combines it wrongly: no count in range fits.
    with pytest.raises(CryptoError, match="could not be found"):
        result(total, alone, 1, 3)
    # The same with two trustees does give the counts.
    alone[3] = partial_make(POLL, total, poll.shares[3], 3)
    assert result(total, alone, THRESHOLD, 3) == [3, 0, 3]


def test_encryptions_are_randomized(poll: Poll) -> None:
    a = ballot_make(voter(1), poll.key, [1, 0], False)
    b = ballot_make(voter(1), poll.key, [1, 0], False)
    rows_a, rows_b = cbor2.loads(a)[1], cbor2.loads(b)[1]
    for row_a, row_b in zip(rows_a, rows_b, strict=True):
        assert row_a[0] != row_b[0]
        assert row_a[1] != row_b[1]


def test_identity_edge_cases(poll: Poll) -> None:
    none = ballot_make(voter(1), poll.key, [0, 0, 0], False)
    ballot_check(voter(1), poll.key, 3, False, none)
    assert decrypt(poll, [none], 3) == [0, 0, 0]
    # No ballots at all: the sums are the identity, the partials too, and the counts are 0.
    empty = aggregate([], 3)
    assert cbor2.loads(empty)[1] == [[group.ZERO, group.ZERO]] * 3
    assert decrypt(poll, [], 3) == [0, 0, 0]
    with pytest.raises(CryptoError, match="Only 0 of the 2"):
        result(empty, {}, THRESHOLD, 0)


def test_result_finds_large_counts_quickly() -> None:
    # A made-up total whose B is 99 999·G and whose A is the identity: the partials are the
    # identity, so this tests the search alone.
    m = 99_999
    total = group.encode("sereus-voting/total", [[group.ZERO, group.int_mul(m)]])
    share = group.scalar_int(12345)
    partials = {i: partial_make(POLL, total, share, i) for i in (1, 2)}
    assert result(total, partials, THRESHOLD, 100_000) == [m]
    with pytest.raises(CryptoError, match="could not be found"):
        result(total, partials, THRESHOLD, m - 1)


# -- forged and tampered ballots ------------------------------------------------------------


def test_flipped_proof_byte_is_refused(poll: Poll) -> None:
    ballot = ballot_make(voter(1), poll.key, [0, 1, 0], True)
    for field in range(2, 6):

        def flip(v: list, field: int = field) -> None:
            row = v[1][1]
            row[field] = bytes([row[field][0] ^ 1]) + row[field][1:]

        with pytest.raises(CryptoError, match="option 2 does not hold"):
            ballot_check(voter(1), poll.key, 3, True, edit(ballot, flip))

    def flip_sum(v: list) -> None:
        v[2][1] = bytes([v[2][1][0] ^ 1]) + v[2][1][1:]

    with pytest.raises(CryptoError, match="exactly one option does not hold"):
        ballot_check(voter(1), poll.key, 3, True, edit(ballot, flip_sum))


def test_moved_ciphertexts_are_refused(poll: Poll) -> None:
    ballot = ballot_make(voter(1), poll.key, [1, 0, 0], False)
    other = ballot_make(voter(2), poll.key, [0, 1, 0], False)
    again = ballot_make(voter(1), poll.key, [0, 0, 1], False)

    def swap_rows(v: list) -> None:
        v[1][0], v[1][1] = v[1][1], v[1][0]

    def swap_ciphertexts(v: list) -> None:
        v[1][0][:2], v[1][1][:2] = v[1][1][:2], v[1][0][:2]

    for change in (swap_rows, swap_ciphertexts):
        with pytest.raises(CryptoError, match="does not hold"):
            ballot_check(voter(1), poll.key, 3, False, edit(ballot, change))
    # A whole option (ciphertext and proof) taken from another voter's ballot, or from the
    # same voter's other ballot.
    for source in (other, again):
        row = cbor2.loads(source)[1][0]

        def graft(v: list, row: list = row) -> None:
            v[1][0] = row

        with pytest.raises(CryptoError, match="does not hold"):
            ballot_check(voter(1), poll.key, 3, False, edit(ballot, graft))


def test_ballot_for_another_voter_or_poll_is_refused(poll: Poll) -> None:
    ballot = ballot_make(voter(1), poll.key, [1, 0], True)
    with pytest.raises(CryptoError, match="another poll or voter"):
        ballot_check(voter(2), poll.key, 2, True, ballot)
    with pytest.raises(CryptoError, match="does not hold"):
        ballot_check(voter(1), group.int_mul(7), 2, True, ballot)


def forged_ballot(context: bytes, key: bytes, choices: list[int], exactly_one: bool) -> bytes:
    """A cheating ballot_make: values outside 0/1 are proved as if they were 1.

    The honest procedure refuses m = 2 outright; here the real branch of the 0/1 proof is run
    for m = 1 with the true randomness, and the single-choice proof is made for the true sum.
    """
    rs = [group.scalar_random() for _ in choices]
    cts = [
        (group.base_mul(r), group.add(group.int_mul(m), group.mul(r, key)))
        for r, m in zip(rs, choices, strict=True)
    ]
    rows = []
    for i, ((a, b), m, r) in enumerate(zip(cts, choices, rs, strict=True)):
        proof = bit_prove("ballot-option", _option_parts(context, cts, i), key, a, b, min(m, 1), r)
        rows.append([a, b, *proof])
    sum_proof: list[bytes] = []
    if exactly_one:
        r_sum = group.SCALAR_ZERO
        for r in rs:
            r_sum = group.s_add(r_sum, r)
        a_sum = group.total([a for a, _ in cts])
        target = group.sub(group.total([b for _, b in cts]), group.GENERATOR)
        parts = _sum_parts(context, cts)
        sum_proof = list(dleq_prove("ballot-sum", parts, r_sum, key, a_sum, target))
    return group.encode(BALLOT, rows, sum_proof)


def test_ballot_encrypting_two_is_refused(poll: Poll) -> None:
    honest = forged_ballot(voter(1), poll.key, [1, 0, 0], False)
    ballot_check(voter(1), poll.key, 3, False, honest)  # the cheat's tools are sound
    with pytest.raises(CryptoError):
        ballot_make(voter(1), poll.key, [2, 0, 0], False)
    forged = forged_ballot(voter(1), poll.key, [2, 0, 0], False)
    with pytest.raises(CryptoError, match="option 1 does not hold"):
        ballot_check(voter(1), poll.key, 3, False, forged)
    # Unchecked, it would have counted twice: the check is what protects the count.
    assert decrypt(poll, [forged], 3, max_count=2) == [2, 0, 0]


def test_single_choice_with_two_ones_is_refused(poll: Poll) -> None:
    with pytest.raises(CryptoError, match="exactly one option"):
        ballot_make(voter(1), poll.key, [1, 1, 0], True)
    approval = ballot_make(voter(1), poll.key, [1, 1, 0], False)
    with pytest.raises(CryptoError, match="does not prove that it chooses exactly one"):
        ballot_check(voter(1), poll.key, 3, True, approval)
    forged = forged_ballot(voter(1), poll.key, [1, 1, 0], True)
    with pytest.raises(CryptoError, match="exactly one option does not hold"):
        ballot_check(voter(1), poll.key, 3, True, forged)
    single = ballot_make(voter(1), poll.key, [0, 1, 0], True)
    with pytest.raises(CryptoError, match="allows several"):
        ballot_check(voter(1), poll.key, 3, False, single)


# -- partial decryptions --------------------------------------------------------------------


def test_bad_partials_are_refused(poll: Poll) -> None:
    ballots = [ballot_make(voter(n), poll.key, [1, 0], True) for n in range(2)]
    total = aggregate(ballots, 2)
    good = partial_make(POLL, total, poll.shares[1], 1)

    def flip(v: list) -> None:
        v[2][1][1] = bytes([v[2][1][1][0] ^ 1]) + v[2][1][1][1:]

    with pytest.raises(CryptoError, match="option 2 does not hold"):
        partial_check(POLL, total, poll.publics[1], edit(good, flip))
    # Made with another trustee's share, or with a made-up one, under trustee 1's number.
    for share in (poll.shares[2], group.scalar_random()):
        with pytest.raises(CryptoError, match="does not hold"):
            partial_check(POLL, total, poll.publics[1], partial_make(POLL, total, share, 1))
    with pytest.raises(CryptoError, match="does not hold"):
        partial_check(POLL, total, poll.publics[2], good)
    with pytest.raises(CryptoError, match="does not hold"):
        partial_check(b"poll:other", total, poll.publics[1], good)
    other_total = aggregate(ballots[:1], 2)
    with pytest.raises(CryptoError, match="does not hold"):
        partial_check(POLL, other_total, poll.publics[1], good)
    # A partial filed under the wrong trustee number is refused when combining.
    second = partial_make(POLL, total, poll.shares[2], 2)
    with pytest.raises(CryptoError, match="is trustee 2's"):
        result(total, {1: good, 3: second}, THRESHOLD, 2)


# -- dealings and shares --------------------------------------------------------------------


def test_dealing_with_bad_proof_is_refused(poll: Poll) -> None:
    dealing = poll.dealings[0]

    def flip(v: list) -> None:
        v[3] = bytes([v[3][0] ^ 1]) + v[3][1:]

    with pytest.raises(CryptoError, match="proof does not hold"):
        dealing_check(POLL, THRESHOLD, poll.trustees, edit(dealing, flip))
    with pytest.raises(CryptoError, match="another poll"):
        dealing_check(b"poll:other", THRESHOLD, poll.trustees, dealing)
    with pytest.raises(CryptoError, match="different number"):
        dealing_check(POLL, 3, poll.trustees, dealing)
    with pytest.raises(CryptoError, match="proof does not hold"):
        dealing_check(POLL, THRESHOLD, poll.trustees[::-1], dealing)

    # A rogue key: C_0 replaced to cancel the others' keys, without knowing its secret.
    def rogue(v: list) -> None:
        v[1][0] = group.sub(group.int_mul(1), poll_key(poll.dealings[1:]))

    with pytest.raises(CryptoError, match="proof does not hold"):
        dealing_check(POLL, THRESHOLD, poll.trustees, edit(dealing, rogue))
    with pytest.raises(CryptoError, match="the same"):
        poll_key([dealing, dealing])


def test_share_not_matching_commitments_names_the_dealing(poll: Poll) -> None:
    box = nacl.public.SealedBox(poll.members[1].verify_key.to_curve25519_public_key())

    def reseal(v: list) -> None:
        v[4][1] = box.encrypt(group.scalar_random())

    bad = edit(poll.dealings[1], reseal)
    dealing_check(POLL, THRESHOLD, poll.trustees, bad)  # the public checks cannot see it
    dealings = [poll.dealings[0], bad, poll.dealings[2]]
    with pytest.raises(ShareError, match=r"Dealing 2 of 3 .* does not match") as caught:
        share_open(POLL, THRESHOLD, poll.trustees, dealings, 2, poll.members[1])
    assert caught.value.position == 1
    # Trustee 1's share in that dealing is untouched, so trustee 1 is not misled either way.
    share_open(POLL, THRESHOLD, poll.trustees, dealings, 1, poll.members[0])

    def garble(v: list) -> None:
        v[4][1] = bytes(80)

    with pytest.raises(ShareError, match="cannot be opened") as caught:
        share_open(
            POLL, THRESHOLD, poll.trustees, [edit(poll.dealings[2], garble)], 2, poll.members[1]
        )
    assert caught.value.position == 0
    with pytest.raises(CryptoError, match="not trustee number 1"):
        share_open(POLL, THRESHOLD, poll.trustees, poll.dealings, 1, poll.members[1])


def test_trustee_keys_match_the_shares(poll: Poll) -> None:
    for i in (1, 2, 3):
        assert group.base_mul(poll.shares[i]) == poll.publics[i]
    with pytest.raises(CryptoError, match="no trustee"):
        trustee_key(poll.dealings, 4)


# -- damaged encodings: only ever CryptoError -----------------------------------------------


def test_non_canonical_and_wrong_kind_encodings_are_refused(poll: Poll) -> None:
    total = aggregate([], 2)
    long_form = b"\x98\x02" + total[1:]  # the same list, its length written the long way
    assert cbor2.loads(long_form) == cbor2.loads(total)
    with pytest.raises(CryptoError, match="standard encoding"):
        partial_make(POLL, long_form, poll.shares[1], 1)
    with pytest.raises(CryptoError, match="expected kind"):
        ballot_check(voter(1), poll.key, 2, False, total)
    with pytest.raises(CryptoError, match="not a byte string"):
        ballot_check(voter(1), poll.key, 2, False, "text")  # type: ignore[arg-type]
    with pytest.raises(CryptoError, match="too large"):
        ballot_check(voter(1), poll.key, 2, False, bytes(40_000))
    with pytest.raises(CryptoError, match="not usable"):
        ballot_make(voter(1), group.ZERO, [1], False)


JUNK = [None, 1, -1, 2**70, "x", b"", b"\x01" * 31, b"\xff" * 32, b"\x00" * 33, [], [b"x"], {}]


def mutations(data: bytes, rng: random.Random, count: int) -> list[bytes]:
    """Damaged copies: flipped, cut, lengthened bytes, and decoded fields replaced by junk."""
    out = [b"", b"\x00", rng.randbytes(50), data[:-1], data + b"\x00"]
    value = cbor2.loads(data)

    def spots(v: object, path: tuple = ()) -> list[tuple]:
        found = [path]
        if isinstance(v, list):
            for i, item in enumerate(v):
                found += spots(item, (*path, i))
        return found

    places = [p for p in spots(value) if p]
    while len(out) < count:
        kind = rng.randrange(4)
        if kind == 0:
            i = rng.randrange(len(data))
            out.append(data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1 :])
        elif kind == 1:
            out.append(data[: rng.randrange(len(data))])
        else:
            copy = cbor2.loads(data)
            *parent_path, last = rng.choice(places)
            parent = copy
            for i in parent_path:
                parent = parent[i]
            if kind == 2:
                parent[last] = rng.choice(JUNK)
            else:
                del parent[last]
            out.append(cbor2.dumps(copy, canonical=True))
    return out


def refusals(call: Callable[[bytes], object], variants: list[bytes]) -> list[str]:
    """The messages of the refused variants; any exception but CryptoError fails the test."""
    messages = []
    for variant in variants:
        try:
            call(variant)
        except CryptoError as e:
            messages.append(str(e))
    return messages


def test_fuzzed_encodings_raise_only_crypto_errors(poll: Poll) -> None:
    rng = random.Random(20261206)
    ballot = ballot_make(voter(1), poll.key, [0, 1, 0], True)
    total = aggregate([ballot], 3)
    partial = partial_make(POLL, total, poll.shares[1], 1)
    dealing = poll.dealings[0]
    ts, th = poll.trustees, THRESHOLD
    # (encoding, use, whether every damaged copy must be refused): checks that verify a proof
    # over every byte refuse all; the others read only what they use (a flipped bit in a sealed
    # share, or in a point that stays valid, passes them), yet must never fail another way.
    cases: list[tuple[bytes, Callable[[bytes], object], bool]] = [
        (ballot, lambda b: ballot_check(voter(1), poll.key, 3, True, b), True),
        (ballot, lambda b: aggregate([b], 3), False),
        (total, lambda t: partial_make(POLL, t, poll.shares[1], 1), False),
        (total, lambda t: partial_check(POLL, t, poll.publics[1], partial), True),
        (total, lambda t: result(t, {1: partial}, 1, 5), False),
        (partial, lambda p: partial_check(POLL, total, poll.publics[1], p), True),
        (partial, lambda p: result(total, {1: p}, 1, 5), False),
        (partial, partial_index, False),
        (dealing, lambda d: dealing_check(POLL, th, ts, d), False),
        (dealing, lambda d: poll_key([d]), False),
        (dealing, lambda d: trustee_key([d], 1), False),
        (dealing, lambda d: share_open(POLL, th, ts, [d], 1, poll.members[0]), False),
    ]
    for data, call, strict in cases:
        variants = mutations(data, rng, 60)
        messages = refusals(call, variants)
        # Sentences, not codes.
        assert all(m[:1].isupper() for m in messages)
        assert all(m.endswith(".") for m in messages)
        assert len(messages) == len(variants) if strict else len(messages) >= len(variants) // 3


def test_invalid_point_is_named_in_plain_words(poll: Poll) -> None:
    ballot = ballot_make(voter(1), poll.key, [0, 1], False)

    def bad_point(v: list) -> None:
        v[1][0][1] = b"\xff" * 32

    damaged = edit(ballot, bad_point)
    with pytest.raises(CryptoError, match="ciphertext is not a valid point"):
        ballot_check(voter(1), poll.key, 2, False, damaged)
    with pytest.raises(CryptoError, match="should be a point"):
        aggregate([damaged], 2)
    with pytest.raises(CryptoError, match="has 2 parts where 3"):
        aggregate([ballot], 3)
