"""The identity app's formats (ADR 26): deterministic row ids, did:key, compact JWS, the claim
digest, the witnesses' endorsements (Open Badges 3.0) and the profile's SD-JWT leaves and
commitment.

Everything here is pure (no clock, no randomness but ``salt_new``, no settings, no database),
because the rules call it on every replica and must decide alike. Nothing imports Django.

Outside verifiers must accept what this module signs, so the shapes follow the public specs
rather than the project's own CBOR framing:

- JWS compact serialization (RFC 7515) with EdDSA over Ed25519 (RFC 8037); the protected header
  is canonical JSON (RFC 8785) so a token is a function of its key and payload alone.
- did:key for Ed25519: ``did:key:z`` + base58btc(multicodec 0xed 0x01 + public key).
- SD-JWT (IETF): a disclosure is base64url of the JSON array ``[salt, name, value]`` as UTF-8,
  its digest the base64url SHA-256 of the disclosure's ASCII text.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import os
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import base58
import nacl.exceptions
import nacl.signing
import rfc8785

from apps.core.thread import codec, crypto, rowid

# -- deterministic row ids -----------------------------------------------------------------------


def _uuid_bytes(hex_id: str) -> bytes:
    """A row id given as 32 hex digits (or a dashed UUID) as its 16 bytes; ValueError if not."""
    return uuid.UUID(str(hex_id)).bytes


def _row(author: bytes, seed: bytes) -> str:
    return rowid.row_id_for(author, seed).hex


def attestation_id(witness: bytes, claim: str) -> str:
    """One attestation per witness and claim."""
    return _row(witness, b"identity-attest" + _uuid_bytes(claim))


def retraction_id(witness: bytes, attestation: str) -> str:
    """One retraction per attestation."""
    return _row(witness, b"identity-retract" + _uuid_bytes(attestation))


def accept_id(defendant: bytes, challenge: str) -> str:
    return _row(defendant, b"identity-accept" + _uuid_bytes(challenge))


def judgement_id(judge: bytes, challenge: str) -> str:
    return _row(judge, b"identity-judge" + _uuid_bytes(challenge))


def outcome_id(author: bytes, challenge: str) -> str:
    return _row(author, b"identity-outcome" + _uuid_bytes(challenge))


def shared_id(member: bytes, name: str) -> str:
    """One shared copy per member and field name in a thread."""
    return _row(member, b"identity-shared" + codec.encode(name))


def field_id(owner: bytes, name: str) -> str:
    """A profile field: one row per field name (a new value updates it)."""
    return _row(owner, b"identity-field" + codec.encode(name))


def share_id(owner: bytes, name: str, thread_hex: str) -> str:
    return _row(owner, b"identity-share" + codec.encode([name, thread_hex.lower()]))


def kind_id(manager: bytes, slug: str) -> str:
    return _row(manager, b"identity-kind" + codec.encode(slug))


def setting_id(manager: bytes, seq: int) -> str:
    return _row(manager, b"identity-setting" + codec.encode(int(seq)))


def authority_id(manager: bytes, kind: str, member_hex: str) -> str:
    return _row(manager, b"identity-authority" + codec.encode([kind, member_hex.lower()]))


# -- base64url, canonical JSON, did:key ----------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """The bytes of unpadded base64url text. Refuses padding, other alphabets and non-canonical
    trailing bits (so one value has one text, as a signature over the text expects)."""
    if not isinstance(text, str) or len(text) % 4 == 1 or "=" in text:
        raise ValueError("not base64url text")
    try:
        raw = text.encode("ascii")
        data = base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise ValueError("not base64url text") from exc
    if b64url(data) != text:  # characters outside the alphabet are dropped by the decoder
        raise ValueError("not base64url text")
    return data


def canonical_json(value: Any) -> bytes:
    """RFC 8785 (JCS): the one byte string a JSON value signs as."""
    return rfc8785.dumps(value)


def _json_load(data: bytes) -> Any:
    """Strict JSON: UTF-8, no duplicate keys (a verifier that kept the other one would read a
    different document than the one we checked)."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise ValueError("duplicate key")
            out[key] = value
        return out

    return json.loads(data.decode("utf-8"), object_pairs_hook=pairs)


