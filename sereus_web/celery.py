"""The Celery app. Tasks are thin wrappers around services (DESIGN §10).

Default mode: the broker is kombu's filesystem transport inside the data dir and runnode consumes
it with a worker thread (``apps.core.background``). Scale-out mode: Redis and ``celery -A
sereus_web worker`` as its own process.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sereus_web.settings.dev")

app = Celery("sereus_web")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
