"""The record's pages (namespace ``medical``). Sharing and access, audit, import/export and the
emergency link add their own patterns (``access_urls``, ``io_views``, ``emergency_urls``) under
the same record prefix."""

from django.urls import include, path, register_converter

from apps.medical import access_urls, emergency_urls, entry_views, io_urls, views
from apps.medical.fhir import TYPE_BY_SLUG


class KindConverter:
    """Only the kinds of entry: the record's other pages (access, audit...) are not lists."""

    regex = "|".join(sorted(TYPE_BY_SLUG))

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(KindConverter, "kind")

app_name = "medical"

RECORDS = "medical/"
RECORD = "node/threads/<str:thread_id>/record/"
KIND = RECORD + "<kind:slug>/"
ENTRY = KIND + "entry/<str:fhir_id>/"

urlpatterns = [
    path(RECORDS, views.records, name="records"),
    path(RECORD, views.record, name="record"),
    path(RECORD + "chart/", views.chart, name="chart"),
    path(RECORD + "chart/<str:code>/", views.chart, name="chart"),
    path(RECORD + "documents/<str:fhir_id>/file/", entry_views.document, name="document"),
    path(KIND, views.type_list, name="type_list"),
    path(KIND + "new/", entry_views.entry_new, name="entry_new"),
    path(ENTRY, entry_views.entry, name="entry"),
    path(ENTRY + "edit/", entry_views.entry_edit, name="entry_edit"),
    path(ENTRY + "delete/", entry_views.entry_delete, name="entry_delete"),
]


# The record's other pages: sharing and access, audit, import/export, the emergency link.
urlpatterns += [path(RECORD, include(access_urls.urlpatterns))]
urlpatterns += io_urls.urlpatterns
urlpatterns += [path(RECORD, include(emergency_urls.manage_urls))]
