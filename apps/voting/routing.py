from django.urls import path

from apps.voting.consumers import PollConsumer, PollsConsumer

websocket_urlpatterns = [
    path("ws/voting/<str:thread_id>/", PollsConsumer.as_asgi()),
    path("ws/voting/<str:thread_id>/<str:poll_id>/", PollConsumer.as_asgi()),
]
