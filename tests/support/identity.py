"""Identity between real nodes (issue 19): the API calls the integration test and the benchmark
make (a claim with a photo as multipart, attestations, challenges, shared profile fields), a
search of a node's thread files for bytes, and what a modified node sends: an attestation (of
the subject's own claim, or over another version of a claim) forged in the member's stopped
node's data folder and pushed by a bare peer with its device key.

Functions named ``*_print`` run inside a node's own ``manage.py shell`` (its settings, its data
dir) while that node is stopped, and print what the test reads back."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tests.support.api import Api, ApiError
from tests.support.attachments import _http, multipart
from tests.support.p2p import Peer


def claims_path(thread: str) -> str:
    return f"/api/v1/threads/{thread}/claims/"


def claim_make(
    peer: Peer, thread: str, fields: dict[str, str], photos: list[tuple[str, bytes]]
) -> dict[str, Any]:
    """POST a claim with evidence files (multipart, as the claim form sends it); the claim as
    the API returns it. Anything but 201 raises ``ApiError``."""
    body, content_type = multipart(
        list(fields.items()), [("files", name, data) for name, data in photos]
    )
    headers = {"Content-Type": content_type, "Accept": "application/json"}
    answer = _http(peer, "POST", claims_path(thread), body, headers)
    if answer.status != 201:
        try:
            payload = answer.json()
        except ValueError:
            payload = answer.body.decode(errors="replace")
        raise ApiError(answer.status, payload)
    return answer.json()


def claim_on(api: Api, thread: str, claim: str) -> dict[str, Any] | None:
    """The claim as this node shows it, or None while it has not arrived (or the thread has
    no identity app here yet)."""
    try:
        return api.get(claims_path(thread) + f"{claim}/")
    except ApiError as exc:
        if exc.status in (404, 409):
            return None
        raise


def attest(api: Api, thread: str, claim: str, verdict: str = "witnessed", note: str = "") -> Any:
    body = {"verdict": verdict, "note": note}
    return api.post(claims_path(thread) + f"{claim}/attestations/", body)


def witnesses_on(api: Api, thread: str) -> Any:
    return api.get(f"/api/v1/threads/{thread}/witnesses/")


def op_decision(api: Api, thread: str, op_hash: str) -> tuple[str, str] | None:
    """The decision this node's replica took on an op, once it holds it."""
    after = 0
    while True:
        page = api.get(f"/api/v1/threads/{thread}/ops/?after={after}&limit=1000")
        for op in page["ops"]:
            if op["hash"] == op_hash:
                return op["status"], op["reason"] or ""
        if not page["ops"]:
            return None
        after = page["next"]


# -- what a node keeps on disk ----------------------------------------------------------------


def thread_files(peer: Peer, thread: str) -> list[Path]:
    """A thread's database and its journals on this node (``threads/<hex>.sqlite3*``)."""
    return sorted((peer.data_dir / "threads").glob(f"{thread}.sqlite3*"))


def files_holding(paths: Iterable[Path], needle: bytes) -> list[str]:
    found = []
    for path in paths:
        try:
            if path.is_file() and needle in path.read_bytes():
                found.append(path.name)
        except FileNotFoundError:  # a journal the running node just removed
            continue
    return found


def shared_rows(peer: Peer, thread: str) -> list[dict[str, Any]]:
    """The shared profile fields a node's replica of ``thread`` holds, read from its file (the
    node keeps running: a read-only connection beside it)."""
    path = peer.data_dir / "threads" / f"{thread}.sqlite3"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute(
            "SELECT id, name, disclosure, commitment, profile, binding FROM identity_shared_field"
        ).fetchall()
    return [dict(row) for row in rows]


# -- a modified node ----------------------------------------------------------------------------


def attestation_print(thread_hex: str, claim_hex: str, subject_hex: str, title: str = "") -> None:
    """Run in a member's stopped node: this member's attestation of a claim, made exactly as an
    honest witness's would be (its id, the claim's digest, a valid endorsement naming the
    subject, signed with the member key), in an op the device signs at its next seq; with
    ``title``, the digest and endorsement are of the claim with that title instead (another
    version of it). Printed as hex; nothing is written."""
    import uuid
    from pathlib import Path

    from django.conf import settings

    from apps.core import identity as node_identity
    from apps.core.thread import keys
    from apps.core.thread import payloads as p
    from apps.core.threads import coltypes
    from apps.core.threads.registry import thread_database
    from apps.identity import formats
    from apps.identity.models import Claim
    from apps.identity.policy import ATTESTATION
    from tests.core.thread.conftest import forge

    thread = bytes.fromhex(thread_hex)
    master = node_identity.master_secret_load(Path(settings.DATA_DIR))
    key = keys.member_key(master, thread)
    database = thread_database(thread)
    database.open()
    with database.lock:
        writer = database.writer()
        member = writer.member
        found = Claim.objects.using(database.alias).get(pk=uuid.UUID(hex=claim_hex))
        claim = {name: getattr(found, name) for name in formats.CLAIM_COLUMNS}
        if title:
            claim["title"] = title
        digest = formats.claim_digest(claim_hex, claim)
        jws = formats.endorsement_jws(
            key,
            digest=digest,
            subject=bytes.fromhex(subject_hex),
            verdict="witnessed",
            note="",
            kind=claim["kind"],
            title=claim["title"],
        )
        pk = formats.attestation_id(member, claim_hex)
        cols = {
            "claim": claim_hex,
            "digest": digest.hex(),
            "verdict": "witnessed",
            "note": "",
            "jws": jws,
        }
        change = p.RowChange(ATTESTATION, pk, p.UPSERT, cols)
        payload = p.data_doc([change], coltypes.schema_of({ATTESTATION}))
        op = forge(writer, kind="data", payload=payload)
    print(op.raw.hex())


def forged_push(author: Peer, thread: str, raw_hex: str, targets: Iterable[Peer]) -> str:
    """Push an op signed by ``author``'s device (its node stopped) into a sync session with each
    target, from a bare peer holding that device key: what a modified node does. The op's hash."""
    from apps.core import identity as node_identity
    from apps.core.thread.op import op_decode
    from tests.support.rogue import RoguePeer

    raw = bytes.fromhex(raw_hex)
    op = op_decode(raw)
    rogue = RoguePeer(node_identity.device_key_load(author.data_dir).signing_key).start()
    try:
        for target in targets:
            rogue.call(rogue.connect, target.peer_id, target.network()["addresses"])
            rogue.call(
                rogue.sync, target.peer_id, bytes.fromhex(thread), {op.device: op.seq}, [raw]
            )
    finally:
        rogue.stop()
    return op.hash.hex()
