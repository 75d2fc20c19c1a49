"""Encrypted ballots (exponential ElGamal), their homomorphic sum, partial decryptions, result.

A ballot holds, per option, (A, B) = (r·G, m·G + r·key) with m ∈ {0, 1} and a proof of that.
Adding ciphertexts adds the m's; k trustees then each publish x_i·A_sum with a proof, and
anyone combines them (Lagrange in the exponent) into count·G and finds the small count.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from .group import (
    GENERATOR,
    SCALAR_BYTES,
    SCALAR_ZERO,
    ZERO,
    CryptoError,
    add,
    base_mul,
    check_int,
    check_list,
    check_point,
    check_scalar,
    decode,
    encode,
    int_mul,
    mul,
    s_add,
    s_invert,
    s_mul,
    s_sub,
    scalar_int,
    scalar_random,
    sub,
)
from .group import total as point_sum  # `total` is a parameter name in the public API
from .proofs import bit_prove, bit_verify, dleq_prove, dleq_verify

MAX_OPTIONS = 50
MAX_TRUSTEES = 20
MAX_COUNT = 10_000_000  # far above any thread's membership; bounds the search in result()
BALLOT = "sereus-voting/ballot"
TOTAL = "sereus-voting/total"
PARTIAL = "sereus-voting/partial"


def _check_key(key: object) -> bytes:
    key = check_point(key, "poll key")
    if key == ZERO:
        # With the identity as key, B = m·G would show every vote in the clear.
        raise CryptoError("The poll key is not usable.")
    return key


def _check_options(options: object) -> int:
    return check_int(options, "number of options", 1, MAX_OPTIONS)


def _option_parts(context: bytes, cts: Sequence[tuple[bytes, bytes]], i: int) -> tuple:
    # Each option's proof binds the whole ballot and the option's place in it, so proofs and
    # ciphertexts cannot be moved between options or ballots.
    flat = [p for ct in cts for p in ct]
    return (context, len(cts), i, *flat)


def _sum_parts(context: bytes, cts: Sequence[tuple[bytes, bytes]]) -> tuple:
    return (context, len(cts), *[p for ct in cts for p in ct])


def ballot_make(context: bytes, key: bytes, choices: Sequence[int], exactly_one: bool) -> bytes:
    """An encrypted ballot with its proofs; choices is one 0 or 1 per option."""
    key = _check_key(key)
    _check_options(len(choices))
    if any(isinstance(m, bool) or m not in (0, 1) for m in choices):
        raise CryptoError("Each choice must be 0 or 1.")
    if exactly_one and sum(choices) != 1:
        raise CryptoError("A single-choice ballot must choose exactly one option.")
    rs = [scalar_random() for _ in choices]
    cts = [(base_mul(r), add(int_mul(m), mul(r, key))) for r, m in zip(rs, choices, strict=True)]
    rows = []
    for i, ((a_ct, b_ct), m, r) in enumerate(zip(cts, choices, rs, strict=True)):
        proof = bit_prove("ballot-option", _option_parts(context, cts, i), key, a_ct, b_ct, m, r)
        rows.append([a_ct, b_ct, *proof])
    sum_proof: list[bytes] = []
    if exactly_one:
        r_sum = SCALAR_ZERO
        for r in rs:
            r_sum = s_add(r_sum, r)
        a_sum, b_sum = point_sum([a for a, _ in cts]), point_sum([b for _, b in cts])
        parts = _sum_parts(context, cts)
        sum_proof = list(dleq_prove("ballot-sum", parts, r_sum, key, a_sum, sub(b_sum, GENERATOR)))
    return encode(BALLOT, rows, sum_proof)


def _read_ballot(ballot: bytes, options: int, checked: bool) -> tuple[list[list], list]:
    rows, sum_proof = decode(ballot, BALLOT, 2, "ballot")
    check_list(rows, "ballot", options)
    for row in check_list(rows, "ballot"):
        check_list(row, "ballot's entry for one option", 6)
        if checked:
            check_point(row[0], "ballot's ciphertext")
            check_point(row[1], "ballot's ciphertext")
            for s in row[2:]:
                check_scalar(s, "ballot's proof")
        elif any(not isinstance(v, bytes) or len(v) != SCALAR_BYTES for v in row):
            raise CryptoError("The ballot has a part of the wrong size.")
    check_list(sum_proof, "ballot's proof of a single choice")
    if len(sum_proof) not in (0, 2):
        raise CryptoError("The ballot's proof of a single choice does not have the expected shape.")
    return rows, sum_proof


def ballot_check(
    context: bytes, key: bytes, options: int, exactly_one: bool, ballot: bytes
) -> None:
    """Everyone's check that a ballot is well formed: one 0 or 1 per option (and one 1 in all)."""
    key = _check_key(key)
    rows, sum_proof = _read_ballot(ballot, _check_options(options), checked=True)
    cts = [(row[0], row[1]) for row in rows]
    for i, row in enumerate(rows):
        parts = _option_parts(context, cts, i)
        if not bit_verify("ballot-option", parts, key, row[0], row[1], tuple(row[2:])):
            raise CryptoError(
                f"The ballot's proof for option {i + 1} does not hold: it is forged, altered, "
                "or made for another poll or voter."
            )
    if not exactly_one:
        if sum_proof:
            raise CryptoError("The ballot is a single-choice ballot, but this poll allows several.")
        return
    if not sum_proof:
        raise CryptoError("The ballot does not prove that it chooses exactly one option.")
    c, z = (
        check_scalar(sum_proof[0], "ballot's proof"),
        check_scalar(sum_proof[1], "ballot's proof"),
    )
    a_sum, b_sum = point_sum([a for a, _ in cts]), point_sum([b for _, b in cts])
    target = sub(b_sum, GENERATOR)
    if not dleq_verify("ballot-sum", _sum_parts(context, cts), key, a_sum, target, c, z):
        raise CryptoError("The ballot's proof that it chooses exactly one option does not hold.")


