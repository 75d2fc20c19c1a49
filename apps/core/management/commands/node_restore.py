"""``manage.py node_restore``: make an empty node a device of the party whose recovery phrase is
read from standard input (24 words, spaces or newlines between them).

With ``--from <multiaddr>/p2p/<peer id>`` (repeatable: a device or mirror of the party), the
node, once started, fetches the party's threads from there and becomes one of its devices
(``apps.cadre.restore``); without it only the master secret is restored."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.cadre.control import CadreError
from apps.core import datadir_lock, identity, services


class Command(BaseCommand):
    help = "Restore the party's master secret from a recovery phrase read on stdin."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--from",
            dest="sources",
            action="append",
            default=[],
            metavar="MULTIADDR",
            help="a device or mirror of yours to restore the threads from: "
            "/ip4/<ip>/tcp/<port>/p2p/<peer id> (repeatable)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.SEREUS.mirror:
            raise CommandError(
                "This node is a mirror: it never holds a recovery secret. Restore on a node "
                "started without SEREUS_MIRROR."
            )
        sources = self._sources(options["sources"])
        if sys.stdin.isatty():
            self.stderr.write("Type or paste the 24 words of the recovery phrase, then Ctrl-D:")
        # A phrase is a few hundred bytes; refuse to slurp an accidental huge file.
        phrase = sys.stdin.read(4096)
        data_dir = Path(settings.DATA_DIR)
        try:
            # A node running on this data dir would go on with the identity being replaced.
            with datadir_lock.held(data_dir, datadir_lock.NODE, datadir_lock.P2P):
                call_command("migrate", interactive=False, verbosity=0)
                services.node_restore(phrase=phrase)
                if sources:
                    from apps.cadre.restore import restore_queue

                    restore_queue(sources)
        except datadir_lock.DataDirBusy as exc:
            raise CommandError(str(exc)) from exc
        except identity.RecoveryPhraseError as exc:
            raise CommandError(f"that is not a valid recovery phrase: {exc}") from exc
        except services.NodeSetupError as exc:
            raise CommandError(str(exc)) from exc
        except CadreError as exc:
            raise CommandError(exc.words) from exc
        device = identity.device_key_ensure(data_dir)
        self.stdout.write(
            "Restored. This node is a new device of your party "
            f"(peer id {device.peer_id}). Start it with runnode and open the claim link "
            "to set your password."
        )
        if sources:
            self.stdout.write(
                "Once it runs, it fetches your threads from the device or mirror you named "
                "and becomes one of your devices; the Devices page shows how far it got."
            )

    @staticmethod
    def _sources(texts: list[str]) -> list[dict[str, Any]]:
        """Checked before anything is written: a typo leaves the data dir as it was."""
        if not texts:
            return []
        from apps.cadre.restore import sources_parse

        try:
            return sources_parse(texts)
        except CadreError as exc:
            raise CommandError(exc.words) from exc
