"""The emergency link's routes, for the project's URL modules to include:

- ``manage_urls``: the patient's page, relative to a record's pages (names in the ``medical``
  namespace: ``emergency_manage``, ``emergency_revoke``), e.g.
  ``path("node/threads/<str:thread_id>/record/", include(manage_urls))``;
- ``public_urls``: ``/e/<link>/``, public, in the ``emergency`` namespace: the module
  ``emergency_public_urls`` (``path("", include("apps.medical.emergency_public_urls"))``);
- ``api_urlpatterns`` (also ``api_urls``): under ``/api/v1/``; list this module in
  ``sereus_web.app_routes.API_URLS``.
"""

from django.urls import path

from apps.core.api_urls import THREAD
from apps.medical import emergency_apis, emergency_public_urls, emergency_views

manage_urls = [
    path("emergency/", emergency_views.manage, name="emergency_manage"),
    path("emergency/<str:link_id>/revoke/", emergency_views.revoke, name="emergency_revoke"),
]

public_urls = (emergency_public_urls.urlpatterns, emergency_public_urls.app_name)

api_urlpatterns = [
    path(
        THREAD + "emergency/",
        emergency_apis.EmergencyLinksApi.as_view(),
        name="medical_emergency",
    ),
    path(
        THREAD + "emergency/<str:link_id>/",
        emergency_apis.EmergencyLinkApi.as_view(),
        name="medical_emergency_link",
    ),
]
api_urls = api_urlpatterns
