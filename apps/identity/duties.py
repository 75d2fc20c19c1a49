"""What a member's node does on its own for challenges (``DutyWorker``): when ops arrive in a
thread with the identity app, a side of a challenge (its challenger or its defendant) writes the
outcome once the judges' majority or the closed poll decides it and nobody wrote it yet
(``services.outcomes_due``). Any member's outcome is as good: the rules check it against the
judgements or the poll, so the first one ordered stands and later ones are refused."""

from __future__ import annotations

from apps.core.models import Thread
from apps.core.thread.state import ThreadState
from apps.core.threads.duty_worker import DutyWorker


def _has_identity(state: ThreadState) -> bool:
    from apps.identity.policy import APP

    return APP in state.apps


def _duty(thread: Thread) -> None:
    from apps.identity import services

    services.outcomes_due(thread=thread)


# A moment's settling: the judgement or close that decided a challenge is pushed on first.
worker = DutyWorker("identity-duties", _has_identity, _duty, settle_s=0.05)
on_ops_written = worker.on_ops_written


def install() -> None:
    """Connect the duties (called once, from ``IdentityConfig.ready``)."""
    from apps.core.threads.signals import ops_written

    ops_written.connect(on_ops_written, dispatch_uid="identity-duties")
