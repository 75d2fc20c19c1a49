"""Invite links and the redemption proof (invite.py, DESIGN §9)."""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

import pytest

from apps.core.thread import codec, crypto
from apps.core.thread.invite import (
    DAMAGED,
    INCOMPLETE,
    MAX_ADDRS,
    MAX_LINK,
    NEWER,
    NOT_AN_INVITE,
    SCHEME_PREFIX,
    TOO_LONG,
    Invite,
    InviteError,
    challenge_sign,
    challenge_verify,
    invite_parse,
    redemption_proof,
    redemption_proof_verify,
)

THREAD = b"\x0a" * 32
OTHER_THREAD = b"\x0b" * 32
MEMBER = b"\x0c" * 32
DEVICE = b"\x0d" * 32
EXPIRY = 1_800_000_000_000
PEER = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"


@pytest.fixture
def invite() -> Invite:
    return Invite(
        thread=THREAD,
        role="writer",
        expiry=EXPIRY,
        secret=b"\x0e" * 32,
        inviter=PEER,
        addrs=("/ip4/192.0.2.1/tcp/4001", "/dns4/node.example/tcp/443/wss"),
        name="Book club \u2603",
    )


def valid_doc(**changes: Any) -> dict[str, Any]:
    doc = {
        "v": 1,
        "thread": THREAD,
        "role": "writer",
        "expiry": EXPIRY,
        "secret": b"\x0e" * 32,
        "inviter": PEER,
        "addrs": ["/ip4/192.0.2.1/tcp/4001"],
        "name": "Book club",
    }
    for key, value in changes.items():
        if value is ...:
            del doc[key]
        else:
            doc[key] = value
    return doc


def link_of(payload: bytes) -> str:
    return SCHEME_PREFIX + base64.urlsafe_b64encode(payload).rstrip(b"=").decode()


def parse_error(text: Any) -> InviteError:
    with pytest.raises(InviteError) as info:
        invite_parse(text)
    assert str(info.value)
    return info.value


# --- round trips ----------------------------------------------------------------------------------


def test_scheme_link_round_trip(invite: Invite):
    link = invite.link()
    assert link.startswith("sereus:invite/")
    assert "=" not in link
    assert invite_parse(link) == invite


def test_https_link_round_trip(invite: Invite):
    link = invite.https_link("node.example")
    assert link.startswith("https://node.example/join#")
    assert invite_parse(link) == invite
    payload = link.split("#", 1)[1]
    assert invite_parse(f"https://node.example:8443/join/#{payload}") == invite


@pytest.mark.parametrize("space", [" ", "\n", "\t", "  \r\n "])
def test_surrounding_whitespace_is_tolerated(invite: Invite, space: str):
    assert invite_parse(space + invite.link() + space) == invite
    assert invite_parse(space + invite.https_link("node.example") + space) == invite


def test_minimal_invite_round_trips():
    minimal = Invite(
        thread=THREAD, role="reader", expiry=1, secret=b"\x01" * 32, inviter="p", addrs=(), name=""
    )
    assert invite_parse(minimal.link()) == minimal


def test_invite_key_is_the_secret_seed(invite: Invite):
    assert len(invite.public_key) == 32
    assert invite.public_key != invite.secret
    assert invite.public_key == bytes(invite.signing_key.verify_key)
    other = replace(invite, secret=b"\x0f" * 32)
    assert other.public_key != invite.public_key


def v1_link(invite: Invite) -> str:
    """A link as nodes wrote them before version 2 (a map with names)."""
    doc = {
        "v": 1,
        "thread": invite.thread,
        "role": invite.role,
        "expiry": invite.expiry,
        "secret": invite.secret,
        "inviter": invite.inviter,
        "addrs": list(invite.addrs),
        "name": invite.name,
    }
    return link_of(codec.encode(doc))


def test_version_1_links_still_work_and_version_2_is_shorter(invite: Invite):
    home = replace(invite, addrs=("/ip4/192.168.1.23/tcp/4001", "/ip6/2a01:e0a:1f3::17/tcp/4001"))
    assert invite_parse(v1_link(home)) == home
    assert invite_parse(home.link()) == home
    assert (len(v1_link(home)), len(home.link())) == (364, 237)


@pytest.mark.parametrize(
    "addr",
    [
        "/ip4/0.0.0.0/tcp/0",
        "/ip4/255.255.255.255/tcp/65535",
        "/ip6/::1/tcp/4001",
        "/ip4/192.0.2.1/tcp/04001",  # not as it would be written back: kept as text
        "/ip4/192.0.2.1/tcp/70000",
        "/ip6/0:0::1/tcp/1",
        "/ip4/192.0.2.1/udp/4001/quic",
        "/dns4/node.example/tcp/443/wss",
        "/ip4/not-an-ip/tcp/1",
    ],
)
def test_addresses_and_peer_ids_come_back_as_written(invite: Invite, addr: str):
    for inviter in (PEER, "1" + PEER, "11p", "not base58: 0OIl"):
        written = replace(invite, addrs=(addr,), inviter=inviter)
        assert invite_parse(written.link()) == written


