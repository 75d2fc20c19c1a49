"""Where the storage app keeps its rows: the party's storage thread (made on first use) and the
holding threads, and the one way services write them (one transaction, one signed op).

The storage thread is a thread of the party like any other: the cadre lists it in the control
thread, so every full device of the party takes it in, and the party's standby key is certified
in it, so a node restored from the phrase alone takes it over (ADR 24). It is therefore made only
after the control thread exists (``control_ensure``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from django.db import transaction

from apps.core.models import Thread
from apps.core.threads.context import thread_context
from apps.core.threads.database import NodeKeys
from apps.core.threads.registry import thread_database
from apps.storage.policy import HOLD_SHAPE, RULES_APP, SHAPE

T = TypeVar("T")

STORAGE_NAME = "Backups"


class StorageError(Exception):
    """A storage action that cannot be done, in words; ``code`` as the API maps it to a status:
    invalid, forbidden, conflict, unavailable, not_found, full."""

    def __init__(self, code: str, words: str) -> None:
        super().__init__(words)
        self.code = code
        self.words = words


def master_secret() -> bytes:
    from apps.cadre.control import CadreError
    from apps.cadre.own_threads import master_secret

    try:
        return master_secret()
    except CadreError as exc:
        raise StorageError(exc.code, exc.words) from exc


def device_key() -> bytes:
    """This node's device key (what holders and shares name it by)."""
    return bytes(NodeKeys.of_this_node().device.verify_key)


def storage_thread() -> Thread | None:
    """The party's storage thread on this node, or None."""
    from apps.cadre.own_threads import own_thread

    return own_thread(SHAPE)


def storage_ensure() -> Thread:
    """The storage thread, made now (with the control thread it needs) if there is none."""
    from apps.cadre.control import CadreError
    from apps.cadre.own_threads import own_thread_ensure

    try:
        return own_thread_ensure(shape=SHAPE, rules_app=RULES_APP, name=STORAGE_NAME)
    except CadreError as exc:
        raise StorageError(exc.code, exc.words) from exc


def hold_threads() -> list[Thread]:
    """This node's holding threads, as owner and as holder (``Thread.role`` says which)."""
    return list(Thread.objects.filter(app=HOLD_SHAPE, state=Thread.State.ACTIVE).order_by("id"))


def write(thread: Thread, action: Callable[[], T]) -> T:
    """Run ``action`` in one transaction of ``thread``'s database: one signed op. A refusal by
    this replica raises ``apps.core.threads.database.WriteRefused``."""
    database = thread_database(thread.thread)
    with thread_context(thread.thread), transaction.atomic(using=database.alias):
        return action()


def using(thread: Thread) -> str:
    """The database alias to read ``thread``'s rows with (``Model.objects.using(...)``)."""
    return thread_database(thread.thread).alias
