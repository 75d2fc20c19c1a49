"""What the p2p layer needs from this node's threads: plain, synchronous Django calls.

The libp2p host runs in its own (trio) thread and calls these through ``SereusNode.db``, in a
small pool of worker threads, so the event loop never waits on the database. Writes go through
the thread services; reads of a replica's in-memory state hold the thread database's lock, since
another worker thread may be ingesting into it.

A sync flight (``flight``, read in ``flight_io``) carries, besides the ops the peer lacks by
its version vector, the ops that show it a fork it does not know (``fork_news``): this node's
op at a device's head when the peer holds another op at that same seq, and this node's evidence
of each fork the peer does not list. Those come from the replica's head hashes and fork
records, in memory: an ordinary session, where nothing forked, costs no extra query.

A thread this node left is still synced for one thing, its leave, until another member's device
holds it (``core.threads.leaving``): the member devices get what led up to the leave (access
``leaving``, like a departed device's ``until``), and nothing they send is taken in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import connections

from apps.core import plain_reads
from apps.core.models import Thread
from apps.core.thread.op import Op
from apps.core.thread.payloads import Keys
from apps.core.thread.replica import Replica, Verified
from apps.core.threads import leaving, services
from apps.core.threads.database import ThreadDatabaseError

# Served here under these names (the protocols, the mirror's swap and its store use them so):
# reading a flight is ``flight_io``'s, the replica's reads and the access rules ``thread_reads``'.
from apps.p2p.flight_io import NO_FORK as NO_FORK
from apps.p2p.flight_io import Flight as Flight
from apps.p2p.flight_io import capped
from apps.p2p.flight_io import flight_after as flight_after
from apps.p2p.flight_io import fork_news as fork_news
from apps.p2p.flight_io import ops_page as ops_page
from apps.p2p.flight_io import page_pick as page_pick
from apps.p2p.thread_reads import Access as Access
from apps.p2p.thread_reads import allowed as allowed
from apps.p2p.thread_reads import recycle, replica_locked

MAX_ADDRS = 16


@dataclass(frozen=True)
class Peer:
    device: bytes
    addrs: tuple[str, ...]
    # For the device of a member who was removed (or left): the op of that departure, the last
    # thing it may receive. None for active member devices.
    until: Op | None = None


@dataclass(frozen=True)
class ThreadInfo:
    thread: bytes
    member: bool  # this node is an active member
    peers: tuple[Peer, ...]  # the other active member devices
    vv: dict[bytes, int] = field(default_factory=dict)
    my_addrs: tuple[str, ...] = ()
    # For a thread this node left: its leave, which the peers are still to get (each peer's
    # ``until``).
    leaving: Op | None = None


# Asked on every session and push (both sides), so in plain SQL: building and compiling the
# ORM's query cost ten times running it (``exists()``: 650 against 56 us of CPU, measured
# on a loaded machine; the row for an ingest: 850-1 000 against 210-260 us).
_ACTIVE_WHERE = '"id" = %s AND "state" = %s'
_ACTIVE_SQL = f'SELECT 1 FROM "{Thread._meta.db_table}" WHERE {_ACTIVE_WHERE}'  # noqa: S608


def _active(thread: bytes) -> bool:
    with connections["default"].cursor() as cursor:
        cursor.execute(_ACTIVE_SQL, [thread.hex(), Thread.State.ACTIVE])
        return cursor.fetchone() is not None


def _active_row(thread: bytes) -> Thread | None:
    return plain_reads.first(Thread, _ACTIVE_WHERE, [thread.hex(), Thread.State.ACTIVE])


def thread_ids() -> list[bytes]:
    """The threads this node syncs: the ones it is in, and the ones it left while its leave has
    not reached another member's device yet."""
    try:
        active = Thread.objects.filter(state=Thread.State.ACTIVE)
        ids = [bytes.fromhex(pk) for pk in active.values_list("pk", flat=True)]
        return ids + leaving.leaves_pending()
    finally:
        recycle()


def _leave(thread: bytes) -> Op | None:
    """This node's leave of ``thread`` while it has to reach another member's device."""
    member = leaving.leave_pending(thread)
    if member is None:
        return None
    with replica_locked(thread) as (_database, replica):
        return leaving.leave_op(replica, member)


def _leaving_info(thread: bytes, my_device: bytes, leave: Op) -> ThreadInfo:
    """A thread this node left: the member devices (as this node last knew them), each to get
    the leave."""
    with replica_locked(thread) as (_database, replica):
        state = replica.control.state
        peers = tuple(
            Peer(device, tuple(state.addresses.get(device, ()))[:MAX_ADDRS], leave)
            for device in sorted(state.devices)
            if device != my_device and state.device_member(device) is not None
        )
        return ThreadInfo(thread, False, peers, replica.version_vector(), leaving=leave)


