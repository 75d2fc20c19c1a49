"""Public URLs: the Sereus Fabric pages, and the PWA files at the site root.

The manifest and the service worker must live at the root: a service worker controls only the
paths below its own URL, and it has to control every page of the node.
"""

from django.urls import path

from apps.website import views

app_name = "website"

urlpatterns = [
    path("", views.home, name="home"),
    path("fabric/threads/", views.threads, name="threads"),
    path("fabric/uses/", views.uses, name="uses"),
    path("fabric/uses/<slug:slug>/", views.use, name="use"),
    path("fabric/run/", views.run, name="run"),
    path("fabric/api/", views.api, name="api"),
    path("manifest.webmanifest", views.manifest, name="manifest"),
    path("sw.js", views.service_worker, name="service_worker"),
    path("offline/", views.offline, name="offline"),
]
