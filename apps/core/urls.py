from django.contrib.auth import views as auth_views
from django.urls import path

from apps.core import views
from apps.core.threads import app_views, naming_views
from apps.core.threads import views as threads

app_name = "core"

urlpatterns = [
    path("claim/", views.claim, name="claim"),
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="core/login.html", redirect_authenticated_user=True
        ),
        name="login",
    ),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("node/", views.dashboard, name="dashboard"),
    path("node/settings/", views.node_settings, name="settings"),
    path("node/settings/network/", views.network, name="network"),
    path("node/settings/ui/", views.ui_gallery, name="ui_gallery"),
    path("node/settings/passphrase/", views.passphrase_change, name="passphrase"),
    path("node/settings/recovery/", views.recovery_reveal, name="recovery_reveal"),
    path("node/settings/tokens/new/", views.api_token_create, name="token_create"),
    path("node/settings/tokens/revoke/", views.api_tokens_revoke, name="tokens_revoke"),
    path("node/settings/name/", naming_views.display_name, name="display_name"),
    path("node/threads/", threads.thread_list, name="threads"),
    path("node/threads/join/", threads.thread_join, name="thread_join"),
    path("node/threads/<str:thread_id>/", threads.thread_open, name="thread"),
    path("node/threads/<str:thread_id>/people/", threads.thread_detail, name="thread_people"),
    path("node/threads/<str:thread_id>/leave/", threads.thread_leave, name="thread_leave"),
    path("node/threads/<str:thread_id>/apps/", app_views.thread_app_toggle, name="thread_apps"),
    path("node/threads/<str:thread_id>/writes/", threads.thread_writes, name="thread_writes"),
    path("node/threads/<str:thread_id>/invite/", threads.invite_create, name="thread_invite"),
    path(
        "node/threads/<str:thread_id>/invites/<str:invite_id>/",
        threads.invite_qr,
        name="thread_invite_qr",
    ),
    path(
        "node/threads/<str:thread_id>/invites/<str:invite_id>/revoke/",
        threads.invite_revoke,
        name="thread_invite_revoke",
    ),
    path("node/threads/<str:thread_id>/my-name/", naming_views.my_name, name="thread_my_name"),
    path(
        "node/threads/<str:thread_id>/members/<str:member_id>/",
        naming_views.member,
        name="thread_member",
    ),
    path(
        "node/threads/<str:thread_id>/members/<str:member_id>/role/",
        threads.member_role,
        name="thread_member_role",
    ),
    path(
        "node/threads/<str:thread_id>/members/<str:member_id>/remove/",
        threads.member_remove,
        name="thread_member_remove",
    ),
]
