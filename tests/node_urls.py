"""The node's URLs plus the notes API of the test replicated app."""

from django.urls import include, path

from sereus_web.urls import urlpatterns as node_urlpatterns

urlpatterns = [
    path("api/test/", include("tests.replicated_app.urls")),
    *node_urlpatterns,
]
