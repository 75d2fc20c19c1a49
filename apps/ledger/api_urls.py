"""The ledger routes under /api/v1/, composed with the core's by ``sereus_web.api_urls``."""

from django.urls import path

from apps.core.api_urls import THREAD
from apps.ledger import apis, lift_apis

TALLY = THREAD + "tally/"

api_urlpatterns = [
    path("tallies/", apis.TalliesApi.as_view(), name="tallies"),
    path(TALLY, apis.TallyApi.as_view(), name="tally"),
    path(TALLY + "sign/", apis.SignApi.as_view(), name="tally_sign"),
    path(TALLY + "close/", apis.CloseApi.as_view(), name="tally_close"),
    path(THREAD + "chits/", apis.ChitsApi.as_view(), name="chits"),
    path("lifts/", lift_apis.LiftsApi.as_view(), name="lifts"),
    path("lifts/settings/", lift_apis.LiftSettingsApi.as_view(), name="lift_settings"),
    path("lifts/<str:lift_id>/", lift_apis.LiftApi.as_view(), name="lift"),
]
