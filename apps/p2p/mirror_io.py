"""``threads_io`` for a mirror: the same calls, over the mirror's ciphertext store
(``apps.cadre.mirror_store``) instead of thread databases. ``install()`` makes the p2p node use
them (``threads_io.use``), once at start-up on a node started with ``SEREUS_MIRROR=on``.

What a sync session sees of a mirror: it is an active device of each thread it keeps (its party
certified it there), its peers are the thread's member devices the party listed (the roster of
``MIRROR assign``, with their addresses), and those devices, and nobody else, get everything it
holds. It never writes an op of its own (no keys), so it publishes no addresses, seals no keys,
relays no typing, and forks it refused stay refused (it reports none).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connections

from apps.cadre import mirror_store
from apps.cadre.models import MirrorThread
from apps.core.thread.op import Op
from apps.core.thread.replica import Verified
from apps.p2p import threads_io
from apps.p2p.threads_io import MAX_ADDRS, Access, Flight, Ingested, Peer, ThreadInfo


def install() -> None:
    """Serve the mirror's store to the p2p node (idempotent)."""
    threads_io.use(sys.modules[__name__])


@contextmanager
def _recycled() -> Iterator[None]:
    # Worker threads live long: a server database connection past its age is replaced (as
    # ``threads_io`` does; SQLite's just stays open).
    try:
        yield
    finally:
        default = connections["default"]
        if default.vendor != "sqlite":
            default.close_if_unusable_or_obsolete()


def _roster(row: MirrorThread) -> dict[bytes, tuple[str, ...]]:
    """The devices that may fetch the thread and their addresses (malformed entries skipped:
    the roster was checked when it came, this is only care)."""
    out: dict[bytes, tuple[str, ...]] = {}
    for entry in row.roster or []:
        try:
            device = bytes.fromhex(entry["device"])
            addrs = tuple(str(a) for a in entry.get("addrs", ()))[:MAX_ADDRS]
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
        if len(device) == 32:
            out[device] = addrs
    return out


def _row(thread: bytes) -> MirrorThread | None:
    return MirrorThread.objects.filter(thread_id=thread.hex()).first()


def _own_addrs() -> tuple[str, ...]:
    from apps.p2p import client

    try:
        return tuple(client.NetworkClient().addresses())[:MAX_ADDRS]
    except Exception:  # no p2p state yet
        return ()


def thread_ids() -> list[bytes]:
    with _recycled():
        return [bytes.fromhex(pk) for pk in MirrorThread.objects.values_list("pk", flat=True)]


def thread_info(thread: bytes, my_device: bytes) -> ThreadInfo | None:
    with _recycled():
        row = _row(thread)
        if row is None:
            return None
        peers = tuple(
            Peer(device, addrs)
            for device, addrs in sorted(_roster(row).items())
            if device != my_device
        )
        # ``my_addrs`` as the node has them: it never tries to publish (it cannot write).
        return ThreadInfo(thread, True, peers, mirror_store.version_vector(thread), _own_addrs())


def access(thread: bytes, device: bytes) -> tuple[Access, Op | None]:
    """Everything for a device of the roster; nothing, the same answer as for a thread not
    kept here, for anyone else."""
    with _recycled():
        row = _row(thread)
        if row is None or device not in _roster(row):
            return "none", None
        return "full", None


def accesses(thread: bytes, devices: list[bytes]) -> list[tuple[Access, Op | None]]:
    with _recycled():
        row = _row(thread)
        roster = {} if row is None else _roster(row)
    return [("full", None) if device in roster else ("none", None) for device in devices]


def member_of(thread: bytes, device: bytes) -> bytes | None:
    """None: a mirror shows no pages, so it takes no typing signals."""
    return None


def ops_page(
    thread: bytes,
    after: dict[bytes, int],
    grant: Access,
    removal: Op | None,
    *,
    limit_bytes: int,
    limit_ops: int,
) -> tuple[list[bytes], dict[bytes, int]]:
    if grant != "full":
        return [], after
    with _recycled():
        return mirror_store.ops_missing(thread, after, limit_ops=limit_ops, limit_bytes=limit_bytes)


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
    """As ``threads_io.flight``, with no fork news: a fork the mirror saw, it refused (and says
    it knows, so the peer does not send its evidence again)."""
    with _recycled():
        found = mirror_store.heads(thread)
        forks = mirror_store.forks(thread)
    mine = {device: seq for device, (seq, _hash) in found.items()}
    hashes = {device: digest for device, (_seq, digest) in found.items()}
    page: list[bytes] = []
    cursor: dict[bytes, int] = {}
    after: dict[bytes, int] = {}
    if their_vv is not None:
        after = threads_io.flight_after(their_vv, sent)
        page, cursor = ops_page(
            thread, after, grant, removal, limit_bytes=limit_bytes, limit_ops=limit_ops
        )
    return Flight(page, cursor, mine, hashes, forks, [], after)


def _from_party(thread: bytes, device: bytes) -> bool:
    """Whether ``device`` is one of the thread's party's own devices (in the roster of the
    party's control thread here)."""
    row = _row(thread)
    if row is None:
        return False
    control = MirrorThread.objects.filter(party_id=row.party_id, control=True).first()
    return control is not None and device in _roster(control)


def ingest(thread: bytes, raws: list[bytes] | Verified) -> Ingested:
    """Ops from a peer in a sync session (``sync._ingest`` says which: ``client.received``).
    The party's own devices are trusted with any op that verifies; other member devices pass
    on only ops of devices known in the thread (``mirror_store``). New ops are passed on to
    every other device of the roster (a mirror is how they reach each other)."""
    from apps.p2p import client

    source = getattr(client.received, "source", None)
    device = source[0] if source else None
    if device is not None:
        # Not "pushed by its author": the node then passes the ops on to every device.
        client.received.source = (device, False)
    with _recycled():
        trusted = device is not None and _from_party(thread, device)
        counts = mirror_store.ingest(thread, raws, trusted=trusted)
    return Ingested(
        accepted=counts.accepted,
        refused=0,
        pending=counts.held,
        malformed=counts.malformed,
        other=counts.duplicate + counts.refused + counts.dropped,
        foreign=counts.foreign,
    )


def keys_sealed_to(thread: bytes, member: bytes) -> list[bytes]:
    return []  # a mirror has no keys op of its own to send a newcomer first: the log has them


def version_vector(thread: bytes) -> dict[bytes, int]:
    with _recycled():
        return mirror_store.version_vector(thread)


def addresses_publish(thread: bytes, addrs: list[str]) -> bool:
    return False  # an address op is a control op, sealed with a key a mirror never has
