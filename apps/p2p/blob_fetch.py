"""Fetching attachment chunks in the background: one fetch per thread at a time, in rounds over
the thread's member devices until every wanted chunk is here or a few rounds brought nothing.

A mixin of ``SereusNode``, whose state it uses.
"""

from __future__ import annotations

import logging
import time

import trio

from apps.core import blobs
from apps.p2p.bridge import unwrap
from apps.p2p.host import peer_id_of
from apps.p2p.protocols import blob as blob_protocol
from apps.p2p.wire import PeerFault

logger = logging.getLogger(__name__)

BLOB_RETRIES = (1.0, 5.0, 20.0)  # rounds over the member devices before a fetch gives up
BLOB_PROGRESS = 1.0  # seconds between "chunks arrived" notices to open pages


class BlobFetching:
    """The chunks wanted per thread (``_blob_wants``) and the fetches that get them."""

    def blob_want(self, thread: bytes, chunks: list[bytes]) -> None:
        """Fetch these chunks of ``thread`` in the background (one fetch per thread at a time;
        chunks asked for meanwhile join it)."""
        fetching = thread in self._blob_wants
        self._blob_wants.setdefault(thread, set()).update(chunks)
        if not fetching and self._nursery is not None:
            self._nursery.start_soon(self._blob_fetch, thread)

    async def _blob_fetch(self, thread: bytes) -> None:
        """Rounds over the thread's member devices until every wanted chunk is here, or a few
        rounds brought nothing (a page that still shows the attachment asks again)."""
        last_notice = 0.0

        def arrived() -> None:
            nonlocal last_notice
            self.stats["chunks_received"] += 1
            if time.monotonic() - last_notice >= BLOB_PROGRESS:
                last_notice = time.monotonic()
                self.blob_progress(thread)

        try:
            idle_rounds = 0
            while True:
                wanted = sorted(self._blob_wants.get(thread, ()))
                missing = await trio.to_thread.run_sync(blobs.missing, thread, wanted)
                self._blob_wants[thread] = set(missing)
                if not missing:
                    return
                if await self._blob_round(thread, missing, arrived):
                    idle_rounds = 0
                    continue
                if idle_rounds == len(BLOB_RETRIES):
                    logger.info(
                        "%d chunks of thread %s: no member device has them now",
                        len(missing),
                        thread.hex()[:8],
                    )
                    return
                await trio.sleep(BLOB_RETRIES[idle_rounds])
                idle_rounds += 1
        finally:
            self._blob_wants.pop(thread, None)
            self.blob_progress(thread)

    async def _blob_round(self, thread: bytes, missing: list[bytes], arrived) -> int:
        view = self.threads.get(thread) or await self._thread_refresh(thread)
        devices = [p.device for p in view.info.peers if p.until is None] if view else []
        kept = 0
        for device in devices:
            if not await self.ensure_connected(device):
                continue
            try:
                kept += await blob_protocol.fetch(self, device, thread, missing, arrived)
            except Exception as error:
                exc = unwrap(error)
                if isinstance(exc, PeerFault):
                    logger.info("blob fetch from %s: %s", peer_id_of(device), exc)
                    if self.limits.strike(str(peer_id_of(device)), str(exc)):
                        await self._ban(device)
                else:
                    logger.debug("blob fetch from %s failed: %r", peer_id_of(device), exc)
                continue
            missing = await trio.to_thread.run_sync(blobs.missing, thread, missing)
            if not missing:
                break
        return kept
