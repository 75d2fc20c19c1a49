"""What the thread services share: their error, the reading of ids, and the write of a
control op in one transaction of the thread's database followed by the rewrite of this node's
index of the thread (``index_refresh``: the ``Thread`` row and its member, device and invite
rows). ``services`` and the modules beside it (``admitting``, ``intake``, ``members``) write
through ``_write``."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from django.db import transaction

from apps.core.models import Thread, ThreadDevice, ThreadInvite, ThreadMember
from apps.core.thread.writer import WriteError
from apps.core.threads.database import ThreadDatabase, WriteRefused
from apps.core.threads.registry import thread_database


class ThreadServiceError(Exception):
    """A thread action that cannot be done; ``code`` for the API, the message for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _hex(value: bytes) -> str:
    return value.hex()


def _key(text: str, what: str) -> bytes:
    try:
        value = bytes.fromhex(text)
    except ValueError:
        value = b""
    if len(value) != 32:
        raise ThreadServiceError("invalid", f"{what} must be 64 hexadecimal characters")
    return value


def _database(thread: Thread) -> ThreadDatabase:
    if thread.state == Thread.State.DAMAGED:
        raise ThreadServiceError("unavailable", f"thread {thread} is damaged: {thread.problem}")
    return thread_database(thread.thread)


def _write(thread: Thread, action) -> list:
    """Run ``action(writer)`` in a transaction of the thread, then refresh the index."""
    database = _database(thread)
    try:
        result = database.write(action)
    except WriteRefused as exc:
        raise ThreadServiceError("forbidden", str(exc)) from exc
    except WriteError as exc:
        raise ThreadServiceError("forbidden", str(exc)) from exc
    index_refresh(thread=thread)
    return result


# -- this node's index of its threads -----------------------------------------------------------


def index_refresh(*, thread: Thread) -> None:
    """Rewrite the member, device and invite rows of ``thread`` from its control state."""
    database = _database(thread)
    state = database.replica().control.state
    me = bytes.fromhex(thread.member_id)
    this_device = bytes(database.node.device.verify_key)
    my_role = state.role_of(me)
    with transaction.atomic():
        thread.name = state.name or thread.name
        thread.role = my_role or ""
        thread.apps = list(state.apps)
        if my_role is None and thread.state == Thread.State.ACTIVE and state.created:
            thread.state = Thread.State.REMOVED
        thread.save()
        # Upserts, not delete-and-recreate: the rows' ids are in admin URLs.
        members = {_hex(m): s.role for m, s in state.members.items() if s.active}
        ThreadMember.objects.filter(thread=thread).exclude(member_id__in=members).delete()
        for member_id, role in members.items():
            ThreadMember.objects.update_or_create(
                thread=thread,
                member_id=member_id,
                defaults={"role": role, "is_me": member_id == thread.member_id},
            )
        devices = {_hex(d): _hex(s.member) for d, s in state.devices.items() if s.active}
        ThreadDevice.objects.filter(thread=thread).exclude(device_id__in=devices).delete()
        for device_id, member_id in devices.items():
            ThreadDevice.objects.update_or_create(
                thread=thread,
                device_id=device_id,
                defaults={
                    "member_id": member_id,
                    "is_this_node": device_id == _hex(this_device),
                },
            )
        for invite_key, invite in state.invites.items():
            ThreadInvite.objects.update_or_create(
                thread=thread,
                invite_id=_hex(invite_key),
                defaults={
                    "role": invite.role,
                    "expires_at": datetime.fromtimestamp(invite.expiry / 1000, UTC),
                    "status": invite.status,
                    "uses": invite.uses,
                    "used": invite.used,
                    "label": invite.label,
                },
            )
