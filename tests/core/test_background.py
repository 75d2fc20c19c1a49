"""Background tasks in default mode: queued as files, run by the embedded worker thread."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.utils import timezone

from apps.core.background import EmbeddedTaskWorker
from apps.core.tasks import sessions_clear_expired


@pytest.mark.django_db(transaction=True)
def test_task_queued_without_a_broker_server_runs_in_the_embedded_worker(settings, tmp_path):
    expired = SessionStore()
    expired.create()
    Session.objects.filter(session_key=expired.session_key).update(
        expire_date=timezone.now() - timedelta(days=1)
    )
    live = SessionStore()
    live.create()

    sessions_clear_expired.delay()
    # Queuing only writes a file: the caller (a request) never runs or waits for the task.
    assert Session.objects.filter(session_key=expired.session_key).exists()

    worker = EmbeddedTaskWorker(concurrency=1)
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while Session.objects.filter(session_key=expired.session_key).exists():
            assert time.monotonic() < deadline, "the embedded worker did not run the task"
            time.sleep(0.1)
    finally:
        worker.stop()
    assert Session.objects.filter(session_key=live.session_key).exists()
