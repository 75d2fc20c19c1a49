"""The emergency summary (issue 16 §4): a link and a short passcode that show whoever holds both
the patient's International Patient Summary (allergies, medications, problems), read-only,
until the link expires, is revoked, or too many wrong passcodes were tried.

What is stored and what is not. The link carries a random 32-byte key after ``#`` (a URL's
fragment never reaches a server, a proxy or a log; the page's script hands it over in the
form's body). The key, the passcode and a per-link salt make an X25519 key pair
(``nacl.hash.blake2b`` keyed with the link's key, then ``PrivateKey.from_seed``); the node keeps
only its *public* half and the summary sealed to it (``SealedBox``). So:

- the node database holds no summary in clear, nor the key, nor the passcode: with the
  database alone, the box cannot be opened;
- the node can seal a newer summary to the same link without being able to read it back: the
  summary shown is the record as it stands when the link is opened, and the stored copy is
  sealed again then (it is only the fallback when the record cannot be read). The patient's
  terms for the link (``terms``: whether it shows the entries marked sensitive) are sealed with
  it, read back only when the right passcode opens it;
- a passcode is right exactly when it gives back the stored public key.

The key derivation is fast on purpose: guessing passcodes offline needs the link *and* the node
database, and whoever has the node's disk has the record itself in its thread database; online,
the attempt limit is what stops guessing.

Wrong passcodes count per link, whoever sends them: the link locks after ``max_attempts``. An
attempt is reserved before the check (a conditional UPDATE), so guesses sent at the same time
cannot go past the limit. Every try, right or wrong, is an ``EmergencyOpen`` row the patient
sees (``emergency_opens``; the audit log reads it too).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import nacl.exceptions
import nacl.hash
from django.db.models import F
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from nacl.encoding import RawEncoder
from nacl.public import PrivateKey, PublicKey, SealedBox

from apps.core.models import Thread
from apps.core.threads.services import ThreadServiceError
from apps.medical import selectors
from apps.medical.ips import Summary, ips_bundle, summary_of
from apps.medical.models import EmergencyLink, EmergencyOpen
from apps.medical.policy import SHAPE

logger = logging.getLogger(__name__)

PERSON = b"sereus-emergency"  # blake2b personalisation: these keys are for nothing else
KEY_BYTES = 32
SALT_BYTES = 16
PUBLIC_BYTES = 32
PAYLOAD_VERSION = 1
PASSCODE_MIN, PASSCODE_MAX = 4, 12
EXPIRY_MIN, EXPIRY_MAX, EXPIRY_DEFAULT = timedelta(hours=1), timedelta(days=30), timedelta(days=7)
ATTEMPTS_MIN, ATTEMPTS_MAX, ATTEMPTS_DEFAULT = 1, 20, 5


class EmergencyRefused(Exception):
    """An emergency link that does not open now. ``kind``: unknown, incomplete, expired,
    revoked, locked, wrong; ``str(exc)`` says it in words; ``tries_left`` after a wrong one."""

    def __init__(self, kind: str, words: str, tries_left: int | None = None) -> None:
        super().__init__(words)
        self.kind = kind
        self.tries_left = tries_left


@dataclass(frozen=True)
class Opened:
    """What an opened link shows: the summary's lists and the IPS document they come from."""

    summary: Summary
    bundle: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class LinkView:
    """One link as the patient's page and the API show it (never its key)."""

    id: str
    created_at: datetime
    expires_at: datetime
    state: str  # active, expired, revoked, locked
    state_words: str
    attempts: int
    max_attempts: int
    opens: list[EmergencyOpen]

    @property
    def tries_left(self) -> int:
        return max(0, self.max_attempts - self.attempts)


# -- keys --------------------------------------------------------------------------------------


def passcode_normal(passcode: str) -> str:
    """The passcode as it is checked: without spaces, case ignored (a phone's keyboard capitalises
    the first letter on its own; "12 34 56" is "123456")."""
    return "".join(str(passcode).split()).casefold()


def passcode_suggest() -> str:
    """Six random digits: easy to read out over a phone, easy to type."""
    return f"{secrets.randbelow(10**6):06d}"


def _key_pair(passcode: str, link_key: bytes, salt: bytes) -> PrivateKey:
    seed = nacl.hash.blake2b(
        passcode_normal(passcode).encode(),
        digest_size=32,
        key=link_key,
        salt=salt,
        person=PERSON,
        encoder=RawEncoder,
    )
    return PrivateKey.from_seed(seed)


def key_text(link_key: bytes) -> str:
    return base64.urlsafe_b64encode(link_key).rstrip(b"=").decode()


def key_bytes(text: str, size: int = KEY_BYTES) -> bytes | None:
    """The link's key from its text, or None when it is not one (a link copied in part)."""
    text = (text or "").strip().lstrip("#")
    if not text or len(text) > 64:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == size else None


