"""This node's own writes on claims that the thread refused after this node had accepted them
(a row from elsewhere ordered first: the claim was withdrawn, the settings moved, ...), as
sentences per claim ("Your word on this claim was refused: ...")."""

from __future__ import annotations

import contextlib
import uuid

from apps.core.models import Thread
from apps.core.threads.context import thread_context
from apps.core.threads.registry import thread_database
from apps.identity.models import Attestation

# What a refused write of this node was, for "Your ... was refused: <reason>."
_REFUSED_WHAT = {
    "identity_claim": "claim",
    "identity_attestation": "word on this claim",
    "identity_retraction": "retraction",
    "identity_challenge": "challenge",
}
REFUSALS_SCANNED = 200


def refused_mine(thread: Thread) -> dict[str, list[str]]:
    """This node's writes on claims that the thread refused after this node had accepted them
    (a row from elsewhere ordered first: the claim was withdrawn, the settings moved, ...), as
    sentences per claim id. Reads the newest refused writes only."""
    from apps.core.threads import writes

    database = thread_database(thread.thread)
    page = writes.writes_list(database, state="refused", limit=REFUSALS_SCANNED)
    # The claims of the attestations refused retractions name: only those rows (every
    # attestation of the thread was read here on each read of a claim).
    named = set()
    for write in page.writes:
        for change in write.changes or ():
            if change.table == "identity_retraction":
                with contextlib.suppress(ValueError, TypeError, AttributeError):
                    named.add(uuid.UUID(hex=str(change.values.get("attestation", ""))))
    of_attestation: dict[str, str] = {}
    if named:
        with thread_context(thread.thread):
            rows = Attestation.objects.filter(pk__in=named).values_list("id", "claim")
            of_attestation = {a.hex: c.hex for a, c in rows}
    found: dict[str, list[str]] = {}
    for write in page.writes:
        reason = write.reason.removeprefix("refused: ")
        table, _sep, said = reason.partition(": ")
        for change in write.changes or ():
            what = _REFUSED_WHAT.get(change.table)
            if what is None:
                continue
            values = change.values
            claim = {
                "identity_claim": str(change.row),
                "identity_attestation": str(values.get("claim", "")),
                "identity_challenge": str(values.get("claim") or ""),
                "identity_retraction": of_attestation.get(str(values.get("attestation", "")), ""),
            }[change.table]
            if claim:
                words = said if table == change.table else writes.refusal_text(write.refusal)
                found.setdefault(claim, []).append(f"Your {what} was refused: {words}.")
    return found
