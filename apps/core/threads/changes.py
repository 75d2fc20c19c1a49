"""Which rows a thread's newest log ops wrote: for an index an app keeps beside the thread (a
feed, balances) to follow it without reading everything again after every op.

The mark is the thread log's position (``sereus_ops.n`` grows as ops enter the log) and the
number of undecided ops there at that time. Ops after the mark name their rows through
``sereus_rowevents`` (one event per row an accepted op wrote). That is the whole story only while
nothing older changed its outcome, so the answer is "read everything again" (``rows`` None) when:

- there is no mark yet (this process has not read the thread);
- a new op is not a data op: a control op (a removal, a role, a key) can refuse ops already in
  the log, and a fork or rejoin can too;
- the number of undecided ops changed: an opaque op opened or a waiting one was decided, and
  its rows were written without a new log position;
- more ops arrived than ``limit`` (a catch-up: reading again is cheaper than following).

Anything else that rewrites old outcomes (a fork proof, a rebuild of the row events) shows in
none of these; an index that must never lag should also read everything again now and then.
Reads only, on the thread database's own connection (committed data).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import connections

if TYPE_CHECKING:
    from apps.core.threads.database import ThreadDatabase

Mark = tuple[int, int]  # (log position, undecided ops then)
RowKey = tuple[str, Any]  # (table, pk)


@dataclass(frozen=True)
class Changes:
    mark: Mark  # pass it back next time
    rows: frozenset[RowKey] | None  # rows the new ops wrote; None: read everything again


def changes_since(database: ThreadDatabase, mark: Mark | None, *, limit: int = 256) -> Changes:
    with connections[database.alias].cursor() as cursor:
        # The later reads stop at this position: the rows are those of exactly these ops.
        cursor.execute(
            "SELECT coalesce(max(n), 0),"
            " (SELECT count(*) FROM sereus_ops"
            "   WHERE status IN ('opaque', 'waiting') AND kind = 'data' AND place = 'log')"
            " FROM sereus_ops"
        )
        last, undecided = cursor.fetchone()
        now: Mark = (int(last), int(undecided))
        if mark is None or now[1] != mark[1] or now[0] < mark[0]:
            return Changes(now, None)
        if now[0] == mark[0]:
            return Changes(now, frozenset())
        cursor.execute(
            "SELECT count(*), coalesce(sum(kind != 'data'), 0) FROM sereus_ops"
            " WHERE n > %s AND n <= %s AND place = 'log'",
            [mark[0], now[0]],
        )
        count, other = cursor.fetchone()
        if other or count > limit:
            return Changes(now, None)
        cursor.execute(
            "SELECT DISTINCT e.tbl, e.pk FROM sereus_ops o"
            " JOIN sereus_rowevents e ON e.device = o.device AND e.seq = o.seq"
            " WHERE o.n > %s AND o.n <= %s AND o.place = 'log'",
            [mark[0], now[0]],
        )
        return Changes(now, frozenset((tbl, pk) for tbl, pk in cursor.fetchall()))
