"""The holder protocol (``/sereus/storage/1.0.0``): one request, one answer, CBOR maps with
``"v": 1`` (the framing, bounds and refusals are the app protocols': ``apps.p2p.app_protocols``).

Every request carries ``"op"`` and a party proof (``"proof"``, ``apps.cadre.keys``) with the
purpose of its op (``keys.PURPOSE_*``), bound to both ends of the connection:

- ``put``: ``{"shares": [bytes, ...]}`` (their total at most ``MAX_PUT_BYTES``) → ``{"kept":
  [digest, ...], "used": int, "quota": int}``; a share over the quota is refused in words.
- ``get``: ``{"digests": [digest, ...]}`` (at most ``MAX_GET``) → ``{"shares": [bytes | None,
  ...]}`` in the same order, bounded by ``MAX_ANSWER_BYTES`` (the rest answered None).
- ``audit``: ``{"items": [[digest, nonce], ...]}`` (at most ``MAX_AUDIT``) → ``{"answers":
  [bytes | None, ...]}`` (``keys.audit_answer``; None for a share it does not have).
- ``release``: ``{"digests": [...], "at": ms, "sig": bytes}`` (``keys.release_sign``) →
  ``{"released": int, "used": int}``.
- ``usage``: ``{}`` → ``{"used": int, "quota": int, "shares": int}``.
- ``deposit``: ``{"thread": id, "control": bool, "member": bytes, "ops": [raw, ...]}`` → the
  ops of the party's control and storage threads, kept like a mirror keeps them (never opened)
  so that a node restored from the phrase finds them here (``apps.cadre`` LOG protocol).
"""

from __future__ import annotations

from apps.cadre.wire import WireError, b32, decode, encode, items, text, uint  # noqa: F401

PROTOCOL = "/sereus/storage/1.0.0"

MAX_REQUEST = 5 << 20  # a put: one share of the largest chunk, sealed, and the proof
MAX_ANSWER = 5 << 20
MAX_PUT_BYTES = (4 << 20) + 4096  # shares in one put (one share of the largest chunk fits)
MAX_GET = 64
MAX_ANSWER_BYTES = 4 << 20
MAX_AUDIT = 1024
MAX_RELEASE = 4096
MAX_DEPOSIT_OPS = 2000
