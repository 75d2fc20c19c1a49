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
import ipaddress
import re
from dataclasses import dataclass
from typing import Any

import cbor2
import nacl.signing

from apps.core.thread import codec, crypto
from apps.core.thread.policy import NAME_RE

SCHEME_PREFIX = "sereus:invite/"
HTTPS_RE = re.compile(r"^https?://[^/#?\s]+/join/?#(?P<payload>[^#?\s]*)$")
INVITE_VERSION = 2  # what this node writes; it still reads version 1 links
MAX_LINK = 4096
MAX_ADDRS = 8
B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"  # peer ids' alphabet
PAYLOAD_RE = re.compile(r"\A[A-Za-z0-9_-]*\Z")

# What people are told; the same words on the join page and in the API.
INCOMPLETE = (
    "This invite link is incomplete — it was probably cut off when it was copied. Copy the "
    "whole link again, or scan the QR code."
)
DAMAGED = (
    "This invite link is damaged — some of its characters were changed on the way. Copy the "
    "whole link again, or scan the QR code."
)
NOT_AN_INVITE = (
    "This is not an invite link. An invite link starts with sereus:invite/ — ask the person "
    "who invited you to send it again."
)
TOO_LONG = "This is not an invite link: it is far longer than one."
NEWER = (
    "This invite link was made by a newer version of Sereus than this node runs. Update this "
    "node, then try again."
)
EXPIRED = "This invite has expired. Ask the person who invited you for a new one."


class InviteError(ValueError):
    """An invite link that cannot be used; ``code`` says which way it fails (``malformed``,
    ``version``, ``expired``), the message says it in plain words."""

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
        # Version 2: the same fields as version 1, in an array instead of a map with names, the
        # peer id and the IP addresses as bytes instead of text: about 40% shorter (a link
        # with two addresses: 361 -> 217 characters), so a smaller QR code. Nothing is left out.
        doc = [
            INVITE_VERSION,
            self.thread,
            self.role,
            self.expiry,
            self.secret,
            _b58_pack(self.inviter),
            [_addr_pack(a) for a in self.addrs],
            self.name,
        ]
        payload = base64.urlsafe_b64encode(codec.encode(doc)).rstrip(b"=").decode()
        return SCHEME_PREFIX + payload

    def https_link(self, domain: str) -> str:
        return f"https://{domain}/join#{self.link().removeprefix(SCHEME_PREFIX)}"

    def check_fresh(self, now_millis: int) -> None:
        if now_millis >= self.expiry:
            raise InviteError("expired", EXPIRED)


