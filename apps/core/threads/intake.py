"""Taking in a thread this node was let into: the log received while joining
(``join_receive``), the thread made this node's once admitted (``thread_join``) or once another
device of this party certified this one (``thread_adopt``). ``services`` re-exports these."""

from __future__ import annotations

from collections.abc import Iterable

from apps.core.models import Thread
from apps.core.thread import keys
from apps.core.thread.invite import Invite
from apps.core.thread.replica import Verified
from apps.core.threads.database import NodeKeys
from apps.core.threads.registry import thread_database
from apps.core.threads.service_base import ThreadServiceError, _hex, index_refresh
from apps.core.threads.signals import thread_added


def join_receive(*, invite: Invite, raws: list[bytes] | Verified) -> None:
    """Part of a thread's log, received while joining, before this node is known to be in it
    (``thread_join`` registers the thread once all of it is here)."""
    thread_database(invite.thread).ingest(raws)


def thread_join(*, invite: Invite, raws: Iterable[bytes] = ()) -> Thread:
    """Take in a thread's log received after being admitted (``raws``, or received earlier
    with ``join_receive``); the thread becomes this node's."""
    node = NodeKeys.of_this_node()
    if node.master_secret is None:
        raise ThreadServiceError("unavailable", "this node has no usable master secret")
    database = thread_database(invite.thread)
    database.ingest(raws)
    replica = database.replica()
    member = keys.member_key(node.master_secret, invite.thread)
    role = replica.control.state.role_of(bytes(member.verify_key))
    if role is None:
        raise ThreadServiceError(
            "forbidden", "the log received does not admit this node (the invite was not redeemed)"
        )
    thread, _ = Thread.objects.update_or_create(
        pk=_hex(invite.thread),
        defaults={
            "name": replica.control.state.name or invite.name,
            "app": replica.control.state.app,
            "member_id": _hex(bytes(member.verify_key)),
            "role": role,
            "state": Thread.State.ACTIVE,
            "problem": "",
            "join_link": "",
        },
    )
    index_refresh(thread=thread)
    thread_added.send(sender=Thread, thread=invite.thread)
    return thread


def thread_adopt(*, thread: bytes, raws: Iterable[bytes] = ()) -> Thread:
    """Take in a thread this party is already a member of, with this node's device certified
    there (another device of the party certified it): ``raws`` is its log, fetched from a
    device or mirror of the party. The thread becomes this node's."""
    node = NodeKeys.of_this_node()
    if node.master_secret is None:
        raise ThreadServiceError("unavailable", "this node has no usable master secret")
    database = thread_database(thread)
    database.ingest(raws)
    replica = database.replica()
    state = replica.control.state
    member = bytes(keys.member_key(node.master_secret, thread).verify_key)
    role = state.role_of(member)
    if role is None:
        raise ThreadServiceError("forbidden", "the log received does not show you as a member")
    if state.device_member(bytes(node.device.verify_key)) != member:
        raise ThreadServiceError(
            "forbidden", "the log received does not certify this device for you (not yet)"
        )
    record, _ = Thread.objects.update_or_create(
        pk=_hex(thread),
        defaults={
            "name": state.name or _hex(thread)[:12],
            "app": state.app,
            "member_id": _hex(member),
            "role": role,
            "state": Thread.State.ACTIVE,
            "problem": "",
            "join_link": "",
        },
    )
    index_refresh(thread=record)
    thread_added.send(sender=Thread, thread=thread, adopted=True)
    return record
