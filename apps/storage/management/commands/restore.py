"""``manage.py restore <backup> <folder> [--path P ...]``: restore a backup into a new folder.

``<backup>`` is a backup's id (the backups page and ``manage.py backup`` show it) or ``latest``.
The folder must be new or empty: a restore never overwrites. With the node running, the node
runs the restore and this command shows its progress; without, this process runs it.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.storage import jobs
from apps.storage.models import Job
from apps.storage.restore import restore_start
from apps.storage.space import StorageError


class Command(BaseCommand):
    help = "Restore a backup (by id, or latest) into a new folder."

    def add_arguments(self, parser) -> None:
        parser.add_argument("snapshot", help="the backup's id, or latest")
        parser.add_argument("target", help="the folder to restore into (new or empty)")
        parser.add_argument(
            "--path",
            action="append",
            default=[],
            help="only this file or folder of the backup (may be given more than once)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            job = restore_start(
                snapshot=options["snapshot"], target=options["target"], paths=options["path"]
            )
        except StorageError as exc:
            raise CommandError(exc.words) from exc
        self.stdout.write(f"Restoring backup {job.snapshot} into {job.target}.")
        job = jobs.command_run(job, self._write, what="restore")
        if job.state != Job.State.DONE:
            raise CommandError(jobs.job_view(job)["words"])
        self.stdout.write(
            f"Done: {job.files_done} files, {jobs.size_words(job.bytes_done)} in {job.target}."
        )

    def _write(self, text: str) -> None:
        self.stdout.write(text, ending="")
        self.stdout.flush()
