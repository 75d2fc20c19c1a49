"""Device links: adding a node to a party (issue 17 §2, ADR 24).

A device link is ``sereus:device/<base64url of CBOR>`` (or ``https://<node>/devices/join/#<same>``:
the fragment never reaches a server log). It carries a link id, the seed of a single-use link key,
the kind of device it adds (a *full* device, or a *mirror* that never gets the master secret), the
inviting node's peer id and addresses, a name for the new device, and its expiry. The inviting
node keeps only the link key's public half (``DeviceLink``).

Over ``/sereus/cadre/link/1.0.0`` the new node, proving the link key bound to both ends of the
Noise connection (``keys.link_proof_sign``):

- **claim**s the link: single use (the same device may ask again: a retry), unexpired; the answer
  is the party's threads (the control thread first, with the party's member key in each) and, for
  a full device only, the master secret;
- **certif**ies itself: its own device proof for every thread; the inviting node writes a
  ``CertifyDevice`` for it in each and records it in the control thread.

The new node then fetches each thread's log from the inviting node and adopts it
(``thread_adopt``), the control thread first. The client half is ``join_start`` (local checks)
and ``join_step`` (the cadre worker's step).
"""

from __future__ import annotations

import base64
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import base58
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from apps.cadre import control, wire
from apps.cadre import keys as cadre_keys
from apps.cadre.control import CadreError
from apps.cadre.models import DeviceLink, PartyDevice, PendingJoin
from apps.core import identity
from apps.core.models import Thread
from apps.core.thread import codec, crypto
from apps.core.thread import keys as thread_keys
from apps.core.threads import services as thread_services

SCHEME_PREFIX = "sereus:device/"
HTTPS_RE = re.compile(r"^https?://[^/#?\s]+/devices/join/?#(?P<payload>[^#?\s]*)$")
PAYLOAD_RE = re.compile(r"\A[A-Za-z0-9_-]+\Z")
KINDS = ("full", "mirror")
LIFETIME = timedelta(minutes=10)
# Once claimed, the link is its claimer's alone: it may finish certifying a while after expiry.
CLAIMED_GRACE = timedelta(hours=1)
MAX_LINK = 2048
MAX_ADDRS = 8
MAX_ANSWER = 1 << 20

NOT_A_LINK = (
    "This is not a device link. A device link starts with sereus:device/ — make one on the "
    "devices page of your other device."
)
DAMAGED = "This device link is damaged or cut off. Copy the whole link again, or scan the QR code."
EXPIRED = "This device link has expired; make a new one on your other device."
USED = "This device link was used by another device already; make a new one on your other device."
UNKNOWN = "This device link is not one this node made (or it was removed)."
FORGED = "This device link's proof does not verify: the link was not copied whole, or is forged."
NOT_FRESH = (
    "This node already belongs to someone (it has threads of its own); a device link joins "
    "only a fresh node."
)


class LinkError(CadreError):
    """A device link that cannot be used, in plain words."""


@dataclass(frozen=True)
class LinkData:
    id: bytes  # 16 bytes
    seed: bytes  # 32 bytes: the single-use link key's seed
    kind: str  # "full" | "mirror"
    peer: str  # the inviting node's peer id
    addrs: tuple[str, ...]
    name: str  # what the new device will be called
    expires_ms: int

    @property
    def public_key(self) -> bytes:
        return bytes(cadre_keys.link_key(self.seed).verify_key)

    def text(self) -> str:
        doc = {
            "v": 1,
            "id": self.id,
            "seed": self.seed,
            "kind": self.kind,
            "peer": self.peer,
            "addrs": list(self.addrs),
            "name": self.name,
            "exp": self.expires_ms,
        }
        payload = base64.urlsafe_b64encode(codec.encode(doc)).rstrip(b"=").decode()
        return SCHEME_PREFIX + payload

    def https_link(self, domain: str) -> str:
        return f"https://{domain}/devices/join/#{self.text().removeprefix(SCHEME_PREFIX)}"


@dataclass(frozen=True)
class CreatedLink:
    link: str
    expires_at: datetime
    id: str


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def node_addresses() -> tuple[str, ...]:
    network = thread_services.network
    return tuple(network.addresses()[:MAX_ADDRS]) if network is not None else ()


def device_of_peer(peer: str) -> bytes:
    """The Ed25519 device key a libp2p peer id embeds (``identity.peer_id_from_public_key``
    backwards); ``LinkError`` for any other id."""
    try:
        raw = base58.b58decode(peer)
    except ValueError:
        raw = b""
    prefix = b"\x00\x24\x08\x01\x12\x20"
    if len(raw) != len(prefix) + 32 or not raw.startswith(prefix):
        raise LinkError("invalid", DAMAGED)
    return raw[len(prefix) :]


