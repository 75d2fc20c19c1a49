"""The storage API under /api/v1/storage/ (listed in ``sereus_web.app_routes.API_URLS``)."""

from django.urls import path

from apps.storage import apis

STORAGE = "storage/"
SNAPSHOT = STORAGE + "snapshots/<str:snapshot_id>/"
HOLDERS = STORAGE + "holders/"

api_urlpatterns = [
    path(STORAGE + "backups/", apis.BackupApi.as_view(), name="storage_backups"),
    path(STORAGE + "restores/", apis.RestoreApi.as_view(), name="storage_restores"),
    path(STORAGE + "jobs/<int:job_id>/", apis.JobApi.as_view(), name="storage_job"),
    path(STORAGE + "snapshots/", apis.SnapshotListApi.as_view(), name="storage_snapshots"),
    path(SNAPSHOT + "files/", apis.SnapshotFilesApi.as_view(), name="storage_files"),
    path(SNAPSHOT + "download/", apis.SnapshotDownloadApi.as_view(), name="storage_download"),
    path(HOLDERS, apis.HoldersApi.as_view(), name="storage_holders"),
    path(HOLDERS + "invite/", apis.InviteApi.as_view(), name="storage_invite"),
    path(HOLDERS + "check/", apis.CheckApi.as_view(), name="storage_check"),
    path(STORAGE + "retention/", apis.RetentionApi.as_view(), name="storage_retention"),
    path(STORAGE + "prune/", apis.PruneApi.as_view(), name="storage_prune"),
    path(STORAGE + "held/", apis.HeldListApi.as_view(), name="storage_held"),
    path(STORAGE + "held/<str:party>/", apis.HeldGrantApi.as_view(), name="storage_held_grant"),
]
