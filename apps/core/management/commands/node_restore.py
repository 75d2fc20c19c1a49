"""``manage.py node_restore``: make an empty node a device of the party whose recovery phrase is
read from standard input (24 words, spaces or newlines between them)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from apps.core import datadir_lock, identity, services


class Command(BaseCommand):
    help = "Restore the party's master secret from a recovery phrase read on stdin."

    def handle(self, *args: Any, **options: Any) -> None:
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
        except datadir_lock.DataDirBusy as exc:
            raise CommandError(str(exc)) from exc
        except identity.RecoveryPhraseError as exc:
            raise CommandError(f"that is not a valid recovery phrase: {exc}") from exc
        except services.NodeSetupError as exc:
            raise CommandError(str(exc)) from exc
        device = identity.device_key_ensure(data_dir)
        self.stdout.write(
            "Restored. This node is a new device of your party "
            f"(peer id {device.peer_id}). Start it with runnode and open the claim link "
            "to set your password."
        )