def _seal(public: bytes, payload: bytes) -> bytes:
    return public + SealedBox(PublicKey(public)).encrypt(payload)


def link_name(link_id: uuid.UUID) -> str:
    """The link's id as its URL says it: 22 characters, not 32 (a smaller QR code on a card)."""
    return key_text(link_id.bytes)


def link_path(link: EmergencyLink, link_key: bytes) -> str:
    """The link's path, its key after ``#`` (never sent to a server)."""
    try:
        path = reverse("emergency:open", args=[link_name(link.id)])
    except NoReverseMatch:  # the public pages are not routed (a node without them)
        path = f"/e/{link_name(link.id)}/"
    return f"{path}#{key_text(link_key)}"


# -- the summary -------------------------------------------------------------------------------


def _payload(thread: Thread, now: datetime, terms: dict[str, Any]) -> bytes:
    """What a link seals: the patient's terms for it (kept only in the box, read back when the
    right passcode opens it) and the record's IPS document as it stands now."""
    bundle = ips_bundle(thread, now=now, sensitive=bool(terms.get("sensitive")))
    body = {"v": PAYLOAD_VERSION, "terms": terms, "ips": bundle}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


# -- the patient's side ------------------------------------------------------------------------


def _patients_record(thread: Thread) -> None:
    if thread.app != SHAPE:
        raise ThreadServiceError("not_found", "this thread is not a medical record")
    if selectors.is_sensitive(thread):
        raise ThreadServiceError("not_found", "make emergency links from the record itself")
    if thread.role != "owner" or thread.state != Thread.State.ACTIVE:
        raise ThreadServiceError(
            "forbidden", "only the patient can make or revoke emergency links for this record"
        )


def _checked(passcode: str, expires_in: timedelta, max_attempts: int) -> None:
    size = len(passcode_normal(passcode))
    if not PASSCODE_MIN <= size <= PASSCODE_MAX:
        raise ThreadServiceError(
            "invalid",
            f"The passcode must have {PASSCODE_MIN} to {PASSCODE_MAX} characters "
            "(spaces do not count).",
        )
    if not EXPIRY_MIN <= expires_in <= EXPIRY_MAX:
        raise ThreadServiceError(
            "invalid", "The link must last at least one hour and at most 30 days."
        )
    if isinstance(max_attempts, bool) or not ATTEMPTS_MIN <= max_attempts <= ATTEMPTS_MAX:
        raise ThreadServiceError(
            "invalid",
            f"The number of wrong passcodes allowed must be {ATTEMPTS_MIN} to {ATTEMPTS_MAX}.",
        )


def emergency_create(
    thread: Thread,
    *,
    passcode: str,
    expires_in: timedelta = EXPIRY_DEFAULT,
    max_attempts: int = ATTEMPTS_DEFAULT,
    sensitive: bool = False,
    now: datetime | None = None,
) -> tuple[EmergencyLink, str]:
    """A new link for the patient's record: the link row and the link's path with its key
    (shown once: the node keeps no way to make it again). Entries of the record's sensitive
    part are in its summary only if ``sensitive``."""
    _patients_record(thread)
    _checked(passcode, expires_in, max_attempts)
    now = now or timezone.now()
    link_key, salt = secrets.token_bytes(KEY_BYTES), secrets.token_bytes(SALT_BYTES)
    public = bytes(_key_pair(passcode, link_key, salt).public_key)
    link = EmergencyLink.objects.create(
        id=uuid.uuid4(),
        thread=thread,
        box=_seal(public, _payload(thread, now, {"sensitive": bool(sensitive)})),
        salt=salt,
        expires_at=now + expires_in,
        max_attempts=max_attempts,
    )
    return link, link_path(link, link_key)


def _state(link: EmergencyLink, now: datetime) -> tuple[str, str]:
    if link.revoked:
        return "revoked", "Revoked"
    if link.attempts >= link.max_attempts:
        return "locked", "Locked: too many wrong passcodes"
    if link.expires_at <= now:
        return "expired", "Expired"
    return "active", "Active"


def emergency_links(thread: Thread, *, now: datetime | None = None) -> list[LinkView]:
    """The record's links, newest first, each with its tries (newest first)."""
    now = now or timezone.now()
    links = EmergencyLink.objects.filter(thread=thread).order_by("-created_at")
    views = []
    for link in links.prefetch_related("opens"):
        state, words = _state(link, now)
        views.append(
            LinkView(
                id=link_name(link.id),
                created_at=link.created_at,
                expires_at=link.expires_at,
                state=state,
                state_words=words,
                attempts=link.attempts,
                max_attempts=link.max_attempts,
                opens=sorted(link.opens.all(), key=lambda o: (o.at, o.pk), reverse=True),
            )
        )
    return views


def emergency_opens(thread: Thread) -> list[EmergencyOpen]:
    """Every try to open one of the record's links, newest first."""
    found = EmergencyOpen.objects.filter(link__thread=thread).select_related("link")
    return list(found.order_by("-at", "-pk"))


