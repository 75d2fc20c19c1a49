"""What a party's node does in its tallies on its own (``DutyWorker``): the owner signs the
contract once the partner has named themself and signed the terms the owner proposed, and a
chain chit that another chit overtook (written at once on the other side) is sent again on top
of it, or left refused with the reason when it no longer fits the limits."""

from __future__ import annotations

from apps.core.thread.state import ThreadState
from apps.core.threads.duty_worker import DutyWorker


def _is_tally(state: ThreadState) -> bool:
    from apps.ledger.policy import RULES_APP

    return RULES_APP in state.apps


def _duty(thread) -> None:
    from apps.ledger import services

    services.duties(thread=thread)


# Nothing here is waited for by a person at once (the balance shows at the commit): a moment's
# settling keeps the duties out of the way of the payment's push and of the pages.
worker = DutyWorker("ledger-duties", _is_tally, _duty, settle_s=0.03)
on_ops_written = worker.on_ops_written
