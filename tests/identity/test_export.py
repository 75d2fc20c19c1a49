"""A verified achievement exported as an Open Badges 3.0 credential (ADR 26), checked with
jwcrypto alone: the key comes from the credential's own did:key, decoded here by hand, and
altering one field of the credential breaks it. The club's members attest from their own nodes
(``support.Member``), so the endorsements the export carries are the ones the rules accepted."""

from __future__ import annotations

import base64
import datetime
import hashlib
import io
import json
import uuid

import pytest
from jwcrypto import jwk, jws
from jwcrypto.common import JWException

from apps.core import blobs
from apps.identity import export, formats
from apps.identity.models import Accept, Claim
from tests.identity.support import Club, owner_write

B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
SEAL = "5e" * 32  # the photo's sealing key: it must never leave the thread
FILES = [
    {"name": "finish.jpg", "mime": "image/jpeg", "size": 1234, "key": SEAL, "chunks": "ab" * 32}
]


def did_to_jwk(did: str) -> jwk.JWK:
    """An Ed25519 JWK from a did:key, without our code: base58btc, multicodec 0xed 0x01."""
    assert did.startswith("did:key:z")
    number = 0
    for char in did.split("#")[0][len("did:key:z") :]:
        number = number * 58 + B58.index(char)
    raw = number.to_bytes(34, "big")
    assert raw[:2] == b"\xed\x01"
    return jwk.JWK(
        kty="OKP", crv="Ed25519", x=base64.urlsafe_b64encode(raw[2:]).decode().rstrip("=")
    )


def verified(token: str, did: str) -> tuple[dict, dict]:
    """Header and payload of a compact JWS as jwcrypto verifies it with ``did``'s key."""
    parsed = jws.JWS()
    parsed.deserialize(token)
    parsed.verify(did_to_jwk(did), alg="EdDSA")
    return parsed.jose_header, json.loads(parsed.payload)


def my_claim(club: Club, title: str = "Ran a marathon", **cols: object) -> str:
    cols.setdefault("evidence", "[]")
    made = owner_write(club.thread, lambda: Claim.objects.create(kind="race", title=title, **cols))
    club.sync()
    return made.pk.hex


def witnessed(club: Club, claim: str, *names: str) -> None:
    for name in names:
        club.by_name(name).attest(claim, note=f"{name} saw it")
    club.sync()


def sealed_photo(club: Club, content: bytes) -> dict:
    """A file sealed as a blob of the club, described as a claim's evidence describes it."""
    sealed = blobs.seal(club.thread.thread, io.BytesIO(content), limit=1 << 20)
    return {
        "name": "medal.png",
        "mime": "image/png",
        "size": sealed.size,
        "key": sealed.key.hex(),
        "chunks": b"".join(sealed.chunks).hex(),
    }


