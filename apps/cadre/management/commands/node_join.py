"""``manage.py node_join <device link>``: make this fresh node another device of yours.

The link comes from the devices page of your other device ("Add a device"). The checks that
need nothing but this node happen here; the join itself (reaching your other device, receiving
your threads) is the running node's: its cadre worker carries it out and the devices page shows
how far it got.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.cadre.control import CadreError
from apps.cadre.link import join_start
from apps.core import datadir_lock


class Command(BaseCommand):
    help = "Join your other device with a device link (made on its devices page)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("link", help="the device link (sereus:device/...)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            join = join_start(link=options["link"])
        except CadreError as exc:
            raise CommandError(exc.words) from exc
        kind = "a mirror of" if join.kind == "mirror" else "another device of"
        self.stdout.write(f"This node will become {kind} yours.")
        running = datadir_lock.record(Path(settings.DATA_DIR), datadir_lock.P2P) is not None
        if running:
            self.stdout.write(
                "The node is running: it is reaching your other device now. The devices page "
                "shows each thread as it arrives."
            )
        else:
            self.stdout.write(
                "Start the node (make run); it joins your other device on start. Do it before "
                "the link expires (ten minutes after it was made)."
            )
