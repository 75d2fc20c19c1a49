"""WebSocket URLs (wrapped in the origin check and session auth by sereus_web.asgi)."""

from django.urls import path

from apps.core.consumers import NodeStatusConsumer
from apps.core.threads.consumers import ThreadLiveConsumer

websocket_urlpatterns = [
    path("ws/node/", NodeStatusConsumer.as_asgi()),
    # Any string: a malformed id gets a 4404 close, not a routing error.
    path("ws/threads/<str:thread_id>/", ThreadLiveConsumer.as_asgi()),
]
