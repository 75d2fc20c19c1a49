"""The record's sharing, access and audit pages, relative to a record's pages. No ``app_name``:
included under the record's prefix inside the ``medical`` namespace, e.g.
``path("node/threads/<str:thread_id>/record/", include(access_urls))``, they are
``medical:share``, ``medical:shared``, ``medical:shared_status``, ``medical:access``,
``medical:invite_revoke``, ``medical:grant_edit``, ``medical:access_revoke`` and
``medical:audit``."""

from django.urls import path

from apps.medical import access_views

urlpatterns = [
    path("share/", access_views.share, name="share"),
    path("share/<str:invite_id>/", access_views.shared, name="shared"),
    path("share/<str:invite_id>/status/", access_views.shared_status, name="shared_status"),
    path("access/", access_views.access_page, name="access"),
    path(
        "access/invites/<str:invite_id>/revoke/",
        access_views.invite_revoke,
        name="invite_revoke",
    ),
    path("access/<str:member_id>/", access_views.grant_edit, name="grant_edit"),
    path("access/<str:member_id>/revoke/", access_views.access_revoke, name="access_revoke"),
    path("audit/", access_views.audit_page, name="audit"),
]