def test_a_verified_claim_exports_as_a_credential_jwcrypto_verifies(club: Club) -> None:
    photo = b"\x89PNG\r\n\x1a\n a medal" * 100
    medal = sealed_photo(club, photo)
    claim = my_claim(
        club,
        description="Oslo marathon, 3:59",
        event_date="2026-09-20",
        place="Oslo",
        evidence=json.dumps([*FILES, medal]),
    )
    witnessed(club, claim, "Eli", "Fay")
    out = export.claim_credential(thread=club.thread, claim=claim)
    me = formats.did_key(bytes.fromhex(club.me))
    header, payload = verified(out["jwt"], me)
    assert header["typ"] == "vc+jwt"
    assert header["cty"] == "vc"
    assert header["alg"] == "EdDSA"
    assert payload == out["credential"]
    assert payload["@context"] == [
        "https://www.w3.org/ns/credentials/v2",
        "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json",
    ]
    assert payload["type"] == ["VerifiableCredential", "OpenBadgeCredential"]
    assert payload["issuer"]["id"] == me
    assert payload["validFrom"] == "2026-09-20T00:00:00Z"
    subject = payload["credentialSubject"]
    assert subject["id"] == me
    assert subject["type"] == ["AchievementSubject"]
    achievement = subject["achievement"]
    assert achievement["name"] == "Ran a marathon"
    assert achievement["description"] == "Oslo marathon, 3:59"
    assert "2 members witnessed it" in achievement["criteria"]["narrative"]
    # The evidence names the photos; their sealing keys stay in the thread. The one whose blob
    # is here is named by its content's SHA-256 (RFC 6920), so a verifier shown it can check it.
    content_id = "ni:///sha-256;" + formats.b64url(hashlib.sha256(photo).digest())
    assert payload["evidence"] == [
        {
            "type": ["Evidence"],
            "name": "finish.jpg",
            "genre": "image/jpeg",
            "description": "1234 bytes, kept in the thread",
        },
        {
            "type": ["Evidence"],
            "id": content_id,
            "name": "medal.png",
            "genre": "image/png",
            "description": f"{len(photo)} bytes, kept in the thread",
        },
    ]
    for secret in (SEAL, "ab" * 32, medal["key"], medal["chunks"]):
        assert secret not in json.dumps(out)
    # Each endorsement is the witness's own signature over this achievement.
    assert payload["endorsementJwt"] == out["endorsements"]
    issuers = set()
    for token in out["endorsements"]:
        unverified = jws.JWS()
        unverified.deserialize(token)
        did = unverified.jose_header["kid"].split("#")[0]
        _head, endorsement = verified(token, did)
        assert endorsement["issuer"]["id"] == did
        assert endorsement["credentialSubject"]["id"] == achievement["id"]
        assert endorsement["type"] == ["VerifiableCredential", "EndorsementCredential"]
        issuers.add(did)
    assert issuers == {formats.did_key(club.eli.me), formats.did_key(club.fay.me)}


def test_altering_one_field_breaks_the_credential(club: Club) -> None:
    claim = my_claim(club)
    witnessed(club, claim, "Eli", "Fay")
    token = export.claim_credential(thread=club.thread, claim=claim)["jwt"]
    me = formats.did_key(bytes.fromhex(club.me))
    head, body, sig = token.split(".")
    for change in (
        {"name": "Ran two marathons"},
        {"validFrom": "2020-01-01T00:00:00Z"},
        {"issuer": {"id": formats.did_key(club.eli.me), "type": ["Profile"]}},
    ):
        credential = dict(json.loads(formats.b64url_decode(body)), **change)
        forged = ".".join([head, formats.b64url(formats.canonical_json(credential)), sig])
        with pytest.raises(JWException):
            verified(forged, me)
    # The same document signed by a witness is not the subject's credential.
    other = formats.jws_make(club.eli.key, formats.b64url_decode(body), typ="vc+jwt", cty="vc")
    with pytest.raises(JWException):
        verified(other, me)