# -- the link ------------------------------------------------------------------------------------


def link_create(*, kind: str = "full", label: str = "") -> CreatedLink:
    """A new single-use device link (it makes the party's control thread if there is none)."""
    if kind not in KINDS:
        raise LinkError("invalid", "A device link adds a full device or a mirror.")
    label = " ".join(label.split())
    if len(label) > _label_most() or not label.isprintable():
        raise LinkError(
            "invalid", f"A device's name is plain text of at most {_label_most()} characters."
        )
    if settings.SEREUS.mirror:
        raise LinkError("forbidden", "A mirror cannot add devices; add them from a full device.")
    control.control_ensure()
    data = LinkData(
        id=secrets.token_bytes(16),
        seed=secrets.token_bytes(32),
        kind=kind,
        peer=identity.peer_id_from_public_key(control.this_device()),
        addrs=node_addresses(),
        name=label,
        expires_ms=now_ms() + int(LIFETIME.total_seconds() * 1000),
    )
    expires_at = datetime.fromtimestamp(data.expires_ms / 1000, UTC)
    DeviceLink.objects.create(
        id=data.id.hex(),
        public_key=data.public_key.hex(),
        kind=kind,
        label=label,
        expires_at=expires_at,
    )
    return CreatedLink(link=data.text(), expires_at=expires_at, id=data.id.hex())


def _label_most() -> int:
    return DeviceLink._meta.get_field("label").max_length


def _payload(text: str) -> str:
    if text.startswith(SCHEME_PREFIX):
        return text[len(SCHEME_PREFIX) :]
    if match := HTTPS_RE.match(text):
        return match.group("payload")
    if len(text) >= len("sereus:") and SCHEME_PREFIX.startswith(text):
        raise LinkError("invalid", DAMAGED)
    raise LinkError("invalid", NOT_A_LINK)


def link_parse(text: Any) -> LinkData:
    """The device link in ``text``; ``LinkError`` in plain words for anything else."""
    if type(text) is not str:
        raise LinkError("invalid", NOT_A_LINK)
    if len(text) > MAX_LINK:
        raise LinkError("invalid", "This is not a device link: it is far longer than one.")
    payload = _payload("".join(text.split()))
    if not PAYLOAD_RE.match(payload) or len(payload) % 4 == 1:
        raise LinkError("invalid", DAMAGED)
    raw = base64.b64decode(payload + "=" * (-len(payload) % 4), altchars=b"-_")
    try:
        doc = wire.decode(raw, max_size=MAX_LINK)
        found = LinkData(
            id=wire.b32(doc, "id", 16),
            seed=wire.b32(doc, "seed"),
            kind=wire.text(doc, "kind", 16),
            peer=wire.text(doc, "peer", 128),
            addrs=tuple(wire.addrs(doc)),
            name=wire.text(doc, "name", _label_most()),
            expires_ms=wire.uint(doc, "exp", high=2**48),
        )
    except wire.WireError as exc:
        raise LinkError("invalid", DAMAGED) from exc
    if found.kind not in KINDS or len(found.addrs) > MAX_ADDRS:
        raise LinkError("invalid", DAMAGED)
    device_of_peer(found.peer)
    return found


# -- the inviting node's side ----------------------------------------------------------------------


def _link_row(doc: dict[str, Any], peer_device: bytes, step: str) -> DeviceLink:
    """The link the request names, its proof checked (one refusal for any unknown link)."""
    link_id = wire.b32(doc, "link", 16).hex()
    row = DeviceLink.objects.filter(pk=link_id).first()
    if row is None:
        raise LinkError("not_found", UNKNOWN)
    try:
        cadre_keys.link_proof_verify(
            bytes.fromhex(row.public_key),
            doc.get("sig"),
            step=step,
            requester=peer_device,
            responder=control.this_device(),
        )
    except cadre_keys.ProofError as exc:
        raise LinkError("forbidden", FORGED) from exc
    return row


def _claimed_by(row: DeviceLink, peer_device: bytes) -> None:
    """Mark ``row`` used by ``peer_device`` (atomically: one device only), or refuse."""
    now = timezone.now()
    me = peer_device.hex()
    if row.used_by == me:
        if row.used_at is not None and now > max(row.expires_at, row.used_at) + CLAIMED_GRACE:
            raise LinkError("forbidden", EXPIRED)
        return
    if row.used_by:
        raise LinkError("conflict", USED)
    if now >= row.expires_at:
        raise LinkError("forbidden", EXPIRED)
    taken = (
        DeviceLink.objects.filter(pk=row.pk)
        .filter(Q(used_by="") | Q(used_by=me))
        .update(used_by=me, used_at=now)
    )
    if not taken:
        raise LinkError("conflict", USED)