def thread_info(thread: bytes, my_device: bytes) -> ThreadInfo | None:
    """Who else to sync ``thread`` with, and where they said they are (None for a thread this
    node is not in)."""
    try:
        if not _active(thread):
            leave = _leave(thread)
            return None if leave is None else _leaving_info(thread, my_device, leave)
        with replica_locked(thread) as (_database, replica):
            state = replica.control.state
            peers = []
            for device in sorted(state.devices):
                if device == my_device:
                    continue
                addrs = tuple(state.addresses.get(device, ()))[:MAX_ADDRS]
                if state.device_member(device) is not None:
                    peers.append(Peer(device, addrs))
                elif (departure := _departure(replica, device)) is not None:
                    peers.append(Peer(device, addrs, departure))
            return ThreadInfo(
                thread,
                state.device_member(my_device) is not None,
                tuple(peers),
                replica.version_vector(),
                tuple(state.addresses.get(my_device, ())),
            )
    except ThreadDatabaseError:
        return None
    finally:
        recycle()


def access(thread: bytes, device: bytes) -> tuple[Access, Op | None]:
    """What a device may receive of a thread: everything (an active member's device), or what
    led up to its member's removal (so it learns it was removed), or nothing.

    Unknown threads and non-members get the same answer: nothing, so a stranger cannot even
    learn whether this node has the thread.
    """
    try:
        if not _active(thread):
            leave = _leave(thread)
            if leave is None:
                return "none", None
            with replica_locked(thread) as (_database, replica):
                if replica.control.state.device_member(device) is None:
                    return "none", None
            return "leaving", leave
        with replica_locked(thread) as (_database, replica):
            return _member_access(replica, device)
    except ThreadDatabaseError:
        return "none", None
    finally:
        recycle()


def _member_access(replica: Replica, device: bytes) -> tuple[Access, Op | None]:
    """A device's access to an active thread."""
    if replica.control.state.device_member(device) is not None:
        return "full", None
    departure = _departure(replica, device)
    return ("until", departure) if departure is not None else ("none", None)


def accesses(thread: bytes, devices: list[bytes]) -> list[tuple[Access, Op | None]]:
    """``access`` of several devices of one thread (a push to many): whether the thread is
    active is read once, and the replica looked at once, not once per device."""
    try:
        if not _active(thread):
            return [access(thread, device) for device in devices]  # leaving: rare and small
        with replica_locked(thread) as (_database, replica):
            return [_member_access(replica, device) for device in devices]
    except ThreadDatabaseError:
        return [("none", None)] * len(devices)
    finally:
        recycle()


def member_of(thread: bytes, device: bytes) -> bytes | None:
    """The member an active device of ``thread`` acts for; None for anyone else."""
    try:
        if not _active(thread):
            return None
        with replica_locked(thread) as (_database, replica):
            return replica.control.state.device_member(device)
    except ThreadDatabaseError:
        return None
    finally:
        recycle()


def _departure(replica: Replica, device: bytes) -> Op | None:
    """The op that removed (or let leave) the member a device acted for, if that is why the
    device is no longer active; None for a stranger or a revoked device of a current member."""
    state, timeline = replica.control.state, replica.control.timeline
    events = timeline.device_events.get(device)
    if not events:
        return None
    member = next((m for _op, m in reversed(events) if m is not None), None)
    if member is None or state.role_of(member) is not None:
        return None
    removals = [op for op, role in timeline.member_events.get(member, ()) if role is None]
    return removals[-1] if removals else None


def flight(
    thread: bytes,
    their_vv: dict[bytes, int] | None,
    grant: Access,
    removal: Op | None,
    *,
    limit_bytes: int,
    limit_ops: int,
    their_heads: dict[bytes, bytes] | None = None,
    their_forks: dict[bytes, int] | None = None,
    sent: dict[bytes, int] | None = None,
) -> Flight:
    """This node's vector, the ops that show the peer a fork (``fork_news``, only when the
    peer's forks are known: its vector came in this session) and the first page of
    ``ops_page``, in one call (one trip to a worker thread).

    ``sent``: per device, the last op this session sent the peer already, where the peer's
    vector has not moved since; it is not sent again (the peer could not take it: it holds
    another op at one of those places, or has dropped it for now)."""
    try:
        with replica_locked(thread) as (_database, replica):
            mine = replica.version_vector()
            heads = dict(replica.head_hashes)
            forks = dict(replica.forks)
            news = []
            if their_vv is not None and their_forks is not None:
                news = fork_news(replica, their_vv, their_heads or {}, their_forks, grant, removal)
    finally:
        recycle()
    page: list[bytes] = []
    cursor: dict[bytes, int] = {}
    after: dict[bytes, int] = {}
    if their_vv is not None:
        after = flight_after(their_vv, sent)
        page, cursor = ops_page(
            thread, after, grant, removal, limit_bytes=limit_bytes, limit_ops=limit_ops
        )
    news = capped(news, limit_ops, limit_bytes)
    return Flight(page, cursor, mine, heads, forks, news, after)


