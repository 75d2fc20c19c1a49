"""Finishing joins whose answer was lost (``Thread.State.JOINING``, ``core.threads.joining``).

When redeeming an invite fails after the redeem was sent, the inviter may have committed the
admission: the joining node keeps the thread joining, and this loop finishes the join. For each
joining thread, with backoff (``RETRY_DELAYS``, then every ``RETRY_MAX`` seconds):

1. if the log this node already holds admits it (the log arrived and only the last step was
   missed), the join completes here: the thread becomes active and anti-entropy brings whatever
   else is missing from every member;
2. otherwise the invite is redeemed again at the inviter, which answers a newcomer it admitted
   before with "admitted" and the log (nothing written twice); then the join completes;
3. a hard refusal (expired, revoked, used by someone else...) ends the join: the thread is marked
   not admitted, with the inviter's reason, for the person to see.

Attempts are counted in memory: after a restart the backoff starts again, which costs one early
attempt per joining thread.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import trio

from apps.core.threads import joining, services
from apps.p2p.bridge import unwrap
from apps.p2p.protocols import invite as invite_protocol

if TYPE_CHECKING:
    from apps.p2p.node import SereusNode

logger = logging.getLogger(__name__)

RETRY_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
RETRY_MAX = 300.0
SCAN_INTERVAL = 30.0  # joining threads are looked for this often (and when poked)


class Joins:
    def __init__(self, node: SereusNode) -> None:
        self.node = node
        self._wake = trio.Event()
        self._attempts: dict[str, tuple[int, float]] = {}  # thread id -> (attempts, next at)
        self._redeeming: dict[bytes, int] = {}  # threads with a redemption under way
        self.stats = {"attempts": 0, "joined": 0, "refused": 0}

    @contextmanager
    def redeeming(self, thread: bytes) -> Iterator[None]:
        """Around every redemption (the person's, and the ones here): a thread being redeemed
        is not redeemed again by this loop meanwhile (a second admission request racing the
        first would be refused as "used" by the inviter's replica)."""
        self._redeeming[thread] = self._redeeming.get(thread, 0) + 1
        try:
            yield
        finally:
            self._redeeming[thread] -= 1
            if not self._redeeming[thread]:
                del self._redeeming[thread]

    def poke(self) -> None:
        """A join was just interrupted: look for joining threads now, not at the next scan."""
        self._wake.set()

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            try:
                wait = await self._round()
            except Exception:  # the database was busy or broken: the next round tries again
                logger.exception("finishing interrupted joins failed")
                wait = SCAN_INTERVAL
            with trio.move_on_after(wait):
                await self._wake.wait()
            self._wake = trio.Event()

    async def _round(self) -> float:
        """One attempt for every joining thread that is due; the seconds until the next is."""
        pending = await self.node.db(joining.joins_pending)
        for thread_id in list(self._attempts):
            if thread_id not in pending:
                del self._attempts[thread_id]
        wait = SCAN_INTERVAL
        for thread_id in pending:
            count, due = self._attempts.get(thread_id, (0, 0.0))
            now = time.monotonic()
            if due == 0.0:  # first seen: give the interrupted attempt's own finish a moment
                due = now + RETRY_DELAYS[0]
                self._attempts[thread_id] = (count, due)
            if now < due or bytes.fromhex(thread_id) in self._redeeming:
                wait = min(wait, max(due - now, RETRY_DELAYS[0]))
                continue
            if await self._attempt(thread_id):
                self._attempts.pop(thread_id, None)
                continue
            delay = RETRY_DELAYS[count] if count < len(RETRY_DELAYS) else RETRY_MAX
            delay *= random.uniform(0.8, 1.2)  # noqa: S311 - jitter
            self._attempts[thread_id] = (count + 1, time.monotonic() + delay)
            wait = min(wait, delay)
        return max(wait, 0.1)

    async def _attempt(self, thread_id: str) -> bool:
        """Try to finish one join; True when it is over (joined, or refused for good)."""
        prepared = await self.node.db(joining.join_request, thread_id=thread_id)
        if prepared is None:
            return True  # not joining any more, or this node cannot sign now (sealed)
        invite, request = prepared
        self.stats["attempts"] += 1
        try:
            await self.node.db(services.thread_join, invite=invite)
        except Exception as exc:  # the log here does not admit this node (yet): ask the inviter
            logger.debug("joining %s: not admitted by the log here (%s)", thread_id[:12], exc)
        else:
            return self._joined(thread_id)
        try:
            with self.redeeming(invite.thread):
                await invite_protocol.redeem(self.node, invite, request)
        except Exception as error:
            exc = unwrap(error)
            code = exc.code if isinstance(exc, services.ThreadServiceError) else "unreachable"
            over = await self.node.db(
                joining.join_failed, thread=invite.thread, code=code, reason=f"{exc}"
            )
            if over:
                self.stats["refused"] += 1
                logger.info("joining %s: not admitted (%s)", thread_id[:12], exc)
            else:
                logger.info("joining %s: not yet (%s)", thread_id[:12], exc)
            return over
        try:
            await self.node.db(services.thread_join, invite=invite)
        except Exception as exc:  # admitted, says the inviter, but not by the log it sent
            reason = f"admitted, but the log received does not show it yet ({exc})"
            await self.node.db(
                joining.join_failed, thread=invite.thread, code="incomplete", reason=reason
            )
            return False
        return self._joined(thread_id)

    def _joined(self, thread_id: str) -> bool:
        self.stats["joined"] += 1
        logger.info("joined thread %s after an interrupted redemption", thread_id[:12])
        return True

    def status(self) -> dict[str, int]:
        return {**self.stats, "joining": len(self._attempts)}
