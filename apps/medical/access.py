"""Who holds a medical record, as the patient's access page shows it (issue 16 §3).

Everyone who is a member of the record now (the patient, providers, caregivers), with the grant
the patient gave each, whether they are also in the sensitive part, and every device of theirs
that holds the record: when it last synced with this node and whether it holds everything this
node holds. Then who held it before (removed, or left: they keep what their devices had) and the
invites this node made that nobody has used yet, with the grant each will give.

Sync times come from the version vectors member devices sent in sync sessions, which the p2p
node keeps in the node database (``apps.core.delivery_models.PeerVector``, ADR 22): a device
holds the latest when its vector covers this node's own. "Not yet" means "not as far as this
node heard": a device may have caught up from another member meanwhile.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from apps.core.delivery_models import PeerVector
from apps.core.models import Thread
from apps.core.thread import payloads as p
from apps.core.threads.invite_words import expires_words
from apps.core.threads.names import THIS_DEVICE, thread_names
from apps.core.threads.registry import thread_database
from apps.medical import fhir
from apps.medical.policy import ROLE_WORDS

if TYPE_CHECKING:
    from apps.medical.selectors import GrantView

# A role as the page names it (the words of ROLE_WORDS say what it may do).
ROLE_NAMES = {"owner": "patient", "provider": "provider", "caregiver": "caregiver"}


@dataclass(frozen=True)
class DeviceSync:
    """One device that holds the record, as this node last heard from it."""

    device: str  # hex: for forms and technical details only
    label: str  # "this device", "Dr. Lee's device (2 of 3)"
    last_synced: datetime | None  # None: never synced with this node (this device: now)
    holds_latest: bool  # holds every op this node holds
    this_device: bool = False

    @property
    def words(self) -> str:
        """What the page says about it: "holds everything this node has" / "not yet ..."."""
        if self.this_device:
            return "this device"
        if self.last_synced is None:
            return "has not synced with this node yet"
        held = (
            "holds everything this node has"
            if self.holds_latest
            else "does not hold everything this node has yet"
        )
        return f"{held}; last synced {synced_words(self.last_synced)}"


@dataclass(frozen=True)
class Holder:
    """A member of the record: who, which role, what the patient granted, which devices."""

    member: str  # hex
    name: str
    role: str
    grant: GrantView | None
    devices: list[DeviceSync]
    sensitive: bool = False  # also a member of the sensitive part
    is_me: bool = False

    @property
    def role_name(self) -> str:
        return ROLE_NAMES.get(self.role, self.role.replace("_", " "))

    @property
    def role_words(self) -> str:
        return ROLE_WORDS.get(self.role, self.role.replace("_", " "))

    @property
    def label(self) -> str:
        """The grant's label ("Dr. Lee, Riverside Clinic"), if the patient gave one."""
        return self.grant.label if self.grant is not None else ""

    @property
    def reads(self) -> str:
        if self.role == "owner":
            return "everything"
        return types_words(self.grant.read) if self.grant is not None else "everything"

    @property
    def writes(self) -> str:
        if self.role == "owner":
            return "everything"
        return types_words(self.grant.write) if self.grant is not None else "nothing"

    @property
    def period(self) -> str:
        return period_words(self.grant)

    @property
    def last_synced(self) -> datetime | None:
        """The newest sync of any of its devices other than this one."""
        times = [d.last_synced for d in self.devices if d.last_synced and not d.this_device]
        return max(times) if times else None


@dataclass(frozen=True)
class Former:
    """Someone who held the record and no longer does: removed by the patient, or left."""

    member: str
    name: str
    how: str  # "removed" | "left"
    at: datetime | None
    grant: GrantView | None = None


@dataclass(frozen=True)
class OpenInvite:
    """An invite this node made that nobody has used yet, with the grant it will give."""

    invite_id: str
    label: str
    role: str
    expires: str  # "expires in 3 hours"
    made: datetime
    read: list[str] = field(default_factory=list)  # resourceTypes
    write: list[str] = field(default_factory=list)
    sensitive: bool = False

    @property
    def read_words(self) -> str:
        return types_words(self.read)

    @property
    def write_words(self) -> str:
        return types_words(self.write)


def _vectors(thread: Thread) -> dict[str, tuple[dict[str, int], datetime]]:
    """Device (hex) -> (vector {device hex: seq}, when it was said)."""
    return {
        row.device_id: (row.vv or {}, row.seen_at)
        for row in PeerVector.objects.filter(thread=thread)
    }


def _covers(vector: dict[str, int], mine: dict[bytes, int], device: bytes) -> bool:
    """Whether a device whose vector is ``vector`` holds every op this node holds (its own
    chain it holds whatever it said)."""
    return all(
        vector.get(dev.hex(), 0) >= seq for dev, seq in mine.items() if dev != device and seq
    )


def _grants_by_member(thread: Thread) -> dict[str, GrantView]:
    from apps.medical import selectors

    return {grant.member: grant for grant in selectors.grants(thread)}


def _sensitive_devices(thread: Thread) -> set[bytes]:
    """The active devices of the record's sensitive part, as this node holds it (none if it
    does not). Devices, not members: a person's member key differs from thread to thread, the
    keys of their devices do not."""
    from apps.medical import selectors

    companion = selectors.sensitive_of(thread)
    if companion is None or companion.state != Thread.State.ACTIVE:
        return set()
    database = thread_database(companion.thread)
    with database.lock:
        state = database.replica().control.state
        return {device for device in state.devices if state.device_member(device) is not None}


