"""The identity app's formats (ADR 26), checked against outside implementations where one
exists: did:key encoded by hand from the spec, JWS verified with jwcrypto, SD-JWT leaves and
presentations read and verified with the ``sd-jwt`` library. Junk never raises where the rules
call a function on what members send."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import uuid

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jwcrypto import jwk, jws
from sd_jwt.common import SDObj
from sd_jwt.issuer import SDJWTIssuer
from sd_jwt.verifier import SDJWTVerifier

from apps.cadre import keys as cadre_keys
from apps.core.thread import rowid
from apps.identity import formats as f

# RFC 8032 §7.1, test 1.
RFC8032_SECRET = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def b58_by_hand(data: bytes) -> str:
    """Base58btc as the did:key spec describes it (big-endian number, leading zeros as "1")."""
    number = int.from_bytes(data, "big")
    out = ""
    while number:
        number, digit = divmod(number, 58)
        out = B58[digit] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def okp(public: bytes) -> jwk.JWK:
    """An Ed25519 JWK for jwcrypto, made from the key alone (not from our code)."""
    x = base64.urlsafe_b64encode(public).rstrip(b"=").decode()
    return jwk.JWK(kty="OKP", crv="Ed25519", x=x)


def jwcrypto_payload(token: str, public: bytes) -> bytes:
    """The payload of a compact JWS as jwcrypto verifies it (raises if it does not)."""
    parsed = jws.JWS()
    parsed.deserialize(token)
    parsed.verify(okp(public), alg="EdDSA")
    return parsed.payload


def key(n: int) -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(bytes([n]) * 32)


def pub(k: nacl.signing.SigningKey) -> bytes:
    return bytes(k.verify_key)


# -- base64url and canonical JSON ----------------------------------------------------------------


@given(st.binary(max_size=64))
@settings(max_examples=60, deadline=None)
def test_b64url_round_trips_without_padding(data: bytes) -> None:
    text = f.b64url(data)
    assert not set(text) & set("=+/")
    assert f.b64url_decode(text) == data


@pytest.mark.parametrize("text", ["QQ==", "QQ=", "Q", "QR", "Q+8", "Q/8", "Q Q", "QQ\n", "é", ""])
def test_b64url_refuses_what_is_not_canonical_base64url(text: str) -> None:
    if text == "":
        assert f.b64url_decode(text) == b""
        return
    with pytest.raises(ValueError, match="not base64url"):
        f.b64url_decode(text)


def test_canonical_json_is_rfc8785() -> None:
    # RFC 8785 sorts keys by UTF-16 code units and writes numbers as ECMAScript does.
    assert f.canonical_json({"b": 1, "a": [1.0, "é", 1e21]}) == '{"a":[1,"é",1e+21],"b":1}'.encode()


# -- did:key -------------------------------------------------------------------------------------


def test_did_key_of_rfc8032_key_is_the_specs_encoding() -> None:
    signing = nacl.signing.SigningKey(RFC8032_SECRET)
    assert pub(signing) == RFC8032_PUBLIC
    expected = "did:key:z" + b58_by_hand(bytes([0xED, 0x01]) + RFC8032_PUBLIC)
    assert f.did_key(RFC8032_PUBLIC) == expected
    assert expected.startswith("did:key:z6Mk")  # every Ed25519 did:key does
    assert f.did_public(expected) == RFC8032_PUBLIC


@pytest.mark.parametrize(
    "did",
    [
        "did:key:z" + b58_by_hand(bytes([0xEC, 0x01]) + RFC8032_PUBLIC),  # an X25519 key
        "did:key:z" + b58_by_hand(bytes([0xED, 0x01]) + RFC8032_PUBLIC[:31]),  # too short
        "did:key:m" + base64.b64encode(bytes([0xED, 0x01]) + RFC8032_PUBLIC).decode(),
        "did:web:example.org",
        "did:key:z0OIl",
        "did:key:z",
        "did:key:z" + b58_by_hand(bytes([0xED, 0x01]) + RFC8032_PUBLIC) + "#frag",
        "",
    ],
)
def test_did_public_refuses_anything_else(did: str) -> None:
    with pytest.raises(ValueError, match="not an Ed25519 did:key"):
        f.did_public(did)


def test_did_key_refuses_a_wrong_length() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        f.did_key(b"\x01" * 31)


# -- JWS -----------------------------------------------------------------------------------------


def test_jws_verifies_with_jwcrypto_and_opens_with_ours() -> None:
    signer = key(1)
    token = f.jws_make(signer, b'{"hello":"world"}', typ="vc+jwt", cty="vc")
    assert jwcrypto_payload(token, pub(signer)) == b'{"hello":"world"}'
    header, payload = f.jws_open(token, pub(signer))
    did = f.did_key(pub(signer))
    assert header == {"alg": "EdDSA", "kid": did + "#" + did[8:], "typ": "vc+jwt", "cty": "vc"}
    assert payload == b'{"hello":"world"}'
    # The header is canonical JSON: the token is a function of key and payload alone.
    raw = f.b64url_decode(token.split(".")[0])
    assert raw == f.canonical_json(json.loads(raw))
    assert token == f.jws_make(signer, b'{"hello":"world"}', typ="vc+jwt", cty="vc")


def test_jws_open_refuses_the_wrong_key_and_altered_parts() -> None:
    signer = key(1)
    token = f.jws_make(signer, b"payload", typ="x")
    head, body, sig = token.split(".")
    assert f.jws_open(token, pub(key(2))) is None
    assert f.jws_open(f"{head}.{f.b64url(b'payloaD')}.{sig}", pub(signer)) is None
    other_head = f.b64url(f.canonical_json({"alg": "EdDSA", "typ": "y"}))
    assert f.jws_open(f"{other_head}.{body}.{sig}", pub(signer)) is None
    bad_sig = f.b64url(bytes([f.b64url_decode(sig)[0] ^ 1]) + f.b64url_decode(sig)[1:])
    assert f.jws_open(f"{head}.{body}.{bad_sig}", pub(signer)) is None


def _signed(header: object, payload: bytes = b"p") -> str:
    """A token whose signature is good over whatever header we give (to test the header checks)."""
    head = f.b64url(json.dumps(header).encode()) if not isinstance(header, str) else header
    body = f.b64url(payload)
    signer = key(1)
    return f"{head}.{body}." + f.b64url(signer.sign(f"{head}.{body}".encode()).signature)


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "none"},
        {"alg": "HS256"},
        {"typ": "x"},
        ["EdDSA"],
        {"alg": "EdDSA", "crit": ["b64"], "b64": False},
        f.b64url(b'{"alg":"EdDSA","alg":"none"}'),  # a duplicate key
        f.b64url(b"\xff\xfe"),
        f.b64url(b"not json"),
    ],
)
def test_jws_open_refuses_headers_we_do_not_understand(header: object) -> None:
    assert f.jws_open(_signed(header), pub(key(1))) is None
    assert f.jws_open(_signed({"alg": "EdDSA"}), pub(key(1))) is not None


@pytest.mark.parametrize(
    "junk",
    [
        None,
        7,
        b"a.b.c",
        "",
        ".",
        "..",
        "a.b",
        "a.b.c.d",
        "a.b.c",
        "==.==.==",
        "é.é.é",
        "\x00.\x00.",
    ],
)
def test_jws_open_never_raises_on_junk(junk: object) -> None:
    assert f.jws_open(junk, pub(key(1))) is None  # type: ignore[arg-type]
    assert f.jws_open(f.jws_make(key(1), b"x", typ="t"), b"short") is None


@given(st.text(max_size=80), st.binary(max_size=40))
@settings(max_examples=80, deadline=None)
def test_jws_open_never_raises_on_random_text(text: str, public: bytes) -> None:
    assert f.jws_open(text, public) is None


def test_jws_open_never_raises_on_mutated_tokens() -> None:
    token = f.jws_make(key(3), f.canonical_json({"a": "b"}), typ="t")
    alphabet = "ABCxyz019-_.=~ é"
    rng = random.Random(19)
    for _ in range(300):
        chars = list(token)
        for _ in range(rng.randint(1, 3)):
            chars[rng.randrange(len(chars))] = rng.choice(alphabet)
        mutated = "".join(chars)
        if mutated != token:
            assert f.jws_open(mutated, pub(key(3))) is None


# -- row ids -------------------------------------------------------------------------------------

CLAIM = uuid.UUID(int=0x1234).hex
IDS = {
    "attestation": lambda m: f.attestation_id(m, CLAIM),
    "retraction": lambda m: f.retraction_id(m, CLAIM),
    "accept": lambda m: f.accept_id(m, CLAIM),
    "judgement": lambda m: f.judgement_id(m, CLAIM),
    "outcome": lambda m: f.outcome_id(m, CLAIM),
    "shared": lambda m: f.shared_id(m, "name"),
    "field": lambda m: f.field_id(m, "name"),
    "share": lambda m: f.share_id(m, "name", "ab" * 32),
    "kind": lambda m: f.kind_id(m, "name"),
    "setting": lambda m: f.setting_id(m, 1),
    "authority": lambda m: f.authority_id(m, "race", "cd" * 32),
}


def test_row_ids_are_deterministic_owned_and_distinct() -> None:
    alice, bob = pub(key(1)), pub(key(2))
    made = {name: make(alice) for name, make in IDS.items()}
    assert len(set(made.values())) == len(IDS)  # no two kinds of row share an id
    for name, make in IDS.items():
        pk = made[name]
        assert pk == make(alice)
        assert pk != make(bob)
        assert uuid.UUID(hex=pk).hex == pk  # 32 lowercase hex digits
        assert rowid.is_owned_by(pk, alice)
        assert not rowid.is_owned_by(pk, bob)


def test_row_ids_follow_what_they_are_about() -> None:
    me = pub(key(1))
    other = uuid.UUID(int=0x1235).hex
    assert f.attestation_id(me, CLAIM) == f.attestation_id(me, str(uuid.UUID(hex=CLAIM)))
    assert f.attestation_id(me, CLAIM) != f.attestation_id(me, other)
    assert f.setting_id(me, 1) != f.setting_id(me, 2)
    assert f.share_id(me, "name", "ab" * 32) != f.share_id(me, "name", "ac" * 32)
    assert f.share_id(me, "name", "AB" * 32) == f.share_id(me, "name", "ab" * 32)
    assert f.authority_id(me, "race", "cd" * 32) != f.authority_id(me, "swim", "cd" * 32)
    # Text parts are framed: ("ab", "c") and ("a", "bc") are not the same seed.
    assert f.share_id(me, "ab", "c") != f.share_id(me, "a", "bc")
    with pytest.raises(ValueError, match="hexadecimal UUID"):
        f.attestation_id(me, "not a uuid")


# -- claim digest and endorsements ---------------------------------------------------------------

ROW = {
    "kind": "race",
    "title": "Ran a marathon",
    "description": "Oslo, 3:59",
    "event_date": "2026-09-20",
    "place": "Oslo",
    "evidence": "[]",
}


def test_claim_digest_covers_the_id_and_every_content_column() -> None:
    digest = f.claim_digest(CLAIM, ROW)
    assert len(digest) == 32
    assert f.claim_digest(str(uuid.UUID(hex=CLAIM)), dict(ROW, withdrawn=True)) == digest
    assert f.claim_digest(uuid.UUID(int=0x1235).hex, ROW) != digest
    seen = {digest}
    for column in f.CLAIM_COLUMNS:
        seen.add(f.claim_digest(CLAIM, dict(ROW, **{column: ROW[column] + "x"})))
    assert len(seen) == len(f.CLAIM_COLUMNS) + 1
    # An absent column and an empty one are the same content (as a model and an op give it).
    assert f.claim_digest(CLAIM, dict(ROW, place=None)) == f.claim_digest(
        CLAIM, dict(ROW, place="")
    )


ENDORSED = {"verdict": "witnessed", "note": "I was at km 30", "kind": "race", "title": "A marathon"}


def test_endorsement_is_an_open_badges_endorsement_that_jwcrypto_verifies() -> None:
    witness, subject = key(5), pub(key(6))
    digest = f.claim_digest(CLAIM, ROW)
    token = f.endorsement_jws(witness, digest=digest, subject=subject, **ENDORSED)
    credential = json.loads(jwcrypto_payload(token, pub(witness)))
    assert credential["@context"] == [
        "https://www.w3.org/ns/credentials/v2",
        "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json",
    ]
    assert credential["type"] == ["VerifiableCredential", "EndorsementCredential"]
    assert credential["issuer"] == {"id": f.did_key(pub(witness)), "type": ["Profile"]}
    assert credential["credentialSubject"] == {
        "id": "urn:sereus:claim:" + digest.hex(),
        "type": ["EndorsementSubject"],
        "endorsementComment": "witnessed: I was at km 30",
    }
    assert f.did_key(subject) in credential["description"]
    assert "validFrom" not in credential  # no time: the columns determine it
    header = json.loads(f.b64url_decode(token.split(".")[0]))
    assert header["typ"] == "vc+jwt"
    assert header["kid"].startswith(f.did_key(pub(witness)) + "#")
    again = f.endorsement_jws(witness, digest=digest, subject=subject, **ENDORSED)
    assert again == token
    assert (
        f.endorsement_problem(
            token, digest=digest, subject=subject, witness=pub(witness), **ENDORSED
        )
        is None
    )


def test_endorsement_problem_says_what_is_wrong() -> None:
    witness, subject = key(5), pub(key(6))
    digest = f.claim_digest(CLAIM, ROW)
    token = f.endorsement_jws(witness, digest=digest, subject=subject, **ENDORSED)
    check = dict(digest=digest, subject=subject, witness=pub(witness), **ENDORSED)
    bad_signature = "the endorsement's signature does not verify"
    something_else = "the endorsement says something else than the attestation"
    assert f.endorsement_problem(token, **dict(check, witness=pub(key(7)))) == bad_signature
    for junk in ("", "a.b.c", token[:-4] + "AAAA", None):
        assert f.endorsement_problem(junk, **check) == bad_signature  # type: ignore[arg-type]
    other_digest = f.claim_digest(CLAIM, dict(ROW, title="Ran two"))
    for change in (
        {"digest": other_digest},
        {"subject": pub(key(8))},
        {"verdict": "disputed"},
        {"note": "I was not there"},
        {"kind": "swim"},
        {"title": "A half marathon"},
    ):
        assert f.endorsement_problem(token, **dict(check, **change)) == something_else
    # Signed by the witness but over another document (a modified node's endorsement).
    forged = f.jws_make(witness, f.canonical_json({"type": "Other"}), typ="vc+jwt")
    assert f.endorsement_problem(forged, **check) == something_else
    # The right document under another type of token.
    payload = f.endorsement_payload(**check)
    assert f.endorsement_problem(f.jws_make(witness, payload, typ="JWT"), **check) is not None
    assert f.endorsement_problem(f.jws_make(witness, payload, typ="vc+jwt"), **check) is None


# -- SD-JWT profile leaves and commitment --------------------------------------------------------

FIELDS = {"name": "Dana Möbius", "city": "Oslo", "birth_date": "1990-02-03"}


def profile(master: bytes = b"\x11" * 32) -> tuple[nacl.signing.SigningKey, dict[str, str], str]:
    signer = f.profile_key(master)
    leaves = {name: f.disclosure(f.salt_new(), name, value) for name, value in FIELDS.items()}
    commitment = f.commitment_make(signer, [f.disclosure_digest(leaf) for leaf in leaves.values()])
    return signer, leaves, commitment


def issuer_key(iss: str, header: dict) -> jwk.JWK:
    """sd-jwt's callback: the issuer's key from its did:key (decoded here without our code)."""
    assert iss.startswith("did:key:z")
    assert header["alg"] == "EdDSA"
    number = 0
    for char in iss[len("did:key:z") :]:
        number = number * 58 + B58.index(char)
    raw = number.to_bytes(34, "big")
    assert raw[:2] == b"\xed\x01"
    return okp(raw[2:])


def test_disclosure_is_the_sd_jwt_form() -> None:
    leaf = f.disclosure("c2FsdA", "name", "Möbius")
    assert json.loads(base64.urlsafe_b64decode(leaf + "==")) == ["c2FsdA", "name", "Möbius"]
    digest = base64.urlsafe_b64encode(hashlib.sha256(leaf.encode()).digest()).rstrip(b"=")
    assert f.disclosure_digest(leaf) == digest.decode()
    assert f.disclosure_open(leaf) == ("c2FsdA", "name", "Möbius")
    assert len(f.b64url_decode(f.salt_new())) == 16
    assert f.salt_new() != f.salt_new()


def test_disclosures_the_sd_jwt_library_issues_open_here() -> None:
    claims = {SDObj("name"): "Dana", SDObj("city"): "Oslo"}
    issued = SDJWTIssuer(claims, okp_private(), sign_alg="EdDSA")
    leaves = issued.sd_jwt_issuance.split("~")[1:-1]
    digests = issued.sd_jwt_payload["_sd"]
    opened = sorted(f.disclosure_open(leaf)[1:] for leaf in leaves)
    assert opened == [("city", "Oslo"), ("name", "Dana")]
    assert sorted(f.disclosure_digest(leaf) for leaf in leaves) == sorted(digests)


def okp_private() -> jwk.JWK:
    return jwk.JWK.generate(kty="OKP", crv="Ed25519")


@pytest.mark.parametrize(
    "junk",
    [
        "",
        "@@",
        f.b64url(b"[1,2,3]"),
        f.b64url(b'["salt","name"]'),
        f.b64url(b'["salt","name","v","w"]'),
        f.b64url(b'["salt","_sd","v"]'),
        f.b64url(b'["","name","v"]'),
        f.b64url(b'{"salt":"name"}'),
        f.b64url(b"\xff"),
        f.b64url(b'["salt","name",{"nested":1}]'),
    ],
)
def test_disclosure_open_refuses_junk(junk: str) -> None:
    assert f.disclosure_open(junk) is None


def test_presentation_verifies_with_the_sd_jwt_library() -> None:
    signer, leaves, commitment = profile()
    shown = [leaves["name"], leaves["city"]]
    presentation = commitment + "~" + "~".join(shown) + "~"
    verified = SDJWTVerifier(presentation, issuer_key).get_verified_payload()
    assert verified == {
        "iss": f.did_key(pub(signer)),
        "name": "Dana Möbius",
        "city": "Oslo",
    }  # exactly the disclosed fields: the birth date stays hidden
    alone = SDJWTVerifier(commitment + "~", issuer_key).get_verified_payload()
    assert alone == {"iss": f.did_key(pub(signer))}


def test_altering_a_disclosure_or_the_commitment_breaks_the_presentation() -> None:
    signer, leaves, commitment = profile()
    salt, name, _ = f.disclosure_open(leaves["city"])
    # Another value under the same salt and name: its digest is not in the commitment.
    altered = f.disclosure(salt, name, "Bergen")
    verified = SDJWTVerifier(commitment + "~" + altered + "~", issuer_key).get_verified_payload()
    assert "city" not in verified
    # A commitment naming another digest set, or a bit flipped: the signature fails.
    head, body, sig = commitment.split(".")
    claims = json.loads(f.b64url_decode(body))
    claims["_sd"].append(f.disclosure_digest(altered))
    forged = ".".join([head, f.b64url(f.canonical_json(claims)), sig])
    with pytest.raises(Exception, match=r"(?i)verif|signature"):
        SDJWTVerifier(forged + "~" + altered + "~", issuer_key)
    assert f.commitment_open(forged, pub(signer)) is None


def test_commitment_is_deterministic_and_opens_only_with_its_profile() -> None:
    signer, leaves, commitment = profile()
    digests = [f.disclosure_digest(leaf) for leaf in leaves.values()]
    assert f.commitment_make(signer, reversed(digests + digests[:1])) == commitment
    assert f.commitment_open(commitment, pub(signer)) == sorted(digests)
    assert f.commitment_open(commitment, pub(key(1))) is None
    # Signed by the profile key, but not a commitment.
    not_sd = f.jws_make(signer, f.canonical_json({"_sd": digests}), typ="dc+sd-jwt")
    assert f.commitment_open(not_sd, pub(signer)) is None
    wrong_typ = f.jws_make(signer, f.b64url_decode(commitment.split(".")[1]), typ="JWT")
    assert f.commitment_open(wrong_typ, pub(signer)) is None


def test_profile_key_is_derived_and_domain_separated() -> None:
    master = b"\x22" * 32
    assert pub(f.profile_key(master)) == pub(f.profile_key(master))
    assert pub(f.profile_key(master)) != pub(f.profile_key(b"\x23" * 32))
    assert pub(f.profile_key(master)) != pub(cadre_keys.party_key(master))
    with pytest.raises(ValueError, match="32 bytes"):
        f.profile_key(b"short")


def test_binding_names_one_member() -> None:
    signer = f.profile_key(b"\x33" * 32)
    alice, bob = pub(key(1)), pub(key(2))
    binding = f.binding_make(signer, alice)
    assert len(bytes.fromhex(binding)) == 64
    assert f.binding_check(pub(signer), alice, binding)
    assert not f.binding_check(pub(signer), bob, binding)
    assert not f.binding_check(pub(key(9)), alice, binding)
    for junk in ("", "zz", "00" * 64, binding[:-2]):
        assert not f.binding_check(pub(signer), alice, junk)


def shared_row(member: bytes, name: str = "city") -> dict[str, str]:
    signer, leaves, commitment = profile()
    return {
        "name": name,
        "disclosure": leaves[name],
        "commitment": commitment,
        "profile": pub(signer).hex(),
        "binding": f.binding_make(signer, member),
    }


def test_shared_problem_accepts_a_proven_field_and_says_what_is_wrong() -> None:
    alice, bob = pub(key(1)), pub(key(2))
    row = shared_row(alice)
    assert f.shared_problem(row, alice) is None
    # Bob copies Alice's shared field as his own: the binding names Alice.
    assert f.shared_problem(row, bob) == "the profile is not bound to the member who shares it"
    other_signer, other_leaves, other_commitment = profile(b"\x44" * 32)
    cases = {
        "the shared field does not name a profile key": [{"profile": "zz"}, {"profile": ""}],
        "the profile's commitment does not verify with its key": [
            {"commitment": other_commitment},
            {"profile": pub(other_signer).hex()},
            {"commitment": ""},
        ],
        "the shared field's value is not in the form of a profile leaf": [{"disclosure": "@"}],
        "the shared field is not part of the profile's commitment": [
            {"disclosure": other_leaves["city"]},
            {"disclosure": f.disclosure("salt", "city", "Bergen")},
        ],
        "the shared field's name is not the one its proof names": [{"name": "name"}],
        "the profile is not bound to the member who shares it": [{"binding": "00" * 64}],
    }
    for words, changes in cases.items():
        for change in changes:
            assert f.shared_problem(dict(row, **change), alice) == words, change
    assert f.shared_problem({}, alice) == "the shared field does not name a profile key"
    assert f.shared_problem({"profile": 5, "commitment": 3}, alice) is not None