def test_every_cut_off_link_is_said_to_be_incomplete(invite: Invite):
    for link in (invite.link(), invite.https_link("node.example")):
        start = link.index("/join#") + 6 if link.startswith("https") else len("sereus:")
        for end in range(start, len(link)):
            error = parse_error(link[:end])
            assert (error.code, str(error)) == ("malformed", INCOMPLETE), end
    assert str(parse_error(invite.link()[:60] + "…")) == INCOMPLETE
    assert str(parse_error(invite.link()[:60] + "...")) == INCOMPLETE


def test_a_link_wrapped_across_lines_is_put_back_together(invite: Invite):
    link = invite.link()
    assert invite_parse(link[:40] + "\n" + link[40:90] + " \r\n  " + link[90:]) == invite


@pytest.mark.parametrize("typo", ["!", "+", "/", "=", "é"])
def test_a_stray_character_is_damage(invite: Invite, typo: str):
    link = invite.link()
    assert str(parse_error(link[:50] + typo + link[51:])) == DAMAGED


@pytest.mark.parametrize("text", ["", "hello", "https://example.org/", "sereus:thread/AAAA"])
def test_text_that_is_no_invite_link_is_said_so(text: str):
    assert str(parse_error(text)) == NOT_AN_INVITE


def test_no_message_uses_internal_words(invite: Invite):
    link = invite.link()
    texts = [link[:-3], link + "AAAA", "sereus:invite/////", link[:30]]
    for text in texts:
        message = str(parse_error(text))
        for word in ("CBOR", "base64", "map", "bytes", "stream", "canonical"):
            assert word not in message, message


# --- malformed links ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello",
        "sereus:invit/AAAA",
        "SEREUS:INVITE/AAAA",
        "sereus://invite/AAAA",
        "https://node.example/other#AAAA",
        "https://node.example/join?x=AAAA",
        "https://node.example/join#",
        "https://node.example/join#AA+A",
        "https://node.example/join#AA=A",
        "ftp://node.example/join#AAAA",
        "https:///join#AAAA",
    ],
)
def test_bad_prefix_is_malformed(text: str):
    assert parse_error(text).code == "malformed"


@pytest.mark.parametrize("text", [None, b"sereus:invite/AAAA", 42, ["sereus:invite/AAAA"]])
def test_non_text_is_malformed(text: Any):
    assert parse_error(text).code == "malformed"


@pytest.mark.parametrize("payload", ["A", "AAAAA", "ABCDE"])
def test_bad_base64_is_malformed(payload: str):
    error = parse_error(SCHEME_PREFIX + payload)
    assert error.code == "malformed"
    assert str(error) == INCOMPLETE  # no base64 text ends one character into a group of four
    error = parse_error(f"https://node.example/join#{payload}")
    assert error.code == "malformed"


@pytest.mark.parametrize(
    "payload",
    [
        b"\xff",
        b"\x9f\x01\xff",  # indefinite length
        codec.encode(valid_doc()) + b"\x00",  # trailing bytes
        bytes.fromhex("c11a514b67b0"),  # a tag
        bytes.fromhex("a2616201616101"),  # non-canonical map order
    ],
)
def test_bad_cbor_is_malformed(payload: bytes):
    error = parse_error(link_of(payload))
    assert error.code == "malformed"
    assert str(error) == DAMAGED


@pytest.mark.parametrize("doc", [[1, 2], "invite", 1, None, b"x" * 32])
def test_non_map_is_malformed(doc: Any):
    assert parse_error(link_of(codec.encode(doc))).code == "malformed"


@pytest.mark.parametrize(
    "changes",
    [
        {"extra": 1},
        {"name": ...},
        {"addrs": ...},
        {"secret": ...},
        {"thread": ...},
    ],
)
def test_wrong_fields_are_malformed(changes: dict[str, Any]):
    error = parse_error(link_of(codec.encode(valid_doc(**changes))))
    assert error.code == "malformed"
    assert str(error) == DAMAGED


@pytest.mark.parametrize(
    "changes",
    [
        {"thread": b"\x0a" * 31},
        {"thread": b"\x0a" * 33},
        {"thread": "a" * 32},
        {"secret": b"\x0e" * 31},
        {"secret": None},
        {"role": "Writer"},
        {"role": ""},
        {"role": "a" * 65},
        {"role": 1},
        {"role": "writer\n"},
        {"expiry": 0},
        {"expiry": -5},
        {"expiry": 2**48},
        {"expiry": "1800000000000"},
        {"expiry": 1.5},
        {"expiry": True},
        {"inviter": ""},
        {"inviter": "p" * 129},
        {"inviter": b"peer"},
        {"addrs": "/ip4/192.0.2.1/tcp/4001"},
        {"addrs": ["/ip4/192.0.2.1/tcp/4001"] * (MAX_ADDRS + 1)},
        {"addrs": [b"/ip4/192.0.2.1"]},
        {"addrs": ["a" * 257]},
        {"name": "n" * 201},
        {"name": None},
    ],
)
def test_wrong_types_and_lengths_are_malformed(changes: dict[str, Any]):
    error = parse_error(link_of(codec.encode(valid_doc(**changes))))
    assert (error.code, str(error)) == ("malformed", DAMAGED)


