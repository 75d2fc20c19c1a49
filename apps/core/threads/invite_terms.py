"""Terms a thread's app attaches to an invite, without the core knowing the app.

A medical record's invite carries a grant (what the newcomer may read and write, from when to
when) that the patient's node writes for whoever redeems it. The core's invites API takes such
terms as an opaque object (``grant``) and hands them to the handler the thread's app registered
in ``AppConfig.ready``::

    invite_terms.register("medical", medical_invite_terms)

A handler creates the invite itself (it knows what else must be kept with it), so it is called
with everything the invite was asked for and answers the ``CreatedInvite``; it refuses in words
with ``ThreadServiceError``. A thread whose app registered no handler takes no terms: they are
refused rather than dropped, so nobody believes a grant was set that was not. An app whose
invites mean nothing without terms registers with ``always=True``: its handler is then called
for every invite the API makes in its threads (``terms`` None when none were given) and may
refuse it or choose the least the newcomer needs.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Protocol

from apps.core.models import Thread
from apps.core.threads import services
from apps.core.threads.services import CreatedInvite, ThreadServiceError


class TermsHandler(Protocol):
    def __call__(
        self,
        *,
        thread: Thread,
        role: str,
        expires_in: timedelta,
        uses: int | None,
        label: str,
        terms: dict[str, Any] | None,
    ) -> CreatedInvite: ...


# App -> its handler; one per app (registering again replaces it, as a reload does).
HANDLERS: dict[str, TermsHandler] = {}
# Apps whose handler makes every invite of their threads, with terms or without.
ALWAYS: set[str] = set()


def register(app: str, handler: TermsHandler, *, always: bool = False) -> None:
    """Let invites in ``app``'s threads carry terms that ``handler`` turns into an invite;
    ``always``: the handler makes them even without terms."""
    HANDLERS[app] = handler
    if always:
        ALWAYS.add(app)
    else:
        ALWAYS.discard(app)


def invite_with_terms(
    *,
    thread: Thread,
    role: str,
    expires_in: timedelta,
    uses: int | None,
    label: str,
    terms: dict[str, Any] | None,
) -> CreatedInvite:
    """An invite of ``thread``: made by its app's handler when ``terms`` are given (or always,
    if it asked), else the core's plain invite. Terms in a thread whose app takes none are
    refused."""
    if terms is None and thread.app not in ALWAYS:
        return services.invite_create(
            thread=thread, role=role, expires_in=expires_in, uses=uses, label=label
        )
    handler = HANDLERS.get(thread.app)
    if handler is None:
        raise ThreadServiceError(
            "invalid", f"invites to {thread.name} take no grant: leave it out of the invite"
        )
    return handler(
        thread=thread, role=role, expires_in=expires_in, uses=uses, label=label, terms=terms
    )
