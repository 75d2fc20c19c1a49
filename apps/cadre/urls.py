"""The devices pages (namespace ``cadre``), with the node's other pages under /node/."""

from django.urls import path

from apps.cadre import views

app_name = "cadre"

DEVICES = "node/devices/"

urlpatterns = [
    path(DEVICES, views.devices, name="devices"),
    path(DEVICES + "add/", views.device_add, name="device_add"),
    path(DEVICES + "links/<str:link_id>/status/", views.link_status, name="link_status"),
    path(DEVICES + "join/", views.join, name="join"),
    path(DEVICES + "join/live/", views.join_live, name="join_live"),
    path(DEVICES + "restore/", views.restore, name="restore"),
    path(DEVICES + "restore/live/", views.restore_live, name="restore_live"),
    path(DEVICES + "<str:device>/remove/", views.device_remove, name="device_remove"),
]
