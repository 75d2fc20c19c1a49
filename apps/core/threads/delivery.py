"""Which of a thread's other member devices hold a write: "delivered / not yet" for an offer, a
bid or a deal step (issue 15 §6, ADR 22), without knowing any app.

Every sync session carries each side's version vector: per device of the thread, the last seq it
holds. A device's ops travel in order, so a device whose vector says ``seq`` for device ``d``
holds every op of ``d`` up to ``seq``. The p2p node keeps what each member device last said
(``SyncSessions.vv_seen``) and writes it to the node database a moment later, coalesced
(``vectors_save``, ``delivery_models.PeerVector``); this module reads it back for pages and the
API, in any process.

A row is held by a device when that device holds every accepted write of the row this node has
(its row events), so the version it holds is the one this node shows; its author device holds
its own write whatever its last vector said. "Not yet" means "not as far as this node heard":
the device may have it from someone else meanwhile, which the next session with it tells.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import connections, transaction

from apps.core.delivery_models import PeerVector
from apps.core.models import Thread
from apps.core.threads.names import thread_names
from apps.core.threads.registry import thread_database

OpId = tuple[bytes, int]  # (device, seq)
Vector = Mapping[bytes, int]


@dataclass(frozen=True)
class Holder:
    """One other member device of a thread, and whether it holds the write asked about."""

    member: bytes
    device: bytes
    name: str  # the device in words: "Ann's device", "another of your devices (2 of 3)"
    holds: bool
    seen_at: datetime | None  # when this node last heard its vector (None: never)
    member_name: str = ""  # the member in words ("Ann")


# -- written by the p2p node -------------------------------------------------------------------


def vectors_save(entries: Iterable[tuple[bytes, bytes, Vector]], at: float | None = None) -> int:
    """Keep the vectors member devices said (thread, device, vector), all in one transaction;
    threads this node does not have are passed over. Returns how many were written."""
    try:
        seen_at = datetime.fromtimestamp(at, tz=UTC) if at is not None else datetime.now(tz=UTC)
        latest = {(thread.hex(), device.hex()): vv for thread, device, vv in entries}
        known = set(
            Thread.objects.filter(pk__in={thread for thread, _ in latest}).values_list(
                "pk", flat=True
            )
        )
        rows = [
            PeerVector(
                thread_id=thread,
                device_id=device,
                vv={dev.hex(): seq for dev, seq in vv.items()},
                seen_at=seen_at,
            )
            for (thread, device), vv in latest.items()
            if thread in known
        ]
        with transaction.atomic():
            PeerVector.objects.bulk_create(
                rows,
                update_conflicts=True,
                unique_fields=["thread", "device_id"],
                update_fields=["vv", "seen_at"],
            )
        return len(rows)
    finally:
        # The p2p node's worker threads live long: a server database connection past its age
        # is replaced (SQLite's just stays open), as ``p2p.threads_io`` does.
        default = connections["default"]
        if default.vendor != "sqlite":
            default.close_if_unusable_or_obsolete()


# -- read by pages and the API -------------------------------------------------------------------


def covers(vv: Vector, op: OpId) -> bool:
    """Whether a device whose vector is ``vv`` holds op ``op``."""
    device, seq = op
    return vv.get(device, 0) >= seq


def holds(device: bytes, vv: Vector | None, writes: Iterable[OpId]) -> bool:
    """Whether ``device`` holds every write of ``writes``: its own, or covered by its vector."""
    return all(author == device or covers(vv or {}, (author, seq)) for author, seq in writes)


def row_delivery(
    thread: Thread, table: str, pk: Any, *, members: Iterable[bytes] | None = None
) -> list[Holder]:
    """For every other active member device of ``thread`` (of ``members`` only, if given),
    whether it holds the row ``table``/``pk`` as this node has it. Empty when this node holds
    no accepted write of that row."""
    return rows_delivery(thread, table, [pk], members=members).get(_pk(pk), [])


def rows_delivery(
    thread: Thread, table: str, pks: Iterable[Any], *, members: Iterable[bytes] | None = None
) -> dict[Any, list[Holder]]:
    """``row_delivery`` of several rows of one table at once (a list page): one read of the
    vectors and the names. Keys are the pks as stored (a row id in 32 hex digits)."""
    wanted = list(dict.fromkeys(_pk(pk) for pk in pks))
    if not wanted:
        return {}
    marks = ", ".join("?" * len(wanted))
    events = (
        thread_database(thread.thread)
        .raw()
        .execute(
            f"SELECT pk, device, seq FROM sereus_rowevents WHERE tbl = ? AND pk IN ({marks})",
            (table, *wanted),
        )
        .fetchall()
    )
    writes: dict[Any, list[OpId]] = {}
    for pk, device, seq in events:
        writes.setdefault(pk, []).append((bytes(device), seq))
    devices = _Devices(thread, members)
    return {pk: devices.holders(ops) for pk, ops in writes.items()}


def op_delivery(
    thread: Thread, op_hash: bytes, *, members: Iterable[bytes] | None = None
) -> list[Holder]:
    """For every other active member device of ``thread`` (of ``members`` only, if given),
    whether it holds the op ``op_hash``. Empty when the op is not in this node's log."""
    found = (
        thread_database(thread.thread)
        .raw()
        .execute("SELECT device, seq FROM sereus_ops WHERE hash = ? AND place = 'log'", (op_hash,))
        .fetchone()
    )
    if found is None:
        return []
    return _Devices(thread, members).holders([(bytes(found[0]), found[1])])