def _party_threads() -> list[Thread]:
    """The party's threads this node holds: the control thread first."""
    from apps.cadre.devices import holding_threads

    found = holding_threads()
    if not found:
        raise LinkError("unavailable", "This node has no device list yet; make a new link.")
    return found[: wire.MAX_THREADS]


def _claim(doc: dict[str, Any], peer_device: bytes) -> dict[str, Any]:
    row = _link_row(doc, peer_device, "claim")
    _claimed_by(row, peer_device)
    secret = control.master_secret()
    threads = _party_threads()
    answer: dict[str, Any] = {
        "kind": row.kind,
        "party": cadre_keys.party_id(secret),
        "control": threads[0].thread,
        # A mirror never learns what a thread is called or what it is for.
        "threads": [
            {
                "thread": t.thread,
                "member": bytes.fromhex(t.member_id),
                "app": "" if row.kind == "mirror" else t.app,
                "name": "" if row.kind == "mirror" else t.name,
            }
            for t in threads
        ],
        "addrs": list(node_addresses()),
        "peer": identity.peer_id_from_public_key(control.this_device()),
    }
    if row.kind == "full":
        answer["master"] = secret
    return answer


def _certify(doc: dict[str, Any], peer_device: bytes) -> dict[str, Any]:
    row = _link_row(doc, peer_device, "certify")
    if row.used_by != peer_device.hex():
        raise LinkError("forbidden", "Claim this device link before certifying with it.")
    _claimed_by(row, peer_device)
    label = " ".join(wire.text(doc, "label", _label_most(), default=row.label).split())
    addrs = wire.addrs(doc) if "addrs" in doc else []
    threads = {t.thread: t for t in _party_threads()}
    proofs: list[tuple[Thread, bytes]] = []
    for item in wire.items(doc, "proofs", wire.MAX_THREADS):
        if not isinstance(item, dict):
            raise wire.WireError("each proof is a map")
        thread = threads.get(wire.b32(item, "thread"))
        proof = wire.b32(item, "proof", 64)
        if thread is None:
            raise LinkError("invalid", "A proof names a thread that is not one of yours here.")
        try:
            thread_keys.device_proof_verify(
                thread.thread, bytes.fromhex(thread.member_id), peer_device, proof
            )
        except crypto.CryptoError as exc:
            raise LinkError(
                "forbidden", f"The new device's proof for {thread.name!r} does not verify."
            ) from exc
        proofs.append((thread, proof))
    control_id = next(iter(threads))
    if control_id not in {t.thread for t, _ in proofs}:
        raise LinkError("invalid", "The new device must be certified in your device list too.")
    certified = []
    # The control thread first: the device is one of the party's before it is anywhere else.
    for thread, proof in sorted(proofs, key=lambda tp: tp[0].thread != control_id):
        control.certify(thread, peer_device, proof)
        certified.append(thread.thread)
    control.device_record(
        device=peer_device,
        kind=PartyDevice.Kind.MIRROR if row.kind == "mirror" else PartyDevice.Kind.FULL,
        label=label,
        addrs=addrs,
    )
    return {"certified": certified}


def serve(peer_device: bytes, request: bytes) -> bytes:
    """The LINK protocol's handler (in a worker thread of the p2p node)."""
    from apps.p2p.app_protocols import AppRefused

    if settings.SEREUS.mirror:
        raise AppRefused("A mirror makes no device links; make one on a full device of yours.")
    try:
        doc = wire.decode(request, max_size=MAX_ANSWER)
        op = doc.get("op")
        if op == "claim":
            return wire.encode(_claim(doc, peer_device))
        if op == "certify":
            return wire.encode(_certify(doc, peer_device))
        raise wire.WireError("the request must be a claim or a certify")
    except CadreError as exc:
        raise AppRefused(exc.words) from exc
    except wire.WireError as exc:
        raise AppRefused(f"This request breaks the device link protocol: {exc}.") from exc


# -- the joining node's side (``link_join``) -------------------------------------------------------


def join_start(*, link: str) -> PendingJoin:
    """Check ``link`` here, then let the cadre worker join the party with it."""
    from apps.cadre import link_join

    return link_join.join_start(link=link)


def join_step() -> None:
    """Worker step: carry the join under way one step further (claim, certify, fetch)."""
    from apps.cadre import link_join

    link_join.join_step()
