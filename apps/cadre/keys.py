"""What a party derives from its master secret for its cadre (ADR 24), and the small proofs its
nodes and mirrors exchange. All pure: no clock, no disk, no network.

- The **control thread** has an id every device of the party can compute: its create op is
  signed by a *genesis* device key derived from the master secret, with a derived nonce, so
  ``thread_id_for(nonce, genesis)`` is the party's alone and a restored node finds it again.
- The **party key** proves "I hold this party's master secret" to a mirror or to another device of
  the party, bound to both ends of the connection and to a purpose, so a proof overheard (or
  replayed by the node it was shown to) opens nothing else.
- **Standby keys** are device keys derived from the master secret (index 0, 1, ...): the current
  one is certified in every thread of the party, so a node restored from the phrase alone can
  act as it once, to certify its own device key.
- A **device link** holds the seed of a single-use key; the inviting node keeps only its public
  key and checks the new node's signatures with it.
"""

from __future__ import annotations

from typing import Any

import nacl.signing

from apps.core.thread import codec, crypto, keys

_NO_THREAD = b"\x00" * 32  # the signing tag's thread slot, for proofs that are about no thread


class ProofError(ValueError):
    """A party or link proof that does not verify (in words)."""


def _derive(master: bytes, info: str) -> bytes:
    if len(master) != 32:
        raise ValueError("the master secret is 32 bytes")
    return crypto.hkdf(master, info=b"sereus/cadre/v1/" + info.encode())


def control_nonce(master: bytes) -> bytes:
    return _derive(master, "control-nonce")[:16]


def genesis_key(master: bytes) -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(_derive(master, "genesis"))


def control_thread_id(master: bytes) -> bytes:
    return keys.thread_id_for(control_nonce(master), bytes(genesis_key(master).verify_key))


def party_key(master: bytes) -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(_derive(master, "party"))


def party_id(master: bytes) -> bytes:
    return bytes(party_key(master).verify_key)


def standby_key(master: bytes, index: int) -> nacl.signing.SigningKey:
    if not 0 <= index < 1 << 31:
        raise ValueError("a standby index is a small whole number")
    return nacl.signing.SigningKey(_derive(master, f"standby/{index}"))


def link_key(seed: bytes) -> nacl.signing.SigningKey:
    if len(seed) != 32:
        raise ValueError("a device link's secret is 32 bytes")
    return nacl.signing.SigningKey(seed)


def _proof_body(purpose: str, requester: bytes, responder: bytes, at_ms: int) -> bytes:
    return codec.encode(
        {"purpose": purpose, "requester": requester, "responder": responder, "at": at_ms}
    )


def party_proof_sign(
    master: bytes, *, purpose: str, requester: bytes, responder: bytes, at_ms: int
) -> dict[str, Any]:
    key = party_key(master)
    sig = crypto.sign(
        key, "cadre-party", _NO_THREAD, _proof_body(purpose, requester, responder, at_ms)
    )
    return {"party": bytes(key.verify_key), "at": at_ms, "sig": sig}


def party_proof_verify(
    proof: Any,
    *,
    purpose: str,
    requester: bytes,
    responder: bytes,
    now_ms: int,
    window_ms: int = 600_000,
) -> bytes:
    """The party id the proof speaks for; ``ProofError`` when it does not verify, names another
    connection or purpose, or is older (or newer) than ``window_ms``."""
    if not isinstance(proof, dict):
        raise ProofError("the party proof is missing")
    party, at, sig = proof.get("party"), proof.get("at"), proof.get("sig")
    if not (isinstance(party, bytes) and len(party) == 32 and isinstance(sig, bytes)):
        raise ProofError("the party proof is malformed")
    if type(at) is not int or abs(now_ms - at) > window_ms:
        raise ProofError("the party proof is too old or from the future (check the clocks)")
    try:
        crypto.verify(
            party, sig, "cadre-party", _NO_THREAD, _proof_body(purpose, requester, responder, at)
        )
    except crypto.CryptoError as exc:
        raise ProofError("the party proof does not verify") from exc
    return party


def _link_body(step: str, requester: bytes, responder: bytes) -> bytes:
    return codec.encode({"step": step, "requester": requester, "responder": responder})


def link_proof_sign(seed: bytes, *, step: str, requester: bytes, responder: bytes) -> bytes:
    return crypto.sign(
        link_key(seed), "cadre-link", _NO_THREAD, _link_body(step, requester, responder)
    )


def link_proof_verify(
    public_key: bytes, sig: Any, *, step: str, requester: bytes, responder: bytes
) -> None:
    if not isinstance(sig, bytes):
        raise ProofError("the device link proof is missing")
    try:
        crypto.verify(
            public_key, sig, "cadre-link", _NO_THREAD, _link_body(step, requester, responder)
        )
    except crypto.CryptoError as exc:
        raise ProofError("the device link proof does not verify") from exc
