from django.urls import path

from apps.checklist.consumers import ChecklistConsumer

websocket_urlpatterns = [
    path("ws/checklist/<str:thread_id>/", ChecklistConsumer.as_asgi()),
]
