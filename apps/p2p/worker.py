"""The Channels worker that runs the p2p service.

``P2PWorker`` is Channels' ``Worker`` plus a lifecycle: it starts the p2p service before it reads
the ``sereus-p2p`` channel, hands the service to the consumer through the scope, and on stop
(cancellation, SIGINT or SIGTERM) cancels the consumer and stops the service cleanly.
runnode runs it as a task on daphne's event loop; ``runworker sereus-p2p`` runs it alone.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Any

from channels.worker import Worker
from django.conf import settings

from apps.p2p.consumers import P2P_CHANNEL, SCOPE_SERVICE_KEY
from apps.p2p.service import P2PService, WorkerMode

logger = logging.getLogger(__name__)


class P2PWorker(Worker):
    def __init__(
        self,
        application: Any,
        channels: list[str],
        channel_layer: Any,
        max_applications: int = 1000,
        *,
        listen: str | None = None,
        mode: WorkerMode = "worker process",
    ) -> None:
        super().__init__(application, channels, channel_layer, max_applications)
        self.service: P2PService | None = None
        if P2P_CHANNEL in channels:
            self.service = P2PService(
                data_dir=Path(settings.DATA_DIR),
                listen=listen or settings.SEREUS.p2p_listen,
                mode=mode,
            )

    def get_or_create_application_instance(self, scope_id: str, scope: dict[str, Any]) -> Any:
        if scope.get("channel") == P2P_CHANNEL:
            scope = {**scope, SCOPE_SERVICE_KEY: self.service}
        return super().get_or_create_application_instance(scope_id, scope)

    async def arun(self) -> None:
        # asgiref's arun gathers the checker and handle(); a cancelled gather returns as soon as
        # the first child is cancelled, before handle() has cleaned up. Here stop waits for it.
        checker = asyncio.ensure_future(self.application_checker())
        try:
            await self.handle()
        finally:
            checker.cancel()
            await asyncio.gather(checker, return_exceptions=True)

    async def handle(self) -> None:
        if self.service is not None:
            await self.service.start()
        # Channels' Worker.handle leaves its listener tasks running when cancelled; a stopped
        # worker must not keep taking messages off the channel.
        listeners = [asyncio.ensure_future(self.listener(channel)) for channel in self.channels]
        try:
            await asyncio.gather(*listeners)
        finally:
            consumers = [d["future"] for d in self.application_instances.values()]
            for task in (*listeners, *consumers):
                task.cancel()
            # Consumers finish before the service they use goes away.
            await asyncio.gather(*listeners, *consumers, return_exceptions=True)
            if self.service is not None:
                await self.service.stop()

    def run(self) -> None:
        """Run until SIGINT or SIGTERM (``runworker``), then stop cleanly."""

        async def main() -> None:
            loop = asyncio.get_running_loop()
            task = asyncio.current_task()
            assert task is not None
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, task.cancel)
            try:
                await self.arun()
            except asyncio.CancelledError:
                logger.info("worker for %s stopped by signal", ", ".join(self.channels))

        asyncio.run(main())
