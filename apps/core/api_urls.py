"""URLs under /api/: the versioned API and its OpenAPI schema and docs (public, like the code)."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from apps.core.apis import NodeApi
from apps.core.threads import apis as threads
from apps.messaging import apis as messaging
from apps.p2p.apis import NetworkApi

THREAD = "threads/<str:thread_id>/"

v1 = (
    [
        path("node/", NodeApi.as_view(), name="node"),
        path("network/", NetworkApi.as_view(), name="network"),
        path("threads/", threads.ThreadListApi.as_view(), name="threads"),
        path(THREAD, threads.ThreadDetailApi.as_view(), name="thread"),
        path(THREAD + "members/", threads.MemberListApi.as_view(), name="thread_members"),
        path(
            THREAD + "members/<str:member_id>/",
            threads.MemberDetailApi.as_view(),
            name="thread_member",
        ),
        path(THREAD + "invites/", threads.InviteCreateApi.as_view(), name="thread_invites"),
        path(
            THREAD + "invites/<str:invite_id>/",
            threads.InviteDetailApi.as_view(),
            name="thread_invite",
        ),
        path(
            THREAD + "invites/<str:invite_id>/qr.svg",
            threads.InviteQrApi.as_view(),
            name="thread_invite_qr",
        ),
        path(THREAD + "ops/", threads.OpLogApi.as_view(), name="thread_ops"),
        path(THREAD + "writes/", threads.WriteListApi.as_view(), name="thread_writes"),
        path(THREAD + "writes/<str:op>/", threads.WriteDetailApi.as_view(), name="thread_write"),
        path(THREAD + "messages/", messaging.MessageListApi.as_view(), name="messages"),
        path(THREAD + "receipt/", messaging.ReceiptApi.as_view(), name="messages_receipt"),
        path(
            THREAD + "attachments/<str:attachment_id>/",
            messaging.AttachmentApi.as_view(),
            name="attachment",
        ),
        path(
            THREAD + "messages/<str:message_id>/",
            messaging.MessageDetailApi.as_view(),
            name="message",
        ),
        path("invites/redeem/", threads.InviteRedeemApi.as_view(), name="invites_redeem"),
    ],
    "api",
)

urlpatterns = [
    path("v1/", include(v1)),
    path("schema/", SpectacularAPIView.as_view(), name="api_schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api_schema"), name="api_docs"),
]
