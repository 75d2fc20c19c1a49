"""Names: the writers (ADR 16). The node's display name goes into every thread as this member's
set_name op, unless the thread has a name of its own for this member (``Thread.my_name``);
contact names are this node's alone and never leave it.

The node writes its name when it creates or joins a thread (``thread_added``), into every active
thread without its own name when the display name changes, and into one thread when that
thread's name changes; each time only if the thread does not say so already.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction

from apps.core.models import ContactName, Node, Thread
from apps.core.thread import payloads as p
from apps.core.thread.writer import WriteError
from apps.core.threads.database import WriteRefused
from apps.core.threads.registry import thread_database
from apps.core.threads.services import ThreadServiceError

logger = logging.getLogger(__name__)


def _clean(name: str, *, empty_ok: bool) -> str:
    """A name as typed, normalized; ThreadServiceError in words if it cannot be one."""
    name = p.name_normalize(name)
    if not name and empty_ok:
        return ""
    problem = p.name_problem(name)
    if problem is not None:
        raise ThreadServiceError("invalid", problem[:1].upper() + problem[1:] + ".")
    return name


def display_name() -> str:
    """The name this node's person goes by ("" until set)."""
    node = Node.objects.filter(pk=Node.SINGLETON_PK)
    return node.values_list("display_name", flat=True).first() or ""


def name_in(thread: Thread) -> str:
    """The name this member should have in ``thread``: its own there, else the display name."""
    return thread.my_name or display_name()


def name_publish(*, thread: Thread) -> bool:
    """Write this member's name into ``thread`` unless the thread says it already (or there is
    no name to write, or the thread is not active). True if it wrote."""
    name = name_in(thread)
    if not name or thread.state != Thread.State.ACTIVE:
        return False
    database = thread_database(thread.thread)
    member = bytes.fromhex(thread.member_id)
    with database.lock:
        if database.replica().control.state.names.get(member) == name:
            return False
    try:
        database.write(lambda writer: writer.set_name(name))
    except (WriteRefused, WriteError) as exc:
        raise ThreadServiceError("forbidden", str(exc)) from exc
    return True


def display_name_set(*, name: str) -> list[Thread]:
    """Set the display name and write it into every active thread that has no name of its own
    for this member. Returns the threads it could not be written into now (a locked master
    secret, a damaged thread); they get it with the next change."""
    name = _clean(name, empty_ok=False)
    with transaction.atomic():
        Node.objects.get_or_create(pk=Node.SINGLETON_PK)
        Node.objects.filter(pk=Node.SINGLETON_PK).update(display_name=name)
    failed = []
    for thread in Thread.objects.filter(state=Thread.State.ACTIVE, my_name=""):
        try:
            name_publish(thread=thread)
        except (ThreadServiceError, WriteRefused, WriteError) as exc:
            logger.warning("could not write the name into thread %s: %s", thread, exc)
            failed.append(thread)
    return failed


def my_name_set(*, thread: Thread, name: str) -> None:
    """This member's name in ``thread`` only; "" goes back to the display name (which is then
    written, if there is one: the thread should not keep the old own name)."""
    name = _clean(name, empty_ok=True)
    if thread.state != Thread.State.ACTIVE:
        raise ThreadServiceError("forbidden", f"you can no longer write in {thread.name}")
    Thread.objects.filter(pk=thread.pk).update(my_name=name)
    thread.my_name = name
    name_publish(thread=thread)


def contact_name_set(*, thread: Thread, member_id: str, name: str) -> None:
    """The name only this node shows for a member of ``thread``; "" forgets it."""
    name = _clean(name, empty_ok=True)
    member_id = member_id.lower()
    if member_id not in members_ever(thread):
        raise ThreadServiceError("not_found", "no such member in this thread")
    if member_id == thread.member_id:
        raise ThreadServiceError("invalid", "that is you: set your own name in this thread instead")
    if not name:
        ContactName.objects.filter(thread=thread, member_id=member_id).delete()
        return
    ContactName.objects.update_or_create(
        thread=thread, member_id=member_id, defaults={"name": name}
    )


def members_ever(thread: Thread) -> set[str]:
    """Every member the thread ever admitted (hex)."""
    if thread.state not in (Thread.State.ACTIVE, Thread.State.LEFT, Thread.State.REMOVED):
        return set()
    database = thread_database(thread.thread)
    with database.lock:
        return {member.hex() for member in database.replica().control.state.tags.values()}


def on_thread_added(sender: Any, thread: bytes, **kwargs: Any) -> None:
    """A thread was created or joined: this member's name goes in at once. A failure is logged
    and leaves the thread unnamed; it must not undo the join."""
    found = Thread.objects.filter(pk=thread.hex()).first()
    if found is None:
        return
    try:
        name_publish(thread=found)
    except (ThreadServiceError, WriteRefused, WriteError) as exc:
        logger.warning("could not write the name into thread %s: %s", found, exc)
