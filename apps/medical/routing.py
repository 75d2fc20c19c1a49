"""The record's live sockets (``WEBSOCKET_URLS``): the overview, and a list of one kind."""

from django.urls import path

import apps.medical.urls  # noqa: F401 - registers the "kind" converter
from apps.medical.consumers import RecordConsumer

websocket_urlpatterns = [
    path("ws/medical/<str:thread_id>/", RecordConsumer.as_asgi()),
    path("ws/medical/<str:thread_id>/<kind:slug>/", RecordConsumer.as_asgi()),
]