def _link_id(link_id: str | uuid.UUID) -> uuid.UUID | None:
    """A link's id from its URL form (``link_name``) or its hex (the API's)."""
    if isinstance(link_id, uuid.UUID):
        return link_id
    text = str(link_id)
    if len(text) == 22:
        raw = key_bytes(text, size=16)
        return uuid.UUID(bytes=raw) if raw else None
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def emergency_revoke(thread: Thread, link_id: str | uuid.UUID) -> None:
    """The link stops opening at once (its tries stay listed)."""
    _patients_record(thread)
    pk = _link_id(link_id)
    done = pk and EmergencyLink.objects.filter(pk=pk, thread=thread).update(revoked=True)
    if not done:
        raise ThreadServiceError("not_found", "there is no such emergency link for this record")


# -- opening -----------------------------------------------------------------------------------

REFUSALS = {
    "unknown": "This emergency link does not exist (any more). Ask for a new one.",
    "incomplete": "This link is incomplete: open the whole link, or scan its QR code again.",
    "expired": "This emergency link has expired.",
    "revoked": "The patient has revoked this emergency link.",
    "locked": "This emergency link is locked: too many wrong passcodes were tried.",
}


def _refused(kind: str, tries_left: int | None = None) -> EmergencyRefused:
    if kind == "wrong":
        left = f"{tries_left} {'try' if tries_left == 1 else 'tries'} left"
        words = f"Wrong passcode: {left}." if tries_left else REFUSALS["locked"]
        return EmergencyRefused("wrong" if tries_left else "locked", words, tries_left)
    return EmergencyRefused(kind, REFUSALS[kind])


def emergency_state(link_id: str | uuid.UUID, *, now: datetime | None = None) -> str:
    """unknown, expired, revoked, locked or active: what the page says before a passcode."""
    pk = _link_id(link_id)
    link = EmergencyLink.objects.filter(pk=pk).first() if pk else None
    return "unknown" if link is None else _state(link, now or timezone.now())[0]


def _fresh(
    link: EmergencyLink, public: bytes, now: datetime, terms: dict[str, Any]
) -> bytes | None:
    """The record's summary as it is now, sealed again into the link; None if the record cannot
    be read (then the link shows the copy sealed before)."""
    thread = link.thread
    if thread.state != Thread.State.ACTIVE:
        return None
    try:
        payload = _payload(thread, now, terms)
    except Exception:  # a damaged or busy record: the stored copy still opens
        logger.exception("the emergency summary of record %s could not be made", thread.id[:12])
        return None
    EmergencyLink.objects.filter(pk=link.pk).update(box=_seal(public, payload))
    return payload


def emergency_open(
    link_id: str | uuid.UUID,
    key: str,
    passcode: str,
    address: str,
    *,
    now: datetime | None = None,
) -> Opened:
    """The summary behind a link, or ``EmergencyRefused`` in words. Every try is recorded."""
    now = now or timezone.now()
    pk = _link_id(link_id)
    link = EmergencyLink.objects.select_related("thread").filter(pk=pk).first() if pk else None
    if link is None:
        raise _refused("unknown")
    address = (address or "")[:100]

    def logged(ok: bool) -> None:
        EmergencyOpen.objects.create(link=link, ok=ok, address=address)

    link_key = key_bytes(key)
    if link_key is None:
        logged(False)
        raise _refused("incomplete")
    # Reserve a try first: concurrent guesses cannot pass the limit between check and count.
    reserved = EmergencyLink.objects.filter(
        pk=link.pk, revoked=False, expires_at__gt=now, attempts__lt=F("max_attempts")
    ).update(attempts=F("attempts") + 1)
    if not reserved:
        logged(False)
        link.refresh_from_db()
        state = _state(link, now)[0]
        # "active" here: the last try was held by a guess being checked at this very moment.
        raise _refused("locked" if state == "active" else state)
    stored = bytes(link.box)
    public = stored[:PUBLIC_BYTES]
    private = _key_pair(passcode, link_key, bytes(link.salt))
    if not hmac.compare_digest(bytes(private.public_key), public):
        logged(False)
        link.refresh_from_db(fields=["attempts", "max_attempts"])
        raise _refused("wrong", max(0, link.max_attempts - link.attempts))
    EmergencyLink.objects.filter(pk=link.pk).update(attempts=F("attempts") - 1)
    logged(True)
    try:
        kept = json.loads(SealedBox(private).decrypt(stored[PUBLIC_BYTES:]))
    except (nacl.exceptions.CryptoError, ValueError) as exc:  # the right keys, a damaged box
        raise EmergencyRefused("unknown", "This summary cannot be read any more.") from exc
    fresh = _fresh(link, public, now, kept.get("terms") or {})
    bundle = json.loads(fresh)["ips"] if fresh is not None else kept["ips"]
    return Opened(summary_of(bundle), bundle)
