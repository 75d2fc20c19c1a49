from django.urls import path

from apps.ledger.consumers import TallyConsumer

websocket_urlpatterns = [
    path("ws/ledger/<str:thread_id>/", TallyConsumer.as_asgi()),
]
