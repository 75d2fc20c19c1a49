from django.urls import path

from apps.timeline.consumers import FeedConsumer, PostConsumer, TimelineConsumer

websocket_urlpatterns = [
    path("ws/feed/", FeedConsumer.as_asgi()),
    path("ws/timeline/<str:thread_id>/", TimelineConsumer.as_asgi()),
    path("ws/timeline/<str:thread_id>/<str:post_id>/", PostConsumer.as_asgi()),
]
