"""A node process that writes notes to one thread as fast as it can, printing ``ack <id>`` once
each write is committed; the crash test kills it with SIGKILL at random moments.

Usage: python -m tests.support.crash_writer <thread-hex>  (SEREUS_DATA_DIR names the node)
"""

import os
import sys
import uuid

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sereus_web.settings.test")

import django

django.setup()

from apps.core.threads.context import thread_context  # noqa: E402
from tests.replicated_app.models import Note  # noqa: E402


def main() -> None:
    thread = bytes.fromhex(sys.argv[1])
    with thread_context(thread):
        Note.objects.count()  # open the database before saying we are ready
        print("ready", flush=True)
        while True:
            note = Note.objects.create(id=uuid.uuid4(), title="crash test")
            print(f"ack {note.id.hex}", flush=True)


if __name__ == "__main__":
    main()