_ED25519_CODEC = b"\xed\x01"  # multicodec ed25519-pub, as an unsigned varint
_DID_KEY = "did:key:"


def did_key(public: bytes) -> str:
    """The did:key of an Ed25519 key."""
    if len(public) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return _did_key(bytes(public))


@functools.lru_cache(maxsize=4096)
def _did_key(public: bytes) -> str:
    # Remembered: base58 is a third of checking an endorsement, and a thread's rules meet the
    # same few member keys over and over (a pure function, so the cache changes no decision).
    return _DID_KEY + "z" + base58.b58encode(_ED25519_CODEC + public).decode("ascii")


def did_public(did: str) -> bytes:
    """The Ed25519 key a did:key names; ValueError for anything else."""
    if not isinstance(did, str) or not did.startswith(_DID_KEY + "z"):
        raise ValueError("not an Ed25519 did:key")
    try:
        raw = base58.b58decode(did[len(_DID_KEY) + 1 :])
    except ValueError as exc:
        raise ValueError("not an Ed25519 did:key") from exc
    if len(raw) != 34 or raw[:2] != _ED25519_CODEC or did_key(raw[2:]) != did:
        raise ValueError("not an Ed25519 did:key")
    return raw[2:]


def _kid(public: bytes) -> str:
    did = did_key(public)
    return did + "#" + did[len(_DID_KEY) :]


# -- compact JWS (EdDSA) -------------------------------------------------------------------------


def jws_make(
    key: nacl.signing.SigningKey, payload: bytes, *, typ: str, cty: str | None = None
) -> str:
    """A compact JWS of ``payload`` by ``key``; the header names the key as a did:key URL."""
    header: dict[str, str] = {"alg": "EdDSA", "kid": _kid(bytes(key.verify_key)), "typ": typ}
    if cty is not None:
        header["cty"] = cty
    signing_input = b64url(canonical_json(header)) + "." + b64url(payload)
    signature = key.sign(signing_input.encode("ascii")).signature
    return signing_input + "." + b64url(signature)


def jws_open(token: str, public: bytes) -> tuple[dict, bytes] | None:
    """The header and payload of a compact JWS whose EdDSA signature verifies with ``public``;
    None for anything else (junk never raises: rules call this on what members send)."""
    try:
        if not isinstance(token, str):
            return None
        parts = token.split(".")
        if len(parts) != 3:
            return None
        header = _json_load(b64url_decode(parts[0]))
        payload = b64url_decode(parts[1])
        signature = b64url_decode(parts[2])
        # "crit" names extensions a verifier must understand; we understand none.
        if not isinstance(header, dict) or header.get("alg") != "EdDSA" or "crit" in header:
            return None
        verify = nacl.signing.VerifyKey(bytes(public))
        verify.verify((parts[0] + "." + parts[1]).encode("ascii"), signature)
        return header, payload
    except (ValueError, TypeError, nacl.exceptions.CryptoError):
        return None


# -- claims and endorsements ---------------------------------------------------------------------

CLAIM_COLUMNS = ("kind", "title", "description", "event_date", "place", "evidence")
_CLAIM_PERSON = b"sereus-claim"
VC_CONTEXT = "https://www.w3.org/ns/credentials/v2"
OB_CONTEXT = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"
VERDICTS = ("witnessed", "disputed")


def _plain(value: Any) -> Any:
    """A column's value as it signs: text as is, absent as empty text, others as text (so a
    value read from a model and the same read from an op digest alike)."""
    if value is None:
        return ""
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return value
    return str(value)


