"""A node process that writes notes to one thread as fast as it can, printing ``ack <id>`` once
each write is committed; the crash test kills it with SIGKILL at random moments.

Django is set up once, in a parent that never opens a database; each ``go`` line on its stdin
forks a writer child (a real process with its own connections, killed like any other), which
says ``ready <pid>`` once its database is open. When that child is gone the parent says
``done <pid>``, so every ``ack`` of the child is read before the test checks the file. Starting
a fresh interpreter for each of the 50 kills cost a second and a half each.

Usage: python -m tests.support.crash_writer <thread-hex>  (SEREUS_DATA_DIR names the node)
"""

import os
import sys
import traceback
import uuid

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sereus_web.settings.test")

import django

django.setup()

from apps.core.threads.context import thread_context  # noqa: E402
from tests.replicated_app.models import Note  # noqa: E402


def _say(line: str) -> None:
    # One write() per line, so a kill cannot cut one in two: an unbuffered print writes the
    # text and its newline separately, and a kill between them glued the parent's next line
    # ("done") to the half-written ack, which the test then never saw.
    os.write(1, f"{line}\n".encode())


def _write_forever(thread: bytes) -> None:
    with thread_context(thread):
        Note.objects.count()  # open the database before saying we are ready
        _say(f"ready {os.getpid()}")
        while True:
            note = Note.objects.create(id=uuid.uuid4(), title="crash test")
            _say(f"ack {note.id.hex}")


def main() -> None:
    thread = bytes.fromhex(sys.argv[1])
    for line in sys.stdin:
        if line.strip() != "go":
            continue
        child = os.fork()
        if child == 0:
            try:
                _write_forever(thread)
            except BaseException:
                traceback.print_exc()  # on stderr: a writer that dies by itself says why
            finally:
                os._exit(1)
        os.waitpid(child, 0)
        _say(f"done {child}")


if __name__ == "__main__":
    main()
