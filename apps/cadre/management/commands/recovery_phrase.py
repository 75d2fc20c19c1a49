"""``manage.py recovery_phrase``: the party's 24 words again, at the node's own shell.

The web shows the phrase once, when the node is claimed; whoever can run commands on the node
can read its master secret anyway, so the shell may show it again (asking for the passphrase
when the secret is sealed with one). The words go to standard output alone, the explanation to
standard error, so ``manage.py recovery_phrase > file`` keeps only the phrase."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.core import identity


class Command(BaseCommand):
    help = "Print the party's recovery phrase (24 words) for its owner."

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.SEREUS.mirror:
            raise CommandError(
                "This node is a mirror: it keeps only encrypted copies and never holds a "
                "recovery phrase. Run this on one of your own devices."
            )
        data_dir = Path(settings.DATA_DIR)
        if not identity.master_secret_exists(data_dir):
            raise CommandError(
                "This node has no recovery secret yet: claim it first (or restore it with "
                "node_restore)."
            )
        try:
            secret = self._secret(data_dir)
        except identity.WrongPassphrase as exc:
            raise CommandError("That passphrase does not open the recovery secret.") from exc
        except identity.KeyFileError as exc:
            raise CommandError(f"The recovery secret cannot be read: {exc}") from exc
        self.stderr.write(
            "Your recovery phrase. Anyone who has these words has all your threads: "
            "write them down and keep them away from this computer."
        )
        self.stdout.write(identity.recovery_phrase_from_secret(secret))

    @staticmethod
    def _secret(data_dir: Path) -> bytes:
        try:
            return identity.master_secret_load(data_dir)
        except identity.PassphraseRequired:
            passphrase = getpass.getpass("The recovery secret is locked; its passphrase: ")
            if not passphrase:
                raise identity.WrongPassphrase("no passphrase given") from None
            return identity.master_secret_load(data_dir, passphrase=passphrase)