def _b58_pack(text: str) -> bytes | str:
    """A peer id as the bytes its base58 text stands for (text that is not base58 as is)."""
    if not text or any(c not in B58 for c in text):
        return text
    number = 0
    for char in text:
        number = number * 58 + B58.index(char)
    zeros = len(text) - len(text.lstrip("1"))
    return b"\0" * zeros + number.to_bytes((number.bit_length() + 7) // 8, "big")


def _b58_text(data: bytes) -> str:
    number, out = int.from_bytes(data, "big"), ""
    while number:
        number, digit = divmod(number, 58)
        out = B58[digit] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def _addr_pack(addr: str) -> bytes | str:
    """``/ip4/<ip>/tcp/<port>`` (or ip6) as the address's bytes and the port's; other
    addresses as text. Only where unpacking gives back the same text."""
    parts = addr.split("/")
    if len(parts) == 5 and parts[0] == "" and parts[1] in ("ip4", "ip6") and parts[3] == "tcp":
        try:
            ip = ipaddress.ip_address(parts[2])
            port = int(parts[4])
        except ValueError:
            return addr
        packed = ip.packed + port.to_bytes(2, "big") if 0 <= port < 65536 else b""
        if packed and _addr_text(packed) == addr:
            return packed
    return addr


def _addr_text(packed: bytes) -> str:
    ip = ipaddress.ip_address(packed[:-2])
    return f"/ip{ip.version}/{ip}/tcp/{int.from_bytes(packed[-2:], 'big')}"


def _payload(text: str) -> str:
    if text.startswith(SCHEME_PREFIX):
        return text[len(SCHEME_PREFIX) :]
    if match := HTTPS_RE.match(text):
        return match.group("payload")
    if len(text) >= len("sereus:") and SCHEME_PREFIX.startswith(text):
        raise InviteError("malformed", INCOMPLETE)  # "sereus:inv": the start of one, cut off
    raise InviteError("malformed", NOT_AN_INVITE)


def _fields(doc: Any) -> dict[str, Any]:
    """The fields of a decoded link of either version, by name; version 2's packed peer id and
    addresses unpacked."""
    if type(doc) is list:
        if doc and type(doc[0]) is int and doc[0] > INVITE_VERSION:
            raise InviteError("version", NEWER)
        if len(doc) != 8 or type(doc[0]) is not int or doc[0] != INVITE_VERSION:
            raise InviteError("malformed", DAMAGED)
        names = ("v", "thread", "role", "expiry", "secret", "inviter", "addrs", "name")
        fields = dict(zip(names, doc, strict=True))
        if type(fields["inviter"]) is bytes and 0 < len(fields["inviter"]) <= 96:
            fields["inviter"] = _b58_text(fields["inviter"])
        if type(fields["addrs"]) is list:
            fields["addrs"] = [
                _addr_text(a) if type(a) is bytes and len(a) in (6, 18) else a
                for a in fields["addrs"]
            ]
        return fields
    if type(doc) is not dict:
        raise InviteError("malformed", DAMAGED)
    if type(doc.get("v")) is not int or doc.get("v") != 1:
        raise InviteError("version", NEWER)
    expected = {"v", "thread", "role", "expiry", "secret", "inviter", "addrs", "name"}
    if doc.keys() != expected:
        raise InviteError("malformed", DAMAGED)
    return doc


def invite_parse(text: str) -> Invite:
    """Parse an invite link; each way it can be wrong is told in plain words: not an invite
    link, cut off (``INCOMPLETE``), damaged (characters changed: ``DAMAGED``), too new."""
    if type(text) is not str:
        raise InviteError("malformed", NOT_AN_INVITE)
    if len(text) > MAX_LINK:
        raise InviteError("malformed", TOO_LONG)
    # No whitespace belongs in a link: what a mail program or a chat wrapped across lines is
    # put back together.
    payload = _payload("".join(text.split()))
    if payload.endswith(("…", "...")):
        raise InviteError("malformed", INCOMPLETE)  # shortened for display, then copied
    if not PAYLOAD_RE.match(payload):
        raise InviteError("malformed", DAMAGED)
    if len(payload) % 4 == 1 or not payload:
        raise InviteError("malformed", INCOMPLETE)  # no base64 text ends after 1 of 4
    raw = base64.b64decode(payload + "=" * (-len(payload) % 4), altchars=b"-_")
    try:
        doc = codec.decode(raw, max_size=MAX_LINK)
    except codec.DecodeError as exc:
        cut = isinstance(exc.__cause__, cbor2.CBORDecodeEOF)
        raise InviteError("malformed", INCOMPLETE if cut else DAMAGED) from exc
    fields = _fields(doc)
    thread, secret, role = fields["thread"], fields["secret"], fields["role"]
    inviter, addrs, name, expiry = (
        fields["inviter"],
        fields["addrs"],
        fields["name"],
        fields["expiry"],
    )
    if (
        type(thread) is not bytes
        or len(thread) != 32
        or type(secret) is not bytes
        or len(secret) != 32
        or type(role) is not str
        or not NAME_RE.match(role)
        or type(expiry) is not int
        or not 0 < expiry < 2**48
        or type(inviter) is not str
        or not 0 < len(inviter) <= 128
        or type(addrs) is not list
        or len(addrs) > MAX_ADDRS
        or any(type(a) is not str or len(a) > 256 for a in addrs)
        or type(name) is not str
        or len(name) > 200
    ):
        raise InviteError("malformed", DAMAGED)
    return Invite(
        thread=thread,
        role=role,
        expiry=expiry,
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
