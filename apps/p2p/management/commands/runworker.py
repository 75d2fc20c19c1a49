"""Channels' ``runworker``, with the p2p worker's lifecycle and a clean stop on SIGTERM.

A p2p worker that cannot listen where it was told (a port in use) or finds another p2p host on
its data dir exits non-zero with one plain sentence instead of running unreachable."""

from typing import Any

from channels.management.commands.runworker import Command as ChannelsRunworkerCommand
from django.core.management.base import CommandError

from apps.core.datadir_lock import DataDirBusy
from apps.core.listen_errors import ListenError
from apps.p2p.worker import P2PWorker


class Command(ChannelsRunworkerCommand):
    help = "Run a Channels worker; `runworker sereus-p2p` runs the node's p2p worker."
    worker_class = P2PWorker

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            super().handle(*args, **options)
        except (ListenError, DataDirBusy) as exc:
            raise CommandError(str(exc)) from exc
