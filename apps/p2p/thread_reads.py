"""A thread's replica as the p2p layer's worker threads read it, and what a peer device's
access lets it have (shared by ``threads_io`` and ``flight_io``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from django.db import connections

from apps.core.thread.op import Op
from apps.core.thread.replica import Replica
from apps.core.threads.database import ThreadDatabase
from apps.core.threads.registry import thread_database

# full: an active member's device; until: a departed one's (what led up to its departure);
# leaving: a member device of a thread this node left (what led up to this node's leave, and
# nothing is taken from it); none.
Access = Literal["full", "until", "leaving", "none"]


def recycle() -> None:
    # Worker threads live long: a server database connection past its age or broken is
    # replaced (SQLite connections just stay open, one per worker thread).
    default = connections["default"]
    if default.vendor != "sqlite":
        default.close_if_unusable_or_obsolete()


@contextmanager
def replica_locked(thread: bytes) -> Iterator[tuple[ThreadDatabase, Replica]]:
    """The thread's database and its replica, with the database's lock held: another worker
    thread may be ingesting into it."""
    database = thread_database(thread)
    with database.lock:
        yield database, database.replica()


def allowed(grant: Access, removal: Op | None, device: bytes, seq: int) -> bool:
    """Whether a device with this access may have op (device, seq): everything for an active
    member's device; for a departed one, what is in its departure's causal past and the
    departure itself (for a member device of a thread this node left: its leave's)."""
    if grant == "full":
        return True
    return (
        grant in ("until", "leaving")
        and removal is not None
        and (removal.in_past(device, seq) or (device, seq) == removal.id)
    )
