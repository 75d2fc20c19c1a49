"""``manage.py device_proof <thread id> <member id>``: this node's device signs that it acts for
that member in that thread, and prints the signature (hex).

A member certifies another of its nodes in a thread with this proof (the admin's *Thread
devices* form, or ``services.device_certify``): without it, anyone could claim a device key that
is not theirs and keep its real owner from ever certifying it (issue 9).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.core import identity
from apps.core.thread import keys


def _key(text: str, what: str) -> bytes:
    try:
        value = bytes.fromhex(text)
    except ValueError:
        value = b""
    if len(value) != 32:
        raise CommandError(f"{what} must be 64 hexadecimal characters")
    return value


class Command(BaseCommand):
    help = "Print this node's proof that it may act for a member in a thread (for certifying it)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("thread", help="the thread id (64 hexadecimal characters)")
        parser.add_argument("member", help="the member key it will act for (hex)")

    def handle(self, *args: Any, **options: Any) -> None:
        thread = _key(options["thread"], "the thread id")
        member = _key(options["member"], "the member key")
        device = identity.device_key_ensure(Path(settings.DATA_DIR)).signing_key
        self.stdout.write(keys.device_proof_sign(device, thread, member).hex())
