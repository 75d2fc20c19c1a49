"""What a member's node does on its own for challenges (``DutyWorker``): when ops arrive in a
thread with the identity app, a side of a challenge (its challenger or its defendant) writes the
outcome once the judges' majority or the closed poll decides it and nobody wrote it yet
(``services.outcomes_due``). Any member's outcome is as good: the rules check it against the
judgements or the poll, so the first one ordered stands and later ones are refused.

Only ops that wrote identity or voting rows can decide a challenge (a judgement, an accept, a
poll's ballots or close), so the duty (and the voting app's poll check it makes) runs only after
such ops. Which rows the new ops wrote comes from ``changes_since``: one look per run of the
duty, however many ops the run covers, and none in whoever wrote them. When that cannot be told
(the first run in this process, a control op, a catch-up), the duty runs."""

from __future__ import annotations

import threading

from apps.core.models import Thread
from apps.core.thread.state import ThreadState
from apps.core.threads.changes import Mark, changes_since
from apps.core.threads.duty_worker import DutyWorker
from apps.core.threads.registry import thread_database

# The tables whose rows can decide a challenge (the voting app's: a challenge's poll).
DECIDING = ("identity_", "voting_")

_marks: dict[bytes, Mark] = {}  # per thread: the log position the duty last looked from
_marks_lock = threading.Lock()


def _has_identity(state: ThreadState) -> bool:
    from apps.identity.policy import APP

    return APP in state.apps


def _deciding(thread: Thread) -> bool:
    """Whether the ops since the last run wrote rows that can decide a challenge (or that
    cannot be told); remembers where this run looked from."""
    key = thread.thread
    with _marks_lock:
        mark = _marks.get(key)
    changes = changes_since(thread_database(key), mark)
    with _marks_lock:
        _marks[key] = changes.mark
    if changes.rows is None:
        return True
    return any(table.startswith(DECIDING) for table, _pk in changes.rows)


def _duty(thread: Thread) -> None:
    from apps.identity import services

    if not _deciding(thread):
        return
    try:
        services.outcomes_due(thread=thread)
    except Exception:
        with _marks_lock:  # not done: the next run does it whatever its ops wrote
            _marks.pop(thread.thread, None)
        raise


def forget() -> None:
    """Run the duty at the next ops whatever they wrote (tests; a node starting afresh)."""
    with _marks_lock:
        _marks.clear()


# A moment's settling: the judgement or close that decided a challenge is pushed on first.
worker = DutyWorker("identity-duties", _has_identity, _duty, settle_s=0.05)
on_ops_written = worker.on_ops_written


def install() -> None:
    """Connect the duties (called once, from ``IdentityConfig.ready``)."""
    from apps.core.threads.signals import ops_written

    ops_written.connect(on_ops_written, dispatch_uid="identity-duties")
