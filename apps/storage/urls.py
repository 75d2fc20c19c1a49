"""The storage pages (namespace ``storage``), with the node's other pages under /node/."""

from django.urls import path

from apps.storage import holder_views, views

app_name = "storage"

STORAGE = "node/storage/"
SNAPSHOT = STORAGE + "snapshots/<str:snapshot_id>/"
HOLDERS = STORAGE + "holders/"

urlpatterns = [
    path(STORAGE, views.backups, name="backups"),
    path(STORAGE + "backup/", views.backup_start, name="backup_start"),
    path(STORAGE + "jobs/<int:job_id>/", views.job, name="job"),
    path(STORAGE + "jobs/<int:job_id>/live/", views.job_live, name="job_live"),
    path(SNAPSHOT, views.snapshot, name="snapshot"),
    path(SNAPSHOT + "download/", views.download, name="download"),
    path(SNAPSHOT + "restore/", views.restore_start, name="restore_start"),
    path(HOLDERS, holder_views.holders, name="holders"),
    path(HOLDERS + "invite/", holder_views.holder_invite, name="holder_invite"),
    path(HOLDERS + "check/", holder_views.holders_check, name="holders_check"),
    path(HOLDERS + "retention/", holder_views.retention_save, name="retention"),
    path(HOLDERS + "prune/", holder_views.prune, name="prune"),
    path(HOLDERS + "held/<str:party>/", holder_views.held_grant, name="held_grant"),
]
