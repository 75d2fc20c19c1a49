from django.urls import path

from apps.messaging.consumers import ConversationConsumer

websocket_urlpatterns = [
    path("ws/messages/<str:thread_id>/", ConversationConsumer.as_asgi()),
]
