"""Invite links (DESIGN §9) and the redemption proof.

A link is ``sereus:invite/<base64url of canonical CBOR>`` (or ``https://<node>/join#<same>``: the
fragment never reaches a server log). It carries the thread id, the role, the expiry, the seed of a
single-use Ed25519 invite key, the inviter's peer id and addresses, and a name hint. The inviter
records the invite's public key, role and expiry in the thread (a ``create_invite`` control op).

Redeeming proves possession of the invite secret by signing the newcomer's member and device keys
(domain-separated with the thread id), so an invite can admit one identity only and a proof from
one thread is worthless in another.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

import nacl.signing

from apps.core.thread import codec, crypto
from apps.core.thread.policy import NAME_RE

SCHEME_PREFIX = "sereus:invite/"
HTTPS_RE = re.compile(r"^https?://[^/#?\s]+/join/?#(?P<payload>[A-Za-z0-9_-]+)$")
INVITE_VERSION = 1
MAX_LINK = 4096
MAX_ADDRS = 8


class InviteError(ValueError):
    """An invite link that cannot be used; ``code`` says which way it fails."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Invite:
    thread: bytes
    role: str
    expiry: int  # milliseconds since the Unix epoch
    secret: bytes  # the 32-byte seed of the invite key
    inviter: str  # libp2p peer id of the inviting node
    addrs: tuple[str, ...]
    name: str

    @property
    def signing_key(self) -> nacl.signing.SigningKey:
        return nacl.signing.SigningKey(self.secret)

    @property
    def public_key(self) -> bytes:
        return bytes(self.signing_key.verify_key)

    def link(self) -> str:
        doc = {
            "v": INVITE_VERSION,
            "thread": self.thread,
            "role": self.role,
            "expiry": self.expiry,
            "secret": self.secret,
            "inviter": self.inviter,
            "addrs": list(self.addrs),
            "name": self.name,
        }
        payload = base64.urlsafe_b64encode(codec.encode(doc)).rstrip(b"=").decode()
        return SCHEME_PREFIX + payload

    def https_link(self, domain: str) -> str:
        return f"https://{domain}/join#{self.link().removeprefix(SCHEME_PREFIX)}"

    def check_fresh(self, now_millis: int) -> None:
        if now_millis >= self.expiry:
            raise InviteError("expired", "this invite has expired; ask for a new one")


def invite_parse(text: str) -> Invite:
    """Parse an invite link, with a clear error for each way it can be malformed."""
    if type(text) is not str or len(text) > MAX_LINK:
        raise InviteError("malformed", "an invite link is text of at most 4096 characters")
    text = text.strip()
    if text.startswith(SCHEME_PREFIX):
        payload = text[len(SCHEME_PREFIX) :]
    elif match := HTTPS_RE.match(text):
        payload = match.group("payload")
    else:
        raise InviteError(
            "malformed", "not an invite link (it starts with sereus:invite/ or https://…/join#)"
        )
    try:
        # validate=True: a stray character is damage to report, not something to skip.
        raw = base64.b64decode(payload + "=" * (-len(payload) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InviteError("malformed", "the invite link is damaged (bad base64)") from exc
    try:
        doc = codec.decode(raw, max_size=MAX_LINK)
    except codec.DecodeError as exc:
        raise InviteError("malformed", f"the invite link is damaged ({exc})") from exc
    if type(doc) is not dict:
        raise InviteError("malformed", "the invite link is damaged (not a map)")
    if type(doc.get("v")) is not int or doc.get("v") != INVITE_VERSION:
        raise InviteError(
            "version", f"invite version {doc.get('v')!r} is not supported by this node"
        )
    expected = {"v", "thread", "role", "expiry", "secret", "inviter", "addrs", "name"}
    if doc.keys() != expected:
        raise InviteError("malformed", "the invite link is damaged (wrong fields)")
    thread, secret, role = doc["thread"], doc["secret"], doc["role"]
    if type(thread) is not bytes or len(thread) != 32:
        raise InviteError("malformed", "the invite names no valid thread")
    if type(secret) is not bytes or len(secret) != 32:
        raise InviteError("malformed", "the invite secret is damaged")
    if type(role) is not str or not NAME_RE.match(role):
        raise InviteError("malformed", "the invite role is not valid")
    if type(doc["expiry"]) is not int or not 0 < doc["expiry"] < 2**48:
        raise InviteError("malformed", "the invite expiry is not valid")
    inviter, addrs, name = doc["inviter"], doc["addrs"], doc["name"]
    if type(inviter) is not str or not 0 < len(inviter) <= 128:
        raise InviteError("malformed", "the inviter's peer id is not valid")
    if (
        type(addrs) is not list
        or len(addrs) > MAX_ADDRS
        or any(type(a) is not str or len(a) > 256 for a in addrs)
    ):
        raise InviteError("malformed", "the inviter's addresses are not valid")
    if type(name) is not str or len(name) > 200:
        raise InviteError("malformed", "the thread name hint is not valid")
    return Invite(
        thread=thread,
        role=role,
        expiry=doc["expiry"],
        secret=secret,
        inviter=inviter,
        addrs=tuple(addrs),
        name=name,
    )


def _proof_body(invite_public: bytes, member: bytes, device: bytes) -> bytes:
    return codec.encode({"invite": invite_public, "member": member, "device": device})


def redemption_proof(invite: Invite, member: bytes, device: bytes) -> bytes:
    """The invite key's signature binding this invite to one newcomer's member and device keys."""
    return crypto.sign(
        invite.signing_key,
        "invite-redeem",
        invite.thread,
        _proof_body(invite.public_key, member, device),
    )


def redemption_proof_verify(
    thread: bytes, invite_public: bytes, member: bytes, device: bytes, proof: bytes
) -> None:
    crypto.verify(
        invite_public, proof, "invite-redeem", thread, _proof_body(invite_public, member, device)
    )


def challenge_sign(invite: Invite, challenge: bytes) -> bytes:
    """Answer a live challenge from the admitting node (the network half, `/sereus/invite`)."""
    return crypto.sign(invite.signing_key, "invite-challenge", invite.thread, challenge)


def challenge_verify(thread: bytes, invite_public: bytes, challenge: bytes, sig: bytes) -> None:
    crypto.verify(invite_public, sig, "invite-challenge", thread, challenge)
