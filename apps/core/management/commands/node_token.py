"""``manage.py node_token``: print a new API token for the owner (the headless setup path).

Creates the owner (and the party's master secret) if the node has none yet; the owner can still
claim the node in a browser later to set a password and see the recovery phrase.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from apps.core import identity, services


class Command(BaseCommand):
    help = "Print a new API token for the node's owner (creating the owner if there is none)."

    def handle(self, *args: Any, **options: Any) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        identity.device_key_ensure(Path(settings.DATA_DIR))
        owner = services.owner_ensure()
        # Only the token goes to stdout, so scripts can do TOKEN=$(manage.py node_token).
        self.stdout.write(services.api_token_create(user=owner))