def test_field_limits_are_inclusive():
    doc = valid_doc(
        role="a" * 64,
        expiry=2**48 - 1,
        inviter="p" * 128,
        addrs=["a" * 256] * MAX_ADDRS,
        name="n" * 200,
    )
    parsed = invite_parse(link_of(codec.encode(doc)))
    assert parsed.role == "a" * 64
    assert len(parsed.addrs) == MAX_ADDRS


def test_too_long_link_is_malformed(invite: Invite):
    long = invite.link() + "A" * (MAX_LINK + 1 - len(invite.link()))
    assert len(long) == MAX_LINK + 1
    error = parse_error(long)
    assert error.code == "malformed"
    assert str(error) == TOO_LONG
    # Padding with whitespace does not get around the limit either.
    assert parse_error(invite.link() + " " * MAX_LINK).code == "malformed"


@pytest.mark.parametrize("version", [0, 2, 99, "1", None])
def test_unknown_version(version: Any):
    error = parse_error(link_of(codec.encode(valid_doc(v=version))))
    assert error.code == "version"
    assert str(error) == NEWER


# --- expiry ---------------------------------------------------------------------------------------


def test_check_fresh(invite: Invite):
    invite.check_fresh(EXPIRY - 1)
    invite.check_fresh(0)
    for now in (EXPIRY, EXPIRY + 1, 2**48):
        with pytest.raises(InviteError) as info:
            invite.check_fresh(now)
        assert info.value.code == "expired"


# --- redemption proof and challenge ---------------------------------------------------------------


def test_redemption_proof_binds_thread_invite_member_and_device(invite: Invite):
    proof = redemption_proof(invite, MEMBER, DEVICE)
    redemption_proof_verify(THREAD, invite.public_key, MEMBER, DEVICE, proof)
    other = b"\x99" * 32
    with pytest.raises(crypto.CryptoError):
        redemption_proof_verify(OTHER_THREAD, invite.public_key, MEMBER, DEVICE, proof)
    with pytest.raises(crypto.CryptoError):
        redemption_proof_verify(THREAD, invite.public_key, other, DEVICE, proof)
    with pytest.raises(crypto.CryptoError):
        redemption_proof_verify(THREAD, invite.public_key, MEMBER, other, proof)
    with pytest.raises(crypto.CryptoError):
        redemption_proof_verify(THREAD, invite.public_key, DEVICE, MEMBER, proof)
    another_invite = replace(invite, secret=b"\x42" * 32)
    with pytest.raises(crypto.CryptoError):
        redemption_proof_verify(THREAD, another_invite.public_key, MEMBER, DEVICE, proof)


def test_redemption_proof_from_another_thread_is_worthless(invite: Invite):
    elsewhere = replace(invite, thread=OTHER_THREAD)
    proof = redemption_proof(elsewhere, MEMBER, DEVICE)
    redemption_proof_verify(OTHER_THREAD, invite.public_key, MEMBER, DEVICE, proof)
    with pytest.raises(crypto.CryptoError):
        redemption_proof_verify(THREAD, invite.public_key, MEMBER, DEVICE, proof)


def test_challenge_sign_and_verify(invite: Invite):
    challenge = b"nonce from the admitting node"
    sig = challenge_sign(invite, challenge)
    challenge_verify(THREAD, invite.public_key, challenge, sig)
    with pytest.raises(crypto.CryptoError):
        challenge_verify(THREAD, invite.public_key, b"another nonce", sig)
    with pytest.raises(crypto.CryptoError):
        challenge_verify(OTHER_THREAD, invite.public_key, challenge, sig)
    with pytest.raises(crypto.CryptoError):
        challenge_verify(THREAD, replace(invite, secret=b"\x42" * 32).public_key, challenge, sig)


def test_challenge_and_proof_signatures_are_not_interchangeable(invite: Invite):
    proof = redemption_proof(invite, MEMBER, DEVICE)
    body = codec.encode({"invite": invite.public_key, "member": MEMBER, "device": DEVICE})
    # The proof does not answer a challenge whose bytes equal the proof body...
    with pytest.raises(crypto.CryptoError):
        challenge_verify(THREAD, invite.public_key, body, proof)
    # ...and a challenge answer over those bytes is not a redemption proof.
    answer = challenge_sign(invite, body)
    with pytest.raises(crypto.CryptoError):
        redemption_proof_verify(THREAD, invite.public_key, MEMBER, DEVICE, answer)


def test_invite_error_carries_its_code():
    error = InviteError("expired", "too late")
    assert error.code == "expired"
    assert str(error) == "too late"
    assert isinstance(error, ValueError)
