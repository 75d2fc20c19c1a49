"""The profile routes under /api/v1/, composed with the core's by ``sereus_web.api_urls``."""

from django.urls import path

from apps.core.api_urls import THREAD
from apps.identity import profile_apis

api_urlpatterns = [
    path("profile/fields/", profile_apis.FieldsApi.as_view(), name="profile_fields"),
    path("profile/credential/", profile_apis.CredentialApi.as_view(), name="profile_credential"),
    path(THREAD + "profile/", profile_apis.ThreadProfilesApi.as_view(), name="profile_thread"),
    path(THREAD + "profile/share/", profile_apis.ShareApi.as_view(), name="profile_share"),
]
