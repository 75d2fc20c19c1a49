"""The messaging routes under /api/v1/ (a conversation's messages, its receipt, attachments),
composed with the core's by ``sereus_web.api_urls``."""

from django.urls import path

from apps.core.api_urls import THREAD
from apps.messaging import apis

api_urlpatterns = [
    path(THREAD + "messages/", apis.MessageListApi.as_view(), name="messages"),
    path(THREAD + "receipt/", apis.ReceiptApi.as_view(), name="messages_receipt"),
    path(
        THREAD + "attachments/<str:attachment_id>/",
        apis.AttachmentApi.as_view(),
        name="attachment",
    ),
    path(THREAD + "messages/<str:message_id>/", apis.MessageDetailApi.as_view(), name="message"),
]