def claim_digest(pk: str, row: Mapping[str, Any]) -> bytes:
    """BLAKE2b-256 of canonical CBOR of the claim's id and content, domain-separated: what
    witnesses sign. Withdrawal is not content (a withdrawn claim keeps its digest)."""
    content = [_plain(row.get(column)) for column in CLAIM_COLUMNS]
    body = ["identity-claim/v1", uuid.UUID(str(pk)).hex, content]
    return hashlib.blake2b(codec.encode(body), digest_size=32, person=_CLAIM_PERSON).digest()


def claim_urn(digest: bytes) -> str:
    return "urn:sereus:claim:" + bytes(digest).hex()


def _digest_bytes(digest: bytes | str) -> bytes:
    return bytes.fromhex(digest) if isinstance(digest, str) else bytes(digest)


def endorsement_payload(
    *,
    digest: bytes,
    subject: bytes,
    witness: bytes,
    verdict: str,
    note: str,
    kind: str,
    title: str,
) -> bytes:
    """The Open Badges 3.0 EndorsementCredential a witness signs (VC 2.0 data model). It names
    the claim by its digest and carries no time, so the columns of the attestation determine it
    byte for byte and every replica can check the signed payload against them."""
    comment = f"{verdict}: {note}" if note else verdict
    credential = {
        "@context": [VC_CONTEXT, OB_CONTEXT],
        "type": ["VerifiableCredential", "EndorsementCredential"],
        "issuer": {"id": did_key(witness), "type": ["Profile"]},
        "name": f"{verdict.capitalize()}: {title}",
        "description": f"An endorsement of {did_key(subject)}'s claim of kind {kind}: {title}",
        "credentialSubject": {
            "id": claim_urn(_digest_bytes(digest)),
            "type": ["EndorsementSubject"],
            "endorsementComment": comment,
        },
    }
    return canonical_json(credential)


ENDORSEMENT_TYP = "vc+jwt"


def endorsement_jws(
    key: nacl.signing.SigningKey,
    *,
    digest: bytes,
    subject: bytes,
    verdict: str,
    note: str,
    kind: str,
    title: str,
) -> str:
    payload = endorsement_payload(
        digest=digest,
        subject=subject,
        witness=bytes(key.verify_key),
        verdict=verdict,
        note=note,
        kind=kind,
        title=title,
    )
    return jws_make(key, payload, typ=ENDORSEMENT_TYP, cty="vc")


def endorsement_problem(
    jws: str,
    *,
    digest: bytes,
    subject: bytes,
    witness: bytes,
    verdict: str,
    note: str,
    kind: str,
    title: str,
) -> str | None:
    """None when ``jws`` is ``witness``'s endorsement and says exactly what the attestation's
    columns say; otherwise why not, in words."""
    opened = jws_open(jws, witness)
    if opened is None:
        return "the endorsement's signature does not verify"
    header, payload = opened
    try:
        expected = endorsement_payload(
            digest=digest,
            subject=subject,
            witness=witness,
            verdict=verdict,
            note=note,
            kind=kind,
            title=title,
        )
    except (ValueError, TypeError):
        return "the endorsement says something else than the attestation"
    if header.get("typ") != ENDORSEMENT_TYP or header.get("kid") != _kid(witness):
        return "the endorsement is not in the form of an endorsement"
    if payload != expected:
        return "the endorsement says something else than the attestation"
    return None


# -- profile leaves and commitment (SD-JWT) ------------------------------------------------------

SD_ALG = "sha-256"
COMMITMENT_TYP = "dc+sd-jwt"
_PROFILE_INFO = b"sereus/identity/v1/profile"
_BINDING_TAG = "identity-profile-binding"
_NO_THREAD = b"\x00" * 32  # the binding is about a member key, which already names its thread


def salt_new() -> str:
    """A fresh salt: base64url of 16 random bytes (the only impure function here)."""
    return b64url(os.urandom(16))


def disclosure(salt: str, name: str, value: str) -> str:
    """A field's leaf: base64url of the UTF-8 JSON array [salt, name, value]."""
    text = json.dumps([salt, name, value], ensure_ascii=False, separators=(",", ":"))
    return b64url(text.encode("utf-8"))


