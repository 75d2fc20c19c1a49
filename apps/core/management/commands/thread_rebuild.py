"""``manage.py thread_rebuild <thread>``: rebuild a thread's tables from its op log alone and
report whether they equal the live tables (the integrity check); ``--repair`` rewrites the live
tables from the log when they differ."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core import datadir_lock
from apps.core.models import Thread
from apps.core.threads.database import ThreadDatabaseError
from apps.core.threads.registry import thread_database


class Command(BaseCommand):
    help = "Rebuild a thread's tables from its op log and compare them with the live tables."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("thread", help="the thread id (hex), or a unique prefix of it")
        parser.add_argument(
            "--repair", action="store_true", help="rewrite the live tables from the log"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        prefix = options["thread"].lower()
        matches = list(Thread.objects.filter(pk__startswith=prefix).values_list("pk", flat=True))
        if len(matches) != 1:
            raise CommandError(
                f"no thread with id {prefix!r}" if not matches else f"{prefix!r} is ambiguous"
            )
        thread = bytes.fromhex(matches[0])
        # Checking reads only and may run beside the node; repairing rewrites tables the
        # running node writes too, so it needs the node stopped.
        guard = (
            datadir_lock.held(Path(settings.DATA_DIR), datadir_lock.NODE, datadir_lock.P2P)
            if options["repair"]
            else contextlib.nullcontext()
        )
        try:
            with guard:
                report = thread_database(thread).rebuild_check(repair=options["repair"])
        except datadir_lock.DataDirBusy as exc:
            raise CommandError(f"{exc} (--repair needs the node stopped)") from exc
        except ThreadDatabaseError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"thread {matches[0]}: {report.ops} ops, {report.rows} rows")
        for line in report.differences:
            self.stdout.write(f"  {line}")
        if report.matches:
            done = "repaired: " if options["repair"] and report.repaired else ""
            self.stdout.write(f"{done}the log's rebuild matches the live tables")
        else:
            raise CommandError("the live tables differ from the log's rebuild (see above)")
