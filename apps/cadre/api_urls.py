"""The devices API under /api/v1/ (listed in ``sereus_web.app_routes.API_URLS``)."""

from django.urls import path

from apps.cadre import apis

DEVICES = "devices/"

api_urlpatterns = [
    path(DEVICES, apis.DeviceListApi.as_view(), name="devices"),
    path(DEVICES + "link/", apis.DeviceLinkApi.as_view(), name="devices_link"),
    path(DEVICES + "join/", apis.DeviceJoinApi.as_view(), name="devices_join"),
    path(DEVICES + "restore/", apis.RestoreApi.as_view(), name="devices_restore"),
    path(DEVICES + "mirror/", apis.MirrorStatusApi.as_view(), name="devices_mirror"),
    path(DEVICES + "<str:device>/", apis.DeviceDetailApi.as_view(), name="device"),
]
