"""Cryptography of secret ballots: threshold exponential ElGamal on ristretto255.

Pure functions (no database, no clock); only the `*_make` functions draw randomness.
Everything returned as bytes is canonical CBOR; every decoder refuses malformed input with
`CryptoError`, whose message is in plain words.
"""

from .dkg import ShareError, dealing_check, dealing_make, poll_key, share_open, trustee_key
from .elgamal import (
    aggregate,
    ballot_check,
    ballot_make,
    partial_check,
    partial_index,
    partial_make,
    result,
)
from .group import CryptoError

__all__ = [
    "CryptoError",
    "ShareError",
    "aggregate",
    "ballot_check",
    "ballot_make",
    "dealing_check",
    "dealing_make",
    "partial_check",
    "partial_index",
    "partial_make",
    "poll_key",
    "result",
    "share_open",
    "trustee_key",
]
