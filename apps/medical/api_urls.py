"""The medical record's routes under /api/v1/, composed with the core's by
``sereus_web.api_urls`` (listed in ``sereus_web.app_routes.API_URLS``)."""

from django.urls import path

from apps.core.api_urls import THREAD
from apps.medical import apis

FHIR = THREAD + "fhir/"
RESOURCE = FHIR + "<str:resource_type>/<str:rid>/"

api_urlpatterns = [
    path(FHIR, apis.FhirBundleApi.as_view(), name="medical_fhir"),
    path(FHIR + "export", apis.FhirExportApi.as_view(), name="medical_fhir_export"),
    path(FHIR + "$export", apis.FhirDollarExportApi.as_view(), name="medical_fhir_dollar_export"),
    path(FHIR + "<str:resource_type>/", apis.FhirTypeApi.as_view(), name="medical_fhir_type"),
    path(RESOURCE, apis.FhirResourceApi.as_view(), name="medical_fhir_resource"),
    path(RESOURCE + "_history/", apis.FhirHistoryApi.as_view(), name="medical_fhir_history"),
    path(THREAD + "ips/", apis.IpsApi.as_view(), name="medical_ips"),
    path(THREAD + "grants/", apis.GrantsApi.as_view(), name="medical_grants"),
    path(THREAD + "grants/<str:member>/", apis.GrantApi.as_view(), name="medical_grant"),
]