def aggregate(ballots: Iterable[bytes], options: int) -> bytes:
    """The per-option sum of already-checked ballots; with no ballots, every sum is the identity."""
    options = _check_options(options)
    sums = [[ZERO, ZERO] for _ in range(options)]
    for ballot in ballots:
        # The points were checked with the ballot; the additions still refuse a non-point.
        rows, _ = _read_ballot(ballot, options, checked=False)
        for acc, row in zip(sums, rows, strict=True):
            acc[0], acc[1] = add(acc[0], row[0]), add(acc[1], row[1])
    return encode(TOTAL, sums)


def _read_total(total_: bytes) -> list[list[bytes]]:
    (sums,) = decode(total_, TOTAL, 1, "sum of the ballots")
    check_list(sums, "sum of the ballots")
    _check_options(len(sums))
    for pair in sums:
        check_list(pair, "sum of the ballots for one option", 2)
        check_point(pair[0], "sum of the ballots")
        check_point(pair[1], "sum of the ballots")
    return sums


def _check_index(index: object) -> int:
    return check_int(index, "trustee number", 1, MAX_TRUSTEES)


def partial_make(context: bytes, total: bytes, share: bytes, index: int) -> bytes:
    """Trustee `index`'s partial decryption x·A_sum per option, each with its proof."""
    sums = _read_total(total)
    share = check_scalar(share, "share")
    index = _check_index(index)
    public = base_mul(share)
    rows = []
    for i, (a_sum, b_sum) in enumerate(sums):
        d = mul(share, a_sum)
        c, z = dleq_prove("partial", (context, index, i, b_sum), share, a_sum, public, d)
        rows.append([d, c, z])
    return encode(PARTIAL, index, rows)


def _read_partial(partial: bytes, options: int) -> tuple[int, list[list[bytes]]]:
    index, rows = decode(partial, PARTIAL, 2, "partial decryption")
    index = _check_index(index)
    check_list(rows, "partial decryption", options)
    for row in rows:
        check_list(row, "partial decryption for one option", 3)
        check_point(row[0], "partial decryption")
        check_scalar(row[1], "partial decryption's proof")
        check_scalar(row[2], "partial decryption's proof")
    return index, rows


def partial_index(partial: bytes) -> int:
    """The trustee number a partial decryption says it comes from (check it against the sender)."""
    index, _ = decode(partial, PARTIAL, 2, "partial decryption")
    return _check_index(index)


def partial_check(context: bytes, total: bytes, trustee_public: bytes, partial: bytes) -> None:
    """Everyone's check that a partial decryption is correct for this trustee's public share."""
    sums = _read_total(total)
    public = check_point(trustee_public, "trustee's public share")
    index, rows = _read_partial(partial, len(sums))
    for i, ((a_sum, b_sum), (d, c, z)) in enumerate(zip(sums, rows, strict=True)):
        if not dleq_verify("partial", (context, index, i, b_sum), a_sum, public, d, c, z):
            raise CryptoError(
                f"The partial decryption's proof for option {i + 1} does not hold: it is wrong, "
                "altered, or made for another poll or another trustee."
            )


def _lagrange_at_zero(indices: Sequence[int]) -> dict[int, bytes]:
    """λ_i = prod_{j≠i} j / (j - i), so that sum λ_i·f(i) = f(0)."""
    out = {}
    for i in indices:
        num, den = scalar_int(1), scalar_int(1)
        for j in indices:
            if j != i:
                num = s_mul(num, scalar_int(j))
                den = s_mul(den, s_sub(scalar_int(j), scalar_int(i)))
        out[i] = s_mul(num, s_invert(den))
    return out


def _solver(max_count: int):
    """Baby-step giant-step for m·G with 0 <= m <= max_count: about 2·sqrt(max_count) additions."""
    step = math.isqrt(max_count) + 1
    table, point = {}, ZERO
    for j in range(step):
        table[point] = j
        point = add(point, GENERATOR)
    giant = point  # step·G

    def solve(target: bytes) -> int | None:
        for i in range(max_count // step + 1):
            j = table.get(target)
            if j is not None:
                m = i * step + j
                return m if m <= max_count else None
            target = sub(target, giant)
        return None

    return solve


def result(
    total: bytes, partials: Mapping[int, bytes], threshold: int, max_count: int
) -> list[int]:
    """The count per option from `threshold` checked partial decryptions (lowest indices used)."""
    sums = _read_total(total)
    threshold = check_int(threshold, "number of trustees needed", 1, MAX_TRUSTEES)
    max_count = check_int(max_count, "number of ballots", 0, MAX_COUNT)
    for key in partials:
        _check_index(key)
    if len(partials) < threshold:
        raise CryptoError(
            f"Only {len(partials)} of the {threshold} partial decryptions needed are available: "
            "the result cannot be computed yet."
        )
    chosen = sorted(partials)[:threshold]
    rows = {}
    for key in chosen:
        index, rows[key] = _read_partial(partials[key], len(sums))
        if index != key:
            raise CryptoError(
                f"The partial decryption given as trustee {key}'s is trustee {index}'s."
            )
    weights = _lagrange_at_zero(chosen)
    solve = _solver(max_count)
    counts = []
    for i, (_, b_sum) in enumerate(sums):
        d = point_sum([mul(weights[k], rows[k][i][0]) for k in chosen])
        m = solve(sub(b_sum, d))
        if m is None:
            raise CryptoError(
                f"The count for option {i + 1} could not be found: the partial decryptions do "
                "not fit the ballots, or there are fewer ballots than the count."
            )
        counts.append(m)
    return counts