def test_the_export_is_the_same_each_time(club: Club) -> None:
    claim = my_claim(club)
    witnessed(club, claim, "Eli", "Fay")
    first = export.claim_credential(thread=club.thread, claim=claim)
    assert export.claim_credential(thread=club.thread, claim=claim) == first
    # No event date: valid from when the claim was made (its id's clock), a whole second.
    made_ms = int.from_bytes(uuid.UUID(hex=claim).bytes[:6], "big")
    made = datetime.datetime.fromtimestamp(made_ms // 1000, tz=datetime.UTC)
    assert first["credential"]["validFrom"] == made.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_only_a_verified_claim_exports(club: Club) -> None:
    claim = my_claim(club)
    with pytest.raises(export.ExportError, match="has 0 of the 2 witnesses") as caught:
        export.claim_credential(thread=club.thread, claim=claim)
    assert caught.value.code == "conflict"
    witnessed(club, claim, "Eli")
    with pytest.raises(export.ExportError, match="has 1 of the 2 witnesses"):
        export.claim_credential(thread=club.thread, claim=claim)
    # A dispute does not count either.
    club.fay.attest(claim, verdict="disputed", note="I did not see it")
    club.sync()
    with pytest.raises(export.ExportError, match="has 1 of the 2 witnesses"):
        export.claim_credential(thread=club.thread, claim=claim)


def test_a_retracted_attestation_leaves_the_claim_unexportable(club: Club) -> None:
    claim = my_claim(club)
    witnessed(club, claim, "Eli", "Fay")
    assert len(export.claim_credential(thread=club.thread, claim=claim)["endorsements"]) == 2
    club.eli.retract(formats.attestation_id(club.eli.me, claim), reason="wrong race")
    club.sync()
    with pytest.raises(export.ExportError, match="has 1 of the 2 witnesses"):
        export.claim_credential(thread=club.thread, claim=claim)


def test_a_withdrawn_claim_does_not_export(club: Club) -> None:
    claim = my_claim(club)
    witnessed(club, claim, "Eli", "Fay")
    owner_write(
        club.thread,
        lambda: Claim.objects.filter(pk=uuid.UUID(hex=claim)).update(withdrawn=True),
    )
    club.sync()
    with pytest.raises(export.ExportError, match="you withdrew") as caught:
        export.claim_credential(thread=club.thread, claim=claim)
    assert caught.value.code == "conflict"


def test_a_trusted_authority_alone_verifies_and_its_endorsement_is_carried(club: Club) -> None:
    club.dana.authority_add("race", club.eli.member)
    club.sync()
    claim = my_claim(club)
    witnessed(club, claim, "Eli")
    out = export.claim_credential(thread=club.thread, claim=claim)
    assert len(out["endorsements"]) == 1
    narrative = out["credential"]["credentialSubject"]["achievement"]["criteria"]["narrative"]
    assert "trusts for achievements of kind race" in narrative
    _head, endorsement = verified(out["endorsements"][0], formats.did_key(club.eli.me))
    assert endorsement["issuer"]["id"] == formats.did_key(club.eli.me)


def test_only_the_subject_can_export(club: Club) -> None:
    claim = club.dana.claim("Climbed the north face")
    club.sync()
    witnessed(club, claim, "Eli", "Fay")
    with pytest.raises(export.ExportError, match="only the person who claimed") as caught:
        export.claim_credential(thread=club.thread, claim=claim)
    assert caught.value.code == "forbidden"


@pytest.mark.parametrize("claim", ["not-a-claim", uuid.UUID(int=7).hex, ""])
def test_an_unknown_claim_is_not_found_in_words(club: Club, claim: str) -> None:
    with pytest.raises(export.ExportError, match="no such achievement") as caught:
        export.claim_credential(thread=club.thread, claim=claim)
    assert caught.value.code == "not_found"


def test_an_overturned_claim_does_not_export(club: Club) -> None:
    claim = my_claim(club)
    witnessed(club, claim, "Eli", "Fay")
    assert export.claim_credential(thread=club.thread, claim=claim)["credential"]
    # Gus challenges it; Dana (neither side nor a witness) judges; Alice accepts; Gus wins.
    challenge = club.gus.challenge(defendant=club.me, claim=claim, judges=[club.dana.member])
    club.sync()
    accept = uuid.UUID(hex=formats.accept_id(bytes.fromhex(club.me), challenge))
    owner_write(
        club.thread,
        lambda: Accept.objects.create(pk=accept, challenge=uuid.UUID(hex=challenge)),
    )
    club.sync()
    club.dana.judge(challenge, "challenger", note="Not on the results list")
    club.sync()
    club.gus.outcome(challenge, "challenger")
    club.sync()
    with pytest.raises(export.ExportError, match="a challenge overturned") as caught:
        export.claim_credential(thread=club.thread, claim=claim)
    assert caught.value.code == "conflict"


def test_a_flagged_witness_endorsement_is_left_out(club: Club) -> None:
    club.dana.settings_set(1, witnesses=2, flag_after=1)
    club.sync()
    # Eli takes back a word on another claim: one strike flags Eli.
    other = club.dana.claim("Climbed the north face")
    club.sync()
    club.eli.attest(other)
    club.sync()
    club.eli.retract(formats.attestation_id(club.eli.me, other), reason="I was not there")
    club.sync()
    claim = my_claim(club)
    witnessed(club, claim, "Eli", "Fay")
    with pytest.raises(export.ExportError, match="has 1 of the 2 witnesses"):
        export.claim_credential(thread=club.thread, claim=claim)
    witnessed(club, claim, "Gus")
    out = export.claim_credential(thread=club.thread, claim=claim)
    signers = set()
    for token in out["endorsements"]:
        parsed = jws.JWS()
        parsed.deserialize(token)
        signers.add(parsed.jose_header["kid"].split("#")[0])
    assert signers == {formats.did_key(club.fay.me), formats.did_key(club.gus.me)}