def opening(
    thread: bytes,
    device: bytes,
    their_vv: dict[bytes, int] | None,
    *,
    limit_bytes: int,
    limit_ops: int,
) -> tuple[Access, Op | None, Flight | None]:
    """What starting a sync session with ``device`` needs: its access, and the first flight
    (None when it may have nothing)."""
    grant, removal = access(thread, device)
    if grant == "none":
        return grant, removal, None
    return (
        grant,
        removal,
        flight(thread, their_vv, grant, removal, limit_bytes=limit_bytes, limit_ops=limit_ops),
    )


@dataclass(frozen=True)
class Ingested:
    accepted: int
    refused: int
    pending: int
    malformed: int
    other: int  # duplicates, forks, dropped (too much waiting); everything when the thread is gone
    foreign: int = 0  # ops of another thread
    unknown: int = 0  # ops of a device not certified in their causal past: not kept
    held: int = 0  # stamped too far ahead of this node's clock: not kept (an honest fast clock)

    @property
    def junk(self) -> int:
        """Ops no honest peer sends: they do not verify, or belong to no device or thread here."""
        return self.malformed + self.foreign + self.unknown


_COUNTED = ("accepted", "refused", "pending", "malformed", "foreign", "unknown", "held")


def ingest(thread: bytes, raws: list[bytes] | Verified) -> Ingested:
    """Ops from a peer, validated and applied (``services.thread_ingest``)."""
    try:
        row = _active_row(thread)
        if row is None:
            return Ingested(0, 0, 0, 0, len(raws.items if isinstance(raws, Verified) else raws))
        results = services.thread_ingest(thread=row, raws=raws)
    finally:
        recycle()
    counts = dict.fromkeys(_COUNTED, 0)
    for result in results:
        if result.status in counts:
            counts[result.status] += 1
    return Ingested(**counts, other=len(results) - sum(counts.values()))


def keys_sealed_to(thread: bytes, member: bytes) -> list[bytes]:
    """The newest accepted keys op sealed to ``member`` (its box also grants the older keys a
    newcomer may have), to send a joining node before the log."""
    try:
        with replica_locked(thread) as (_database, replica):
            control = replica.control
            for op in reversed(control.order):
                action = control.actions.get(op.hash)
                if isinstance(action, Keys) and member in action.seals:
                    return [op.raw]
    finally:
        recycle()
    return []


def version_vector(thread: bytes) -> dict[bytes, int]:
    try:
        with replica_locked(thread) as (_database, replica):
            return replica.version_vector()
    finally:
        recycle()


def addresses_publish(thread: bytes, addrs: list[str]) -> bool:
    """Write this device's addresses into the thread if they changed."""
    try:
        row = Thread.objects.filter(pk=thread.hex(), state=Thread.State.ACTIVE).first()
        if row is None:
            return False
        return services.addresses_set(thread=row, addrs=tuple(addrs[:MAX_ADDRS]))
    except services.ThreadServiceError:
        return False
    finally:
        recycle()


# -- a mirror's store in place of the thread databases --------------------------------------------
# A node started as a mirror (``settings.SEREUS.mirror``) keeps its parties' ops as ciphertext
# (``apps.cadre.mirror_store``): it has no thread databases and no keys. Its p2p node syncs that
# store through the same calls as any node: ``use(apps.p2p.mirror_io)``, once at start-up, rebinds
# this module's functions below to the mirror's. The protocols look them up here at call time
# (``threads_io.flight``), so nothing else changes (``opening`` calls the ``access`` and ``flight``
# in use); ``use(None)`` puts back the originals (tests).
SWAPPED = (
    "thread_ids",
    "thread_info",
    "access",
    "accesses",
    "member_of",
    "ops_page",
    "flight",
    "ingest",
    "keys_sealed_to",
    "version_vector",
    "addresses_publish",
)
_originals: dict[str, object] = {}


def use(module: object | None) -> None:
    """Serve ``module``'s functions (those named in ``SWAPPED``) in place of this module's own;
    None: this module's own again."""
    found = globals()
    if not _originals:
        _originals.update({name: found[name] for name in SWAPPED})
    found.update(
        _originals if module is None else {name: getattr(module, name) for name in SWAPPED}
    )


def in_use() -> str:
    """Which store this module serves now: "threads" or the module's name."""
    current = globals()["flight"]
    return "threads" if not _originals or current is _originals["flight"] else current.__module__
