"""Who is called what in a thread, for every page, socket and API answer of this node (ADR 16).

A member shows as the name this node gave it (a contact name, private to this node), else the
name it gave itself in the thread (its set_name op), else two words derived from its member key
("amber falcon"): never a key in hex, and two unnamed members still differ. When two members
would show alike, the ones showing a name they chose themselves get their words added, so
nobody passes for another by taking their name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from django.db import connections, router
from mnemonic import Mnemonic

from apps.core.models import ContactName, Thread
from apps.core.threads.registry import thread_database

# States in which this node holds the thread's log (a joining thread may have none yet).
_HAS_LOG = (Thread.State.ACTIVE, Thread.State.LEFT, Thread.State.REMOVED)

THIS_DEVICE = "this device"
MY_OTHER_DEVICE = "another of your devices"


@cache
def _words() -> list[str]:
    return Mnemonic("english").wordlist


def fallback_name(member: bytes) -> str:
    """Two words for a member key that named nothing: the same key, the same words, on every
    node (22 bits: two of a handful of members share them about once in a million)."""
    digest = hashlib.blake2b(member, digest_size=4, person=b"sereus-name").digest()
    bits = int.from_bytes(digest, "big")
    words = _words()
    return f"{words[(bits >> 11) & 2047]} {words[bits & 2047]}"


@dataclass(frozen=True)
class Person:
    """A member as this node names it."""

    member_id: str  # hex: for links and forms, shown only in technical details
    name: str  # what pages show
    own_name: str  # the name the member gave itself in the thread ("": none)
    contact_name: str  # the name only this node gives it ("": none)
    is_me: bool
    role: str = ""  # its role in the thread, where the caller knows it

    @property
    def words(self) -> str:
        return fallback_name(bytes.fromhex(self.member_id))


@dataclass(frozen=True)
class NamedDevice:
    device_id: str  # hex: shown only in technical details
    label: str  # "this device", "another of your devices", "Bob's device"


class Names:
    """The names of one thread's members, read once; any member key, also of a former member
    or one this node never heard of, gets a name."""

    def __init__(
        self,
        *,
        me: str,
        own: dict[str, str],
        contacts: dict[str, str],
        devices: dict[str, str],
        this_device: str,
        me_as: str | None = None,
    ) -> None:
        self.me = me
        self.me_as = me_as
        self._own = own
        self._contacts = contacts
        self._devices = devices  # device (hex) -> the member it acts for (hex)
        self.this_device = this_device
        self._shown = _disambiguated(
            {m: self._plain(m) for m in {*own, *contacts, *devices.values(), me}},
            set(contacts),
        )

    def _plain(self, member: str) -> str:
        return self._contacts.get(member) or self._own.get(member) or _fallback_hex(member)

    def __getitem__(self, member: str) -> str:
        if member == self.me and self.me_as is not None:
            return self.me_as
        return self._shown.get(member) or self._plain(member)

    def get(self, member: str | None, default: str) -> str:
        """The name of ``member``, or ``default`` when it is not a member key at all."""
        return self[member] if member and _key(member) is not None else default

    def person(self, member: str, role: str = "") -> Person:
        return Person(
            member_id=member,
            name=self[member],
            own_name=self._own.get(member, ""),
            contact_name=self._contacts.get(member, ""),
            is_me=member == self.me,
            role=role,
        )

    def people(self, roles: Iterable[tuple[str, str]]) -> list[Person]:
        """(member, role) pairs as people: this node's member first, then by name."""
        found = [self.person(member, role) for member, role in roles]
        return sorted(found, key=lambda p: (not p.is_me, p.name.casefold(), p.member_id))

    def devices(self, devices: Iterable[str]) -> list[NamedDevice]:
        """Devices (hex) in words: this one first, then this person's others, then by name."""
        found = [NamedDevice(device, self.device(device)) for device in devices]
        order = {THIS_DEVICE: 0, MY_OTHER_DEVICE: 1}
        return sorted(found, key=lambda d: (order.get(d.label, 2), d.label.casefold(), d.device_id))

    def devices_of(self, member: str) -> list[str]:
        """The active devices (hex) of ``member``."""
        return [device for device, owner in self._devices.items() if owner == member]

    def device(self, device: str) -> str:
        """A device in words: this node's, another of this person's, or whose it is."""
        if device == self.this_device:
            return THIS_DEVICE
        member = self._devices.get(device)
        if member is None:
            return "a device no longer in the thread"
        if member == self.me:
            return MY_OTHER_DEVICE
        return f"{self[member]}'s device"


def _key(member: str) -> bytes | None:
    try:
        key = bytes.fromhex(member)
    except ValueError:
        return None
    return key if len(key) == 32 else None


def _fallback_hex(member: str) -> str:
    key = _key(member)
    return "someone" if key is None else fallback_name(key)


def _disambiguated(shown: dict[str, str], contacts: set[str]) -> dict[str, str]:
    """``shown`` with the words added to a self-chosen name that another member shows too."""
    seen: dict[str, int] = {}
    for name in shown.values():
        seen[name.casefold()] = seen.get(name.casefold(), 0) + 1
    return {
        member: (
            f"{name} ({_fallback_hex(member)})"
            if seen[name.casefold()] > 1 and member not in contacts
            else name
        )
        for member, name in shown.items()
    }


def _contact_names(thread_id: str) -> dict[str, str]:
    # Every page and answer that shows a member reads these: plain SQL (the ORM's query
    # building cost more than the read).
    meta = ContactName._meta
    with connections[router.db_for_read(ContactName)].cursor() as cursor:
        cursor.execute(
            f'SELECT "member_id", "name" FROM "{meta.db_table}" WHERE "thread_id" = %s',
            [thread_id],
        )
        return dict(cursor.fetchall())


def thread_names(thread: Thread, *, me_as: str | None = None) -> Names:
    """The names of ``thread``'s members, as this node shows them now; ``me_as``: what to call
    this node's own member instead of its name ("you")."""
    own: dict[str, str] = {}
    devices: dict[str, str] = {}
    this_device = ""
    if thread.state in _HAS_LOG:
        database = thread_database(thread.thread)
        with database.lock:
            state = database.replica().control.state
            own = {member.hex(): name for member, name in state.names.items()}
            devices = {d.hex(): s.member.hex() for d, s in state.devices.items() if s.active}
        this_device = bytes(database.node.device.verify_key).hex()
    contacts = _contact_names(thread.id)
    return Names(
        me=thread.member_id,
        own=own,
        contacts=contacts,
        devices=devices,
        this_device=this_device,
        me_as=me_as,
    )
