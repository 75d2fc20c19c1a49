"""What every app in threads needs the same way (``docs/apps.md``): find a thread a page or
the API may use, tell whether an app is enabled in it, write one op through the thread's
database with the replica's refusal turned into an error in words, sign with the member key,
name rows' authors, and map service errors to API statuses. Apps keep only what differs."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import nacl.signing
from django.db import transaction

from apps.core.models import Thread
from apps.core.thread import keys
from apps.core.threads import writes
from apps.core.threads.api_errors import STATUS_OF, ServiceFailed
from apps.core.threads.context import thread_context
from apps.core.threads.database import WriteRefused
from apps.core.threads.registry import thread_database
from apps.core.threads.selectors import thread_find
from apps.core.threads.services import ThreadServiceError

T = TypeVar("T")
# Refusals by the thread's policy (who may write a table at all), not by an app's rules.
POLICY_KINDS = frozenset({"role", "not_owner", "not_member", "not_admitted"})
# Service codes an app's API answers with 409 besides the core's.
APP_STATUS = {**STATUS_OF, "not_enabled": 409, "refused": 409}


def app_thread_find(thread_id: str) -> Thread | None:
    """A thread this node has and did not leave (an app's page or API may show it)."""
    thread = thread_find(thread_id)
    return None if thread is None or thread.state == Thread.State.LEFT else thread


def app_enabled(thread: Thread, app: str) -> bool:
    try:
        state = thread_database(thread.thread).replica().control.state
    except Exception:
        return False
    return app in state.apps


def row_owners(thread: Thread) -> dict[str, str]:
    """Row tag (hex) -> member (hex), for the members this node knows."""
    rows = thread_database(thread.thread).raw().execute("SELECT tag, member FROM sereus_members")
    return {tag: bytes(member).hex() for tag, member in rows}


def app_writable(thread: Thread, app: str, not_enabled: str) -> None:
    """Say plainly, before writing, why this node cannot write the app's tables."""
    if thread.state != Thread.State.ACTIVE:
        raise ThreadServiceError("forbidden", f"you can no longer write in {thread.name}")
    if not app_enabled(thread, app):
        raise ThreadServiceError("not_enabled", not_enabled)


def app_write(
    thread: Thread,
    action: Callable[[], T],
    *,
    app: str,
    not_enabled: str,
    plain: Callable[[str], str],
) -> T:
    """Run ``action()`` in one transaction of the thread (one op). A refusal of this node's
    replica becomes an error with the reason in words (``plain`` rewords it): ``forbidden`` for
    the policy's, ``refused`` for the app's rules; nothing of the write is kept."""
    app_writable(thread, app, not_enabled)
    database = thread_database(thread.thread)
    try:
        with thread_context(thread.thread), transaction.atomic(using=database.alias):
            return action()
    except WriteRefused as exc:
        reason = str(exc).removeprefix("refused: ")
        code = "forbidden" if writes.refusal_kind(reason) in POLICY_KINDS else "refused"
        raise ThreadServiceError(code, plain(reason)) from exc


def member_key(thread: Thread) -> nacl.signing.SigningKey:
    """This node's member key in the thread (for signatures an app's rows carry)."""
    secret = thread_database(thread.thread).node.master_secret
    if secret is None:
        raise ThreadServiceError(
            "forbidden", "this node cannot sign: its master secret is locked (unlock it first)"
        )
    return keys.member_key(secret, thread.thread)


class AppFailed(ServiceFailed):
    """A service error as an app's API answers it."""

    def __init__(self, error: ThreadServiceError) -> None:
        super().__init__(error)
        self.status_code = APP_STATUS.get(error.code, 400)


def api_call(fn: Callable[..., T], **kwargs) -> T:
    try:
        return fn(**kwargs)
    except ThreadServiceError as exc:
        raise AppFailed(exc) from exc


def api_thread(thread_id: str) -> Thread:
    thread = app_thread_find(thread_id)
    if thread is None:
        raise AppFailed(ThreadServiceError("not_found", "no such thread here"))
    return thread
