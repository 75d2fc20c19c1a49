"""A verified achievement exported as an Open Badges 3.0 ``OpenBadgeCredential`` (ADR 26).

The credential follows the W3C VC 2.0 data model with the Open Badges 3.0 context, names its
subject and issuer by the subject's member key in the thread as a did:key, and is secured as a
compact JWS (``typ: vc+jwt``, ``cty: vc``, EdDSA) over its canonical JSON, signed by that key.
It carries the counting witnesses' endorsements as ``endorsementJwt``: the very JWS each witness
signed when attesting (the rules checked each against the attestation's columns), so anyone
with a JOSE library can check the credential and each endorsement without this node.

Only the subject's node can issue (it alone holds the subject's member key), and only for a
claim every replica of the thread holds verified. Nothing here writes to the thread.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
import uuid
from typing import Any

from apps.core import blobs
from apps.core.models import Thread
from apps.core.thread import rowid
from apps.core.threads.app_kit import app_enabled, member_key
from apps.core.threads.registry import thread_database
from apps.core.threads.services import ThreadServiceError
from apps.identity import formats, policy, standing
from apps.identity.models import Attestation, Claim

CREDENTIAL_TYP = "vc+jwt"
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class ExportError(ThreadServiceError):
    """Why a credential cannot be exported, in words; ``code`` for the API (invalid, forbidden,
    conflict, not_found, not_enabled), as the identity services answer."""


def _claim_row(alias: str, claim: str) -> Claim:
    try:
        pk = uuid.UUID(str(claim))
    except ValueError:
        raise ExportError("not_found", "there is no such achievement in this thread") from None
    found = Claim.objects.using(alias).filter(pk=pk).first()
    if found is None:
        raise ExportError("not_found", "there is no such achievement in this thread")
    return found


def _not_verified(state: standing.ClaimState | None) -> str:
    if state is None:
        return "this achievement cannot be exported: its state is not known here yet"
    if state.state == standing.WITHDRAWN:
        return "you withdrew this achievement, so it cannot be exported"
    if state.state == standing.OVERTURNED:
        return "a challenge overturned this achievement, so it cannot be exported"
    have = len(state.witnesses)
    return (
        "only a verified achievement can be exported: this one has "
        f"{have} of the {state.needed} witnesses it needs"
    )


def _valid_from(row: Claim) -> str:
    """The event's date when the claim gives one, else when the claim was made (the first six
    bytes of its id are the maker's clock in milliseconds): the same on every export."""
    if _DATE.fullmatch(row.event_date or ""):
        try:
            datetime.date.fromisoformat(row.event_date)
            return row.event_date + "T00:00:00Z"
        except ValueError:
            pass
    millis = int.from_bytes(row.pk.bytes[:6], "big")
    made = datetime.datetime.fromtimestamp(millis // 1000, tz=datetime.UTC)
    return made.strftime("%Y-%m-%dT%H:%M:%SZ")


def _content_id(thread: bytes, item: dict[str, Any]) -> str | None:
    """A file's content as an RFC 6920 ``ni:///sha-256;...`` URI (so whoever is shown the photo
    can check it is the one the credential names), or None if its blob is not all here."""
    try:
        key = bytes.fromhex(item["key"])
        raw = bytes.fromhex(item["chunks"])
        chunks = [raw[at : at + blobs.HASH] for at in range(0, len(raw), blobs.HASH)]
        content = hashlib.sha256()
        for block in blobs.open_blob(thread, key, chunks):
            content.update(block)
    except (KeyError, TypeError, ValueError):  # blobs.BlobError (and Missing) are ValueErrors
        return None
    return "ni:///sha-256;" + formats.b64url(content.digest())


def _evidence(thread: bytes, row: Claim) -> list[dict[str, Any]]:
    """The claim's files by content hash, name, type and size. Their sealing keys and chunks
    stay in the thread: a credential shown to anyone must not open the thread's blobs."""
    try:
        files = json.loads(row.evidence or "[]")
    except ValueError:
        files = []
    found: list[dict[str, Any]] = []
    for item in files if isinstance(files, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        entry: dict[str, Any] = {"type": ["Evidence"], "name": item["name"]}
        content = _content_id(thread, item)
        if content is not None:
            entry["id"] = content
        if isinstance(item.get("mime"), str) and item["mime"]:
            entry["genre"] = item["mime"]
        if isinstance(item.get("size"), int) and not isinstance(item["size"], bool):
            entry["description"] = f"{item['size']} bytes, kept in the thread"
        found.append(entry)
    return found


def _endorsements(alias: str, row: Claim, state: standing.ClaimState, digest: bytes) -> list[str]:
    """The endorsements of the witnesses that count (and of the trusted authority), each checked
    again here against the claim as it stands, so an export never carries one that would not
    verify."""
    claim = row.pk.hex
    subject = bytes.fromhex(state.subject)
    members = list(
        dict.fromkeys([*state.witnesses, *([state.authority] if state.authority else [])])
    )
    tokens: list[str] = []
    for member in members:
        witness = bytes.fromhex(member)
        pk = uuid.UUID(hex=formats.attestation_id(witness, claim))
        found = Attestation.objects.using(alias).filter(pk=pk, verdict="witnessed").first()
        if found is None:
            continue
        problem = formats.endorsement_problem(
            found.jws,
            digest=digest,
            subject=subject,
            witness=witness,
            verdict=found.verdict,
            note=found.note,
            kind=row.kind,
            title=row.title,
        )
        if problem is None:
            tokens.append(found.jws)
    return tokens


def _criteria(state: standing.ClaimState, kind: str) -> str:
    if state.authority is not None and len(state.witnesses) < state.needed:
        return (
            "Verified in a Sereus thread by a member the thread trusts for achievements of "
            f"kind {kind}"
        )
    return (
        f"Verified in a Sereus thread: {len(state.witnesses)} members witnessed it "
        f"({state.needed} needed), none of them flagged"
    )


def credential_body(
    thread: bytes, row: Claim, state: standing.ClaimState, did: str, endorsements: list[str]
) -> dict[str, Any]:
    """The OpenBadgeCredential (VC 2.0 data model) for a claim and its state."""
    digest = formats.claim_digest(row.pk.hex, {c: getattr(row, c) for c in formats.CLAIM_COLUMNS})
    achievement: dict[str, Any] = {
        "id": formats.claim_urn(digest),
        "type": ["Achievement"],
        "name": row.title,
        "description": row.description or row.title,
        "criteria": {"narrative": _criteria(state, row.kind)},
        "tag": [row.kind],
    }
    subject: dict[str, Any] = {
        "id": did,
        "type": ["AchievementSubject"],
        "achievement": achievement,
    }
    if row.place:
        subject["narrative"] = f"At {row.place}"
    credential: dict[str, Any] = {
        "@context": [formats.VC_CONTEXT, formats.OB_CONTEXT],
        "id": "urn:uuid:" + str(row.pk),
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "issuer": {"id": did, "type": ["Profile"]},
        "name": row.title,
        "validFrom": _valid_from(row),
        "credentialSubject": subject,
    }
    evidence = _evidence(thread, row)
    if evidence:
        credential["evidence"] = evidence
    if endorsements:
        credential["endorsementJwt"] = endorsements
    return credential


def claim_credential(*, thread: Thread, claim: str) -> dict[str, Any]:
    """``{"credential", "jwt", "endorsements"}`` for a verified claim of this node's member."""
    if not app_enabled(thread, policy.APP):
        raise ExportError("not_enabled", f"achievements are not kept in {thread.name}")
    alias = thread_database(thread.thread).alias
    row = _claim_row(alias, claim)
    me = bytes.fromhex(thread.member_id)
    if not rowid.is_owned_by(row.pk.hex, me):
        raise ExportError(
            "forbidden", "only the person who claimed an achievement can export it as theirs"
        )
    state = standing.claim_states(alias, [row.pk.hex]).get(row.pk.hex)
    if state is None or state.state != standing.VERIFIED:
        raise ExportError("conflict", _not_verified(state))
    try:
        key = member_key(thread)
    except ThreadServiceError as exc:
        raise ExportError(exc.code, str(exc)) from exc
    if bytes(key.verify_key) != me:
        raise ExportError("forbidden", "this node does not hold your key in this thread")
    digest = formats.claim_digest(row.pk.hex, {c: getattr(row, c) for c in formats.CLAIM_COLUMNS})
    endorsements = _endorsements(alias, row, state, digest)
    credential = credential_body(thread.thread, row, state, formats.did_key(me), endorsements)
    token = formats.jws_make(key, formats.canonical_json(credential), typ=CREDENTIAL_TYP, cty="vc")
    return {"credential": credential, "jwt": token, "endorsements": endorsements}
