"""The import and export pages of a record. No ``app_name``: ``apps.medical.urls`` adds these
patterns to the ``medical`` namespace as they are (``medical:io``, ``medical:export``,
``medical:ips``, ``medical:consents``, ``medical:resource_json``), so they carry the record's
whole prefix (the same as ``urls.RECORD``, which imports this module)."""

from django.urls import path

from apps.medical import io_views

RECORD = "node/threads/<str:thread_id>/record/"

urlpatterns = [
    path(RECORD + "io/", io_views.io_page, name="io"),
    path(RECORD + "export.json", io_views.export, name="export"),
    path(RECORD + "ips.json", io_views.ips_download, name="ips"),
    path(RECORD + "consents.json", io_views.consents, name="consents"),
    path(
        RECORD + "<str:slug>/entry/<str:fhir_id>.json",
        io_views.resource_json,
        name="resource_json",
    ),
]
