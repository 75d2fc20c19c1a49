"""The core's routes under /api/v1/: the node, the network, threads, members, invites and writes.

The project package (``sereus_web.api_urls``) composes them with each app's routes under the one
``api`` namespace, and serves the schema and docs; the core names no app.
"""

from django.urls import path

from apps.core.apis import NodeApi
from apps.core.threads import apis as threads
from apps.core.threads import app_apis, naming_apis, write_apis
from apps.core.threads.leave_api import ThreadLeaveApi
from apps.p2p.apis import NetworkApi

# The prefix of everything about one thread; apps put their thread routes under it too.
THREAD = "threads/<str:thread_id>/"

api_urlpatterns = [
    path("node/", NodeApi.as_view(), name="node"),
    path("node/name/", naming_apis.DisplayNameApi.as_view(), name="node_name"),
    path("network/", NetworkApi.as_view(), name="network"),
    path("threads/", threads.ThreadListApi.as_view(), name="threads"),
    path(THREAD, threads.ThreadDetailApi.as_view(), name="thread"),
    path(THREAD + "leave/", ThreadLeaveApi.as_view(), name="thread_leave"),
    path(THREAD + "members/", threads.MemberListApi.as_view(), name="thread_members"),
    path(
        THREAD + "members/<str:member_id>/",
        threads.MemberDetailApi.as_view(),
        name="thread_member",
    ),
    path(
        THREAD + "members/<str:member_id>/contact-name/",
        naming_apis.ContactNameApi.as_view(),
        name="thread_member_contact_name",
    ),
    path(THREAD + "my-name/", naming_apis.MyNameApi.as_view(), name="thread_my_name"),
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
    path(THREAD + "writes/", write_apis.WriteListApi.as_view(), name="thread_writes"),
    path(THREAD + "writes/<str:op>/", write_apis.WriteDetailApi.as_view(), name="thread_write"),
    path(THREAD + "apps/", app_apis.ThreadAppListApi.as_view(), name="thread_apps"),
    path(THREAD + "apps/<str:app>/", app_apis.ThreadAppDetailApi.as_view(), name="thread_app"),
    path("invites/redeem/", threads.InviteRedeemApi.as_view(), name="invites_redeem"),
]
