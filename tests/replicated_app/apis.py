"""A small API over the test app's notes, for node processes in integration tests and benchmarks:
write a note in a thread, read one, and dump a thread (its rows and its op log) to compare
nodes."""

from __future__ import annotations

import threading
import time

from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.models import Thread
from apps.core.threads.context import thread_context
from apps.core.threads.registry import thread_database
from apps.core.threads.signals import ops_written
from tests.replicated_app.models import Note


class _Written:
    """Wakes waiting readers whenever ops land in any thread of this process (no busy polling,
    which would compete for the GIL with the very sync it is timing)."""

    def __init__(self) -> None:
        self.generation = 0
        self._condition = threading.Condition()

    def bump(self, **kwargs: object) -> None:
        with self._condition:
            self.generation += 1
            self._condition.notify_all()

    def wait_past(self, generation: int, timeout: float) -> None:
        with self._condition:
            self._condition.wait_for(lambda: self.generation != generation, timeout)


_written = _Written()
ops_written.connect(_written.bump, dispatch_uid="test-notes-wait")


def _thread(thread_id: str) -> Thread:
    thread = Thread.objects.filter(pk=thread_id).first()
    if thread is None:
        raise NotFound("no such thread")
    return thread


class NoteInput(serializers.Serializer):
    id = serializers.UUIDField(required=False)  # chosen by the caller: it can wait for it first
    title = serializers.CharField(max_length=200)
    body = serializers.CharField(required=False, default="", allow_blank=True)


def _note(note: Note) -> dict:
    return {"id": note.id.hex, "title": note.title, "body": note.body, "stars": note.stars}


class NotesApi(APIView):
    def get(self, request: Request, thread_id: str) -> Response:
        with thread_context(_thread(thread_id).thread):
            return Response([_note(n) for n in Note.objects.order_by("id")])

    def post(self, request: Request, thread_id: str) -> Response:
        data = NoteInput(data=request.data)
        data.is_valid(raise_exception=True)
        with thread_context(_thread(thread_id).thread):
            note = Note.objects.create(**data.validated_data)
        # When the write (and its op) committed, by this machine's clock.
        return Response({**_note(note), "written_at": time.time()}, status=201)


class NoteApi(APIView):
    def get(self, request: Request, thread_id: str, note_id: str) -> Response:
        """``?wait=<seconds>`` (at most 10): wait for the note to arrive (benchmarks time how
        long a note written on one node takes to show on another, to the millisecond)."""
        try:
            wait = min(10.0, max(0.0, float(request.query_params.get("wait", 0))))
        except ValueError:
            wait = 0.0
        deadline = time.monotonic() + wait
        thread = _thread(thread_id).thread
        while True:
            seen = _written.generation
            with thread_context(thread):
                note = Note.objects.filter(pk=note_id).first()
            if note is not None:
                # When this node saw it (by this machine's clock): a benchmark that asks before
                # the note is written measures its arrival without the HTTP round trips.
                return Response({**_note(note), "seen_at": time.time()})
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise NotFound("no such note")
            _written.wait_past(seen, remaining)


class DumpApi(APIView):
    """Everything that must be equal on every node of a thread: its rows and its op log."""

    def get(self, request: Request, thread_id: str) -> Response:
        database = thread_database(_thread(thread_id).thread)
        connection = database.raw()
        notes = connection.execute(
            "SELECT id, title, body, pinned, stars FROM replicated_app_note ORDER BY id"
        ).fetchall()
        ops = connection.execute(
            "SELECT hex(hash), status FROM sereus_ops WHERE place = 'log' ORDER BY hash"
        ).fetchall()
        return Response(
            {
                "notes": [[v.hex() if isinstance(v, bytes) else v for v in row] for row in notes],
                "ops": ops,
            }
        )
