"""Zero-knowledge proofs (Fiat-Shamir): Schnorr, Chaum-Pedersen, and the 0-or-1 disjunction.

Every challenge hashes a label, the caller's binding parts (the poll's context, positions,
public keys), the statement's points and the prover's commitments, so a proof made for one
statement or one poll never verifies for another. Proofs are sent as (challenge, response)
scalars; the verifier recomputes the commitments and compares the challenge.
"""

from __future__ import annotations

from .group import (
    GENERATOR,
    base_mul,
    hash_to_scalar,
    int_mul,
    mul,
    s_add,
    s_mul,
    s_sub,
    scalar_random,
    sub,
)

Parts = tuple[bytes | int, ...]


def schnorr_prove(label: str, parts: Parts, secret: bytes, public: bytes) -> tuple[bytes, bytes]:
    """Proof of knowledge of `secret` with public = secret·G."""
    w = scalar_random()
    commit = base_mul(w)
    c = hash_to_scalar(label, *parts, public, commit)
    return c, s_add(w, s_mul(c, secret))


def schnorr_verify(label: str, parts: Parts, public: bytes, c: bytes, z: bytes) -> bool:
    commit = sub(base_mul(z), mul(c, public))
    return hash_to_scalar(label, *parts, public, commit) == c


def dleq_prove(
    label: str, parts: Parts, x: bytes, base2: bytes, h1: bytes, h2: bytes
) -> tuple[bytes, bytes]:
    """Chaum-Pedersen: log_G(h1) == log_base2(h2) (== x)."""
    w = scalar_random()
    a, b = base_mul(w), mul(w, base2)
    c = hash_to_scalar(label, *parts, base2, h1, h2, a, b)
    return c, s_add(w, s_mul(c, x))


def dleq_verify(
    label: str, parts: Parts, base2: bytes, h1: bytes, h2: bytes, c: bytes, z: bytes
) -> bool:
    a = sub(base_mul(z), mul(c, h1))
    b = sub(mul(z, base2), mul(c, h2))
    return hash_to_scalar(label, *parts, base2, h1, h2, a, b) == c


def _simulated(key: bytes, a_ct: bytes, shifted: bytes, c: bytes, z: bytes) -> tuple[bytes, bytes]:
    """The commitments a verifier recomputes for one branch (A = r·G, B - i·G = r·key)."""
    return sub(base_mul(z), mul(c, a_ct)), sub(mul(z, key), mul(c, shifted))


def bit_prove(
    label: str, parts: Parts, key: bytes, a_ct: bytes, b_ct: bytes, m: int, r: bytes
) -> tuple[bytes, bytes, bytes, bytes]:
    """Disjunctive Chaum-Pedersen: (A, B) = (r·G, m·G + r·key) with m ∈ {0, 1}.

    The real branch is an honest Chaum-Pedersen proof; the other is simulated by choosing its
    challenge and response first. The challenges must add up to the hash, and only one of them
    could be chosen freely, so at least one branch is true.
    """
    if m not in (0, 1):
        raise ValueError("Only a 0 or a 1 can be proved.")
    fake = 1 - m
    c_fake, z_fake = scalar_random(), scalar_random()
    fake_commit = _simulated(key, a_ct, sub(b_ct, int_mul(fake)), c_fake, z_fake)
    w = scalar_random()
    real_commit = (base_mul(w), mul(w, key))
    commits = (real_commit, fake_commit) if m == 0 else (fake_commit, real_commit)
    c = hash_to_scalar(label, *parts, key, a_ct, b_ct, *commits[0], *commits[1])
    c_real = s_sub(c, c_fake)
    z_real = s_add(w, s_mul(c_real, r))
    if m == 0:
        return c_real, c_fake, z_real, z_fake
    return c_fake, c_real, z_fake, z_real


def bit_verify(
    label: str,
    parts: Parts,
    key: bytes,
    a_ct: bytes,
    b_ct: bytes,
    proof: tuple[bytes, bytes, bytes, bytes],
) -> bool:
    c0, c1, z0, z1 = proof
    commit0 = _simulated(key, a_ct, b_ct, c0, z0)
    commit1 = _simulated(key, a_ct, sub(b_ct, GENERATOR), c1, z1)
    c = hash_to_scalar(label, *parts, key, a_ct, b_ct, *commit0, *commit1)
    return s_add(c0, c1) == c