def holders(thread: Thread) -> list[Holder]:
    """Everyone who holds the record now: this node's member first, then by name."""
    database = thread_database(thread.thread)
    me_device = bytes(database.node.device.verify_key)
    with database.lock:
        replica = database.replica()
        state = replica.control.state
        members = {m: s.role for m, s in state.members.items() if s.active}
        devices: dict[bytes, list[bytes]] = {}
        for device, s in state.devices.items():
            if s.active and s.member in members:
                devices.setdefault(s.member, []).append(device)
        mine = replica.version_vector()
    names = thread_names(thread, me_as="you")
    vectors = _vectors(thread)
    grants = _grants_by_member(thread)
    sensitive = _sensitive_devices(thread)
    now = timezone.now()
    found = []
    for member, role in members.items():
        own = sorted(devices.get(member, []))
        synced = []
        for index, device in enumerate(own, 1):
            if device == me_device:
                synced.append(DeviceSync(device.hex(), THIS_DEVICE, now, True, this_device=True))
                continue
            label = names.device(device.hex())
            if len(own) > 1:
                label = f"{label} ({index} of {len(own)})"
            vector, seen = vectors.get(device.hex(), (None, None))
            synced.append(
                DeviceSync(
                    device.hex(),
                    label,
                    seen,
                    vector is not None and _covers(vector, mine, device),
                )
            )
        synced.sort(key=lambda d: (not d.this_device, d.label.casefold()))
        found.append(
            Holder(
                member=member.hex(),
                name=names[member.hex()],
                role=role,
                grant=grants.get(member.hex()),
                devices=synced,
                sensitive=bool(sensitive.intersection(own)),
                is_me=member.hex() == thread.member_id,
            )
        )
    return sorted(found, key=lambda h: (not h.is_me, h.role != "owner", h.name.casefold()))


def holder(thread: Thread, member_id: str) -> Holder | None:
    """One member of the record (None if ``member_id`` is not one now)."""
    return next((h for h in holders(thread) if h.member == member_id.lower()), None)


def former(thread: Thread) -> list[Former]:
    """Who held the record and no longer does, newest departure first."""
    database = thread_database(thread.thread)
    with database.lock:
        control = database.replica().control
        gone: list[tuple[bytes, p.Control | p.Keys | None, Any]] = []
        for member, events in control.timeline.member_events.items():
            if not events or events[-1][1] is not None or control.state.role_of(member):
                continue
            op = events[-1][0]
            gone.append((member, control.actions.get(op.hash), op))
    names = thread_names(thread, me_as="you")
    grants = _grants_by_member(thread)
    found = [
        Former(
            member=member.hex(),
            name=names[member.hex()],
            how="left" if isinstance(action, p.Leave) else "removed",
            at=datetime.fromtimestamp(op.hlc.millis / 1000, tz=UTC),
            grant=grants.get(member.hex()),
        )
        for member, action, op in gone
    ]
    return sorted(found, key=lambda f: f.at or datetime.min.replace(tzinfo=UTC), reverse=True)


def _type_names(names: Any) -> list[str]:
    return [str(n) for n in names] if isinstance(names, list) else []


def open_invites(thread: Thread) -> list[OpenInvite]:
    """The invites this node made to the record that are still open, newest first."""
    from apps.medical.models import PendingGrant

    pending = {}
    for row in PendingGrant.objects.filter(thread=thread):
        try:
            terms = json.loads(row.grant)
        except ValueError:
            terms = {}
        pending[row.invite_id] = terms if isinstance(terms, dict) else {}
    now = timezone.now()
    found = []
    for invite in thread.invites.filter(status="open", expires_at__gt=now).exclude(link=""):
        terms = pending.get(invite.invite_id, {})
        found.append(
            OpenInvite(
                invite_id=invite.invite_id,
                label=invite.label or str(terms.get("label") or ""),
                role=ROLE_NAMES.get(invite.role, invite.role),
                expires=expires_words(invite.expires_at, now),
                made=invite.created_at,
                read=_type_names(terms.get("read")),
                write=_type_names(terms.get("write")),
                sensitive=bool(terms.get("sensitive")),
            )
        )
    return found


def synced_words(at: datetime, now: datetime | None = None) -> str:
    """ "just now", "5 minutes ago", "2 days ago": the largest whole unit."""
    seconds = ((now or timezone.now()) - at).total_seconds()
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'' if count == 1 else 's'} ago"
    return "just now"


def period_words(grant: GrantView | None) -> str:
    """A grant's period for a page: "", "from 2 May 2026", "until 9 May 2026", "from .. to ..".
    A grant's end is the first moment after its last day."""
    if grant is None:
        return ""
    start = grant.start.strftime("%-d %b %Y") if grant.start else ""
    last = (grant.end - timedelta(milliseconds=1)).strftime("%-d %b %Y") if grant.end else ""
    if start and last:
        return f"from {start} to {last}"
    return f"from {start}" if start else f"until {last}" if last else ""


def types_words(names: list[str] | None) -> str:
    """Resource types in words for a page: "everything", "results and problems", "nothing"."""
    names = [n for n in names or [] if n in fhir.TYPES]
    if not names:
        return "nothing"
    if set(names) >= set(fhir.TYPES):
        return "everything"
    words = [fhir.TYPES[n].plural for n in fhir.TYPES if n in names]  # display order
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
