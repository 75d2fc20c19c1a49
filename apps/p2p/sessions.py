"""Sync sessions with member devices: push and anti-entropy, and what the sync protocol needs
from the node between sessions.

- ``_want`` starts a loop of sessions with a device about a thread, coalesced: while one runs,
  further wants only mark it to run once more (``_again``); a session that failed on the way is
  retried shortly (``SESSION_RETRIES``) rather than left to anti-entropy.
- ``_pusher`` wants a session with each member device of a thread this node wrote to
  (``notify``) at once, from what it last knew of the thread; ``_refresher`` then refreshes every
  thread written to and wants a session with each member device that may lack something. Ops a
  peer pushed here itself are not passed on to every member device of a large thread
  (``RELAY_ALL_MAX``): their author does that. ``_maintain`` refreshes the threads about every
  ``MAINTAIN_INTERVAL``, wants a session with the member devices not connected each time and
  with all of them every ``sync_interval``.
- Between sessions the node remembers each device's version vector per thread (``vv_seen``) and
  keeps the stream of a session that ended well for the next one (``sync_stream_give``). The
  vectors also go to the node database, for delivery ("which of the other side's devices hold
  it", ``core.threads.delivery``): coalesced, one write at most every ``VV_SAVE_EVERY`` seconds,
  in a worker thread, never one per frame.
- A thread this node left is synced until a member device is known to hold the leave
  (``leave_deliver``, ``core.threads.leaving``): that device's vector after a session says so.

A mixin of ``SereusNode``, whose state it uses.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from typing import TYPE_CHECKING, Literal

import trio
from libp2p.abc import INetStream

from apps.core.threads import delivery, leaving
from apps.p2p import threads_io
from apps.p2p.bridge import unwrap
from apps.p2p.host import peer_id_of
from apps.p2p.openings import Opening, Request
from apps.p2p.protocols import sync
from apps.p2p.wire import PeerFault, PeerRefused

if TYPE_CHECKING:
    from apps.p2p.node import ThreadView

logger = logging.getLogger(__name__)

MAINTAIN_INTERVAL = 30.0
# Up to this many other member devices, ops a peer pushed here are passed on to the others at
# once (as insurance for a member its author cannot reach). Beyond it every receiver doing so
# would cost sessions growing with the square of the members: the author's own push reaches
# each member device it is connected to, and anti-entropy repairs the rest (DESIGN §8).
RELAY_ALL_MAX = 8
REFRESH_AFTER = 0.01  # seconds from a local write's push to the refresh of its thread
STREAM_REUSE = 20.0  # below the responder's STREAM_IDLE, so a kept stream is still open
SESSION_RETRIES = (0.2, 1.0, 5.0)  # seconds before trying a failed session again
VV_SAVE_EVERY = 0.5  # seconds between writes of the vectors peers said (``delivery``)
# An unchanged vector is written again after this long, so "last heard" stays about true.
VV_SEEN_REFRESH = 60.0
SessionOutcome = Literal["done", "refused", "failed", "unreachable"]


class SyncSessions:
    """Starting, repeating and pacing sync sessions, and the state they leave behind."""

    # The vectors heard and not written yet, when each was last written (monotonic), and
    # whether a writer task runs: set on an instance at its first vector (None: none yet).
    _vv_unsaved: dict[tuple[bytes, bytes], None] | None = None
    _vv_saved_at: dict[tuple[bytes, bytes], float] | None = None
    _vv_saving: bool = False
    # Threads where a member device said it holds more than before: their open pages are told
    # once the vectors are written (an offer turns "delivered" without a new op here).
    _vv_advanced: set[bytes] | None = None

    async def sync_stream_take(self, device: bytes) -> tuple[INetStream, bool]:
        """A sync stream to ``device``: the idle one from the last session if it is fresh
        enough (True), else a new one (False)."""
        idle = self._idle_streams.pop(device, None)
        if idle is not None:
            stream, since = idle
            if time.monotonic() - since < STREAM_REUSE:
                return stream, True
            self._nursery_reset(stream)
        return await self.open_stream(device, sync.PROTOCOL), False

    def sync_stream_give(self, device: bytes, stream: INetStream) -> None:
        """Keep a stream whose session ended well, for the next session with ``device``."""
        old = self._idle_streams.get(device)
        if old is not None:
            self._nursery_reset(old[0])
        self._idle_streams[device] = (stream, time.monotonic())

    def idle_stream_drop(self, device: bytes) -> None:
        """Forget the stream kept for the next session with ``device`` (its connection died)."""
        idle = self._idle_streams.pop(device, None)
        if idle is not None:
            self._nursery_reset(idle[0])

    def _nursery_reset(self, stream: INetStream) -> None:
        async def reset() -> None:
            with trio.move_on_after(1), contextlib.suppress(Exception):
                await stream.reset()

        assert self._nursery is not None
        self._nursery.start_soon(reset)

    def known_vv(self, thread: bytes, device: bytes) -> dict[bytes, int] | None:
        return self._known_vv.get((thread, device))

    def vv_seen(self, thread: bytes, device: bytes, vv: dict[bytes, int]) -> None:
        key = (thread, device)
        changed = key not in self._known_vv
        known = self._known_vv.setdefault(key, {})
        for dev, seq in vv.items():
            if seq > known.get(dev, 0):
                known[dev] = seq
                changed = True
        if self._vv_saved_at is None:
            self._vv_saved_at = {}
        saved = self._vv_saved_at.get(key)
        if changed:
            if self._vv_advanced is None:
                self._vv_advanced = set()
            self._vv_advanced.add(thread)
        if changed or saved is None or time.monotonic() - saved > VV_SEEN_REFRESH:
            self._vv_unsaved_add(key)

    def _vv_unsaved_add(self, key: tuple[bytes, bytes]) -> None:
        if self._vv_unsaved is None:
            self._vv_unsaved = {}
        self._vv_unsaved[key] = None
        if not self._vv_saving and self._nursery is not None:
            self._vv_saving = True
            self._nursery.start_soon(self._vv_save)

    async def _vv_save(self) -> None:
        """Write the vectors heard since the last write, a moment after the first of them:
        a busy thread's many sessions make one small transaction every ``VV_SAVE_EVERY``."""
        try:
            while self._vv_unsaved:
                await trio.sleep(VV_SAVE_EVERY)
                keys, self._vv_unsaved = list(self._vv_unsaved), {}
                # Copied here: ``vv_seen`` goes on changing them in this thread meanwhile.
                entries = [(t, d, dict(self._known_vv.get((t, d), {}))) for t, d in keys]
                now = time.monotonic()
                try:
                    await self.db(delivery.vectors_save, entries, time.time())
                except Exception:  # delivery shows "not yet" a while longer; the next tries
                    logger.exception("saving the vectors of %d devices failed", len(entries))
                    continue
                assert self._vv_saved_at is not None
                self._vv_saved_at.update(dict.fromkeys(keys, now))
                advanced, self._vv_advanced = self._vv_advanced or set(), None
                for thread in advanced:
                    self.pages_tell(thread)
        finally:
            self._vv_saving = False

    def synced(self, thread: bytes, device: bytes, sent: int, received: int) -> None:
        now = time.time()
        self.stats["sessions"] += 1
        self.stats["ops_sent"] += sent
        view = self.threads.get(thread)
        if view is not None:
            view.synced_with[device] = now
        peer = self.peers.get(device)
        if peer is not None:
            peer.last_sync = now
        if view is not None and view.info.leaving is not None and self._leave_held(view, device):
            assert self._nursery is not None
            self._nursery.start_soon(self._leave_done, thread)

    def _leave_held(self, view: ThreadView, device: bytes) -> bool:
        return any(
            peer.device == device and self._has_all_it_may(view.info.thread, peer)
            for peer in view.info.peers
        )

    async def _leave_done(self, thread: bytes) -> None:
        """A member device holds this node's leave of ``thread``: the node is done with it."""
        await self.db(leaving.leave_delivered, thread)
        if self.threads.pop(thread, None) is not None:
            self._peers_rebuild()
        self._leave_events.pop(thread, trio.Event()).set()

    async def leave_deliver(self, thread: bytes, timeout: float) -> bool:
        """Push this node's leave of ``thread`` to the member devices at once; True when one of
        them holds it within ``timeout`` seconds. Otherwise the thread stays leaving and every
        contact with a member device (a reconnect, an anti-entropy round) tries again."""
        done = self._leave_events.setdefault(thread, trio.Event())
        with trio.move_on_after(timeout):
            view = await self._thread_refresh(thread)
            if view is None or view.info.leaving is None:
                return not await self.db(leaving.leave_pending, thread)
            if not view.info.peers or any(
                self._has_all_it_may(thread, peer) for peer in view.info.peers
            ):
                await self._leave_done(thread)  # nobody left to tell, or told already
                return True
            for peer in view.info.peers:
                self._want(thread, peer.device)
            await done.wait()
            return True
        return False

    def _has_all_it_may(self, thread: bytes, peer: threads_io.Peer) -> bool:
        """Whether ``peer`` is known to hold everything it may receive of ``thread``: all this
        node has, or, for a departed member's device, its departure."""
        known = self._known_vv.get((thread, peer.device))
        if known is None:
            return False
        if peer.until is not None:
            device, seq = peer.until.id
            return known.get(device, 0) >= seq
        view = self.threads.get(thread)
        return view is not None and sync.covers(known, view.info.vv)

    def _want(self, thread: bytes, device: bytes, *, again: bool = True) -> None:
        key = (thread, device)
        if key in self._sessions:
            if again:
                self._again.add(key)
            return
        assert self._nursery is not None
        self._sessions.add(key)
        self._nursery.start_soon(self._session_loop, thread, device)

    async def _session_loop(self, thread: bytes, device: bytes) -> None:
        """Sessions with ``device`` about ``thread`` until nothing is left to say. A session
        that failed on the way (the peer busy, a stream reset), or did not get through while
        something new was written, is tried again shortly: a push must not wait for the next
        anti-entropy round."""
        key = (thread, device)
        retries = 0
        try:
            while True:
                self._again.discard(key)
                outcome = await self._sync_once(thread, device)
                if outcome == "failed" and retries < len(SESSION_RETRIES):
                    await trio.sleep(SESSION_RETRIES[retries])
                    retries += 1
                    continue
                if key not in self._again:
                    return
                if outcome != "done":
                    # Something was written while this session went wrong (the peer refused
                    # it while it was still joining, say): not pushed yet. Once more shortly,
                    # as after a failure, rather than at the next anti-entropy round.
                    if retries >= len(SESSION_RETRIES):
                        return
                    await trio.sleep(SESSION_RETRIES[retries])
                    retries += 1
                    continue
                retries = 0
        finally:
            self._sessions.discard(key)
            self._again.discard(key)

    async def _sync_once(self, thread: bytes, device: bytes) -> SessionOutcome:
        if not await self.ensure_connected(device):
            return "unreachable"  # dialing backs off on its own; anti-entropy comes back
        async with self._outbound:
            try:
                sent, received = await sync.initiate(self, thread, device)
            except Exception as error:
                exc = unwrap(error)
                if isinstance(exc, PeerRefused):
                    logger.debug(
                        "sync %s with %s refused: %s", thread.hex()[:8], device.hex()[:8], exc
                    )
                    return "failed" if exc.code == "busy" else "refused"
                if isinstance(exc, PeerFault):
                    logger.info("sync with %s: %s", peer_id_of(device), exc)
                    if self.limits.strike(str(peer_id_of(device)), str(exc)):
                        await self._ban(device)
                    return "refused"
                logger.debug("sync with %s failed: %r", peer_id_of(device), exc)
                if isinstance(exc, trio.TooSlowError):
                    # A connection that went silent still looks connected: check it now rather
                    # than at the next keepalive round.
                    self.keepalive.check(device)
                return "failed"
        self.synced(thread, device, sent, received)
        return "done"

    async def _pusher(self) -> None:
        """This node's own writes go to the member devices it knows at once: nobody else has
        them yet. Every thread written to is then refreshed (``_refresher``), for the sessions
        with member devices that may lack something else: a database trip on a push's way
        would delay it, and one in a worker thread beside it still competes with it for the
        interpreter, so it comes a moment later."""
        while True:
            await self._dirty_event.wait()
            self._dirty_event = trio.Event()
            local, self._dirty_local = self._dirty_local, set()
            pushed, self._dirty_pushed = self._dirty_pushed, set()
            dirty, self._dirty = self._dirty, set()
            for thread in local | pushed | dirty:
                relay, skip = self._to_refresh.get(thread, (False, set()))
                if thread in local:
                    skip |= self._push_now(thread)
                self._to_refresh[thread] = (relay or thread not in pushed, skip)
            self._refresh_event.set()

    async def _refresher(self) -> None:
        while True:
            await self._refresh_event.wait()
            await trio.sleep(REFRESH_AFTER)
            self._refresh_event = trio.Event()
            threads, self._to_refresh = self._to_refresh, {}
            for thread, (relay, skip) in threads.items():
                try:
                    await self._push_checked(thread, relay=relay, skip=skip)
                except Exception:  # the next write or anti-entropy round tries again
                    logger.exception("refreshing thread %s failed", thread.hex()[:12])

    async def _push_checked(self, thread: bytes, *, relay: bool, skip: set[bytes]) -> None:
        """Refresh ``thread`` and want a session with each member device but ``skip`` that may
        lack some of it; with ``relay`` False (ops a peer pushed here itself), in a large thread,
        only with departed members' devices (the author reaches the others)."""
        view = await self._thread_refresh(thread)
        if view is None:
            return
        relay = relay or not _large(view)
        for peer in view.info.peers:
            if peer.device in skip or (not relay and peer.until is None):
                continue
            if self._has_all_it_may(thread, peer):
                continue  # it probably just sent us what we are announcing
            self._want(thread, peer.device)

    def push_requests(self, thread: bytes) -> list[Request]:
        """The active member devices a local write to ``thread`` goes to, with the vectors they
        last said: what ``push_ahead`` reads their first flights for. Called from the writer's
        thread, not the event loop's: it only reads, and copies each vector with one ``dict()``,
        a single step of C that the event loop cannot change halfway (it changes them only
        while holding the interpreter)."""
        view = self.threads.get(thread)
        if view is None or not view.info.member:
            return []
        requests: list[Request] = []
        for peer in view.info.peers:
            if peer.until is None:
                known = self._known_vv.get((thread, peer.device))
                requests.append((peer.device, None if known is None else dict(known)))
        return requests

    def push_ready_keep(self, thread: bytes, ready: dict[bytes, Opening]) -> None:
        """Keep the first flights a local write read for its push, until ``_push_now`` hands
        them to the sessions. Of two writes' reads, the one that holds more is kept: two
        writers' reads may arrive in the other order than they were made."""
        kept = self._push_ready.get(thread)
        if kept is None or _held(ready) >= _held(kept):
            self._push_ready[thread] = ready

    def _push_now(self, thread: bytes) -> set[bytes]:
        """Want a session with every active member device of ``thread`` as last known, their
        first flights read by the writer (``push_ahead``) or in one trip (``openings``) for the
        sessions that start now."""
        ready = self._push_ready.pop(thread, {})
        view = self.threads.get(thread)
        if view is None or not view.info.member:
            return set()
        devices = {peer.device for peer in view.info.peers if peer.until is None}
        starting = [device for device in devices if (thread, device) not in self._sessions]
        assert self._nursery is not None
        self.openings.put(thread, {device: ready[device] for device in starting if device in ready})
        self.openings.start(
            self._nursery,
            self.db,
            thread,
            [(device, self.known_vv(thread, device)) for device in starting if device not in ready],
            sync.LIMITS,
        )
        for device in devices:
            self._want(thread, device)
        return devices

    async def _maintain(self) -> None:
        """Anti-entropy: refresh the threads, then a session with every member device."""
        last_round = 0.0
        while True:
            try:
                await self._threads_refresh()
            except Exception:
                logger.exception("refreshing the threads failed")
            now = time.monotonic()
            full_round = now - last_round >= self.settings.sync_interval
            if full_round:
                last_round = now
            for thread, view in list(self.threads.items()):
                for peer in view.info.peers:
                    if peer.until is not None and self._has_all_it_may(thread, peer):
                        continue  # a departed member's device that knows it departed
                    if full_round or not self.connected(peer.device):
                        self._want(thread, peer.device, again=False)
            delay = min(MAINTAIN_INTERVAL, self.settings.sync_interval)
            await trio.sleep(delay * random.uniform(0.8, 1.2))  # noqa: S311 - jitter


def _held(openings: dict[bytes, Opening]) -> int:
    """How many ops the node held when these openings were read (0 if none has a flight)."""
    return next((sum(o[2].mine.values()) for o in openings.values() if o[2] is not None), 0)


def _large(view: ThreadView) -> bool:
    return sum(1 for peer in view.info.peers if peer.until is None) > RELAY_ALL_MAX
