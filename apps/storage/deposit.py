"""Deposits: the party's control and storage threads left with each friend who holds shares
(ADR 25), so that a node restored from the phrase alone, with every device of the party gone,
finds the manifest (and the control thread that lets it take the manifest over) at a friend:
``manage.py node_restore --from <friend>`` fetches them there, then the restore of files asks
the holders the manifest names.

The friend keeps the ops as a mirror does (signatures and chains checked, bodies never
opened: they are sealed with the thread's keys, which the friend does not have). What was sent
to whom is a ``DepositMark`` per holder and thread: the position in this node's log
(``sereus_ops.n``) of the last op the holder took; it moves only when the holder answered.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from apps.core.models import Thread
from apps.core.threads.registry import thread_database
from apps.storage import space
from apps.storage.models import DepositMark, Holder

logger = logging.getLogger(__name__)

BATCH_BYTES = 3 << 20  # ops per deposit request (the request's cap is 5 MiB)
BATCHES_PER_STEP = 8  # per holder and thread: a long log goes over a few rounds, the worker
# stays responsive meanwhile


def _threads() -> list[tuple[Thread, bool]]:
    """The threads to deposit, the control thread first (a restore needs it first)."""
    from apps.cadre.control import control_thread

    found: list[tuple[Thread, bool]] = []
    control = control_thread()
    if control is not None:
        found.append((control, True))
    storage = space.storage_thread()
    if storage is not None:
        found.append((storage, False))
    return found


def ops_after(thread: Thread, after: int) -> Iterator[tuple[list[bytes], int]]:
    """This node's log of ``thread`` after position ``after``, in batches: (raw ops, position
    of the last one)."""
    from apps.storage.wire import MAX_DEPOSIT_OPS

    connection = thread_database(thread.thread).raw()
    while True:
        rows = connection.execute(
            "SELECT n, raw FROM sereus_ops WHERE place = 'log' AND n > ? ORDER BY n LIMIT ?",
            (after, MAX_DEPOSIT_OPS),
        ).fetchall()
        if not rows:
            return
        batch: list[bytes] = []
        size = 0
        for n, raw in rows:
            if batch and size + len(raw) > BATCH_BYTES:
                break
            batch.append(bytes(raw))
            size += len(raw)
            after = n
        yield batch, after


def _mark(holder: Holder, thread: Thread) -> DepositMark:
    mark, _ = DepositMark.objects.get_or_create(holder=holder.device, thread_id=thread.id)
    return mark


def _deposit_one(holder: Holder, target: Any, thread: Thread, control: bool) -> int:
    """Ops of ``thread`` not yet with ``holder``, sent; how many. ``HolderError`` stops it."""
    from apps.storage import client

    mark = _mark(holder, thread)
    member = bytes.fromhex(thread.member_id)
    sent = 0
    for count, (batch, position) in enumerate(ops_after(thread, mark.position)):
        if count >= BATCHES_PER_STEP:
            break
        client.deposit(target, thread=thread.thread, control=control, member=member, ops=batch)
        DepositMark.objects.filter(pk=mark.pk).update(position=position)
        sent += len(batch)
    return sent


def deposit_holders(storage: Thread) -> list[Holder]:
    """The friends' nodes that hold for the party now (our own devices have the threads)."""
    rows = Holder.objects.using(space.using(storage)).filter(
        kind=Holder.Kind.PEER, state=Holder.State.ACTIVE
    )
    return [h for h in rows.order_by("id") if len(h.device) == 64]


def deposit_step() -> int:
    """One round: every active friend holder gets the ops it lacks; how many were sent."""
    from apps.storage import client

    storage = space.storage_thread()
    if storage is None:
        return 0
    threads = _threads()
    sent = 0
    for holder in deposit_holders(storage):
        target = client.target_of(holder)
        if client.is_self(target):
            continue
        try:
            for thread, control in threads:
                sent += _deposit_one(holder, target, thread, control)
        except space.StorageError as exc:
            # Offline, full, or it refused: the mark stays, a later round sends the rest.
            logger.info("deposit with %s waits: %s", holder.label or "a holder", exc.words)
    return sent