def delivered(holders: Iterable[Holder]) -> bool:
    """Whether every device listed holds it (True for none listed: nobody to deliver to)."""
    return all(holder.holds for holder in holders)


def delivery_words(holders: list[Holder]) -> str:
    """What a page says under a write: "delivered to Ann's device", "not yet on Bob's device"."""
    if not holders:
        return "no other device to deliver to"
    have = [h.name for h in holders if h.holds]
    lack = [h.name for h in holders if not h.holds]
    parts = []
    if have:
        parts.append("delivered to " + _listed(have))
    if lack:
        parts.append("not yet on " + _listed(lack))
    words = "; ".join(parts)
    return words[0].upper() + words[1:]


def _listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _pk(pk: Any) -> Any:
    """A row id as ``sereus_rowevents`` stores it: 32 lower-case hex digits."""
    if isinstance(pk, uuid.UUID):
        return pk.hex
    if isinstance(pk, str):
        try:
            return uuid.UUID(pk).hex
        except ValueError:
            return pk
    return pk


class _Devices:
    """The other active member devices of a thread, named, with their last vectors: read once
    for any number of writes."""

    def __init__(self, thread: Thread, members: Iterable[bytes] | None) -> None:
        database = thread_database(thread.thread)
        me = bytes(database.node.device.verify_key)
        only = None if members is None else set(members)
        with database.lock:
            state = database.replica().control.state
            found = {
                device: member
                for device in state.devices
                if device != me and (member := state.device_member(device)) is not None
            }
        names = thread_names(thread)
        rows = PeerVector.objects.filter(thread=thread, device_id__in=[d.hex() for d in found])
        vectors = {bytes.fromhex(row.device_id): row for row in rows}
        self.vectors = {
            device: {bytes.fromhex(dev): seq for dev, seq in row.vv.items()}
            for device, row in vectors.items()
        }
        self.seen = {device: row.seen_at for device, row in vectors.items()}
        self.devices: list[tuple[bytes, bytes, str, str]] = []  # device, member, name, member's
        by_member: dict[bytes, list[bytes]] = {}
        for device, member in sorted(found.items()):
            by_member.setdefault(member, []).append(device)
        for member, devices in by_member.items():
            if only is not None and member not in only:
                continue
            for index, device in enumerate(devices, 1):
                label = names.device(device.hex())
                if len(devices) > 1:
                    label = f"{label} ({index} of {len(devices)})"
                self.devices.append((device, member, label, names[member.hex()]))
        self.devices.sort(key=lambda d: (d[3].casefold(), d[2].casefold(), d[0]))

    def holders(self, writes: list[OpId]) -> list[Holder]:
        return [
            Holder(
                member=member,
                device=device,
                name=name,
                holds=holds(device, self.vectors.get(device), writes),
                seen_at=self.seen.get(device),
                member_name=member_name,
            )
            for device, member, name, member_name in self.devices
        ]
