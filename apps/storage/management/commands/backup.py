"""``manage.py backup <folder> [--label L]``: back a folder up now.

With the node running, the node runs the backup and this command shows its progress; without,
this process runs it, placing the shares on this device (the party's other holders get theirs
when the node runs).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.storage import jobs
from apps.storage.backup import backup_start
from apps.storage.models import Job
from apps.storage.space import StorageError

INLINE = (
    "Shares go to this device now; your other holders get theirs when the node runs (make run)."
)


class Command(BaseCommand):
    help = "Back up a folder (encrypted, deduplicated, spread over your holders)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("path", help="the folder to back up (its full path)")
        parser.add_argument("--label", default="", help="a name for this backup")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            job = backup_start(path=options["path"], label=options["label"])
        except StorageError as exc:
            raise CommandError(exc.words) from exc
        self.stdout.write(f"Backing up {job.source}.")
        job = jobs.command_run(job, self._write, what="backup", inline=INLINE)
        if job.state != Job.State.DONE:
            raise CommandError(jobs.job_view(job)["words"])
        view = jobs.job_view(job)
        self.stdout.write(
            f"Done: {view['files_done']} files, {jobs.size_words(view['bytes_done'])}; "
            f"{jobs.size_words(view['new_bytes'])} new, "
            f"{jobs.size_words(view['stored_bytes'])} stored. Backup {job.snapshot}."
        )
        if job.problem:
            self.stdout.write(job.problem)

    def _write(self, text: str) -> None:
        self.stdout.write(text, ending="")
        self.stdout.flush()