def disclosure_open(text: str) -> tuple[str, str, str] | None:
    """(salt, name, value) of a leaf, or None if it is not one (never raises)."""
    try:
        items = _json_load(b64url_decode(text))
    except (ValueError, TypeError, UnicodeDecodeError):
        return None
    if not isinstance(items, list) or len(items) != 3:
        return None
    if not all(isinstance(item, str) for item in items):
        return None
    salt, name, value = items
    if not salt or not name or name in ("_sd", "...", "_sd_alg"):
        return None
    return salt, name, value


def disclosure_digest(text: str) -> str:
    return b64url(hashlib.sha256(text.encode("ascii")).digest())


def profile_key(master_secret: bytes) -> nacl.signing.SigningKey:
    """The profile key: every device of the party derives the same one from the master secret
    (HKDF with the identity app's own label, as the cadre and storage derive theirs)."""
    if len(master_secret) != 32:
        raise ValueError("the master secret is 32 bytes")
    return nacl.signing.SigningKey(crypto.hkdf(master_secret, info=_PROFILE_INFO))


def commitment_make(key: nacl.signing.SigningKey, digests: Iterable[str]) -> str:
    """The SD-JWT issuer-signed JWT over every leaf's digest: deterministic (no time, the digests
    sorted and each once), so every device of the party makes the same commitment."""
    payload = {
        "iss": did_key(bytes(key.verify_key)),
        "_sd_alg": SD_ALG,
        "_sd": sorted(set(digests)),
    }
    return jws_make(key, canonical_json(payload), typ=COMMITMENT_TYP)


def commitment_open(jwt: str, profile: bytes) -> list[str] | None:
    """The leaf digests of a commitment signed by ``profile``; None if it is not one."""
    opened = jws_open(jwt, profile)
    if opened is None:
        return None
    header, payload = opened
    try:
        claims = _json_load(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    if header.get("typ") != COMMITMENT_TYP or not isinstance(claims, dict):
        return None
    if claims.get("iss") != did_key(profile) or claims.get("_sd_alg") != SD_ALG:
        return None
    digests = claims.get("_sd")
    if not isinstance(digests, list) or not all(isinstance(d, str) for d in digests):
        return None
    return digests


def binding_make(key: nacl.signing.SigningKey, member: bytes) -> str:
    """The profile key's signature over a member key: this member may show this profile."""
    return crypto.sign(key, _BINDING_TAG, _NO_THREAD, bytes(member)).hex()


def binding_check(profile: bytes, member: bytes, binding_hex: str) -> bool:
    try:
        signature = bytes.fromhex(binding_hex)
        crypto.verify(bytes(profile), signature, _BINDING_TAG, _NO_THREAD, bytes(member))
    except (ValueError, TypeError, nacl.exceptions.CryptoError):
        return False
    return True


def shared_problem(row: Mapping[str, Any], member: bytes) -> str | None:
    """Why a shared field row (name, disclosure, commitment, profile, binding) is not a proven
    field of ``member``'s profile, in words; None when it is."""
    try:
        profile = bytes.fromhex(str(row.get("profile") or ""))
    except ValueError:
        profile = b""
    if len(profile) != 32:
        return "the shared field does not name a profile key"
    digests = commitment_open(str(row.get("commitment") or ""), profile)
    if digests is None:
        return "the profile's commitment does not verify with its key"
    leaf = str(row.get("disclosure") or "")
    opened = disclosure_open(leaf)
    if opened is None:
        return "the shared field's value is not in the form of a profile leaf"
    if disclosure_digest(leaf) not in digests:
        return "the shared field is not part of the profile's commitment"
    if opened[1] != row.get("name"):
        return "the shared field's name is not the one its proof names"
    if not binding_check(profile, member, str(row.get("binding") or "")):
        return "the profile is not bound to the member who shares it"
    return None
