"""URLs under /api/: the versioned API of the core and the apps (``app_routes``) and its OpenAPI
schema and docs (public, like the code)."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from sereus_web.app_routes import API_URLS, patterns_collect

v1 = (patterns_collect(API_URLS, "api_urlpatterns"), "api")

urlpatterns = [
    path("v1/", include(v1)),
    path("schema/", SpectacularAPIView.as_view(), name="api_schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api_schema"), name="api_docs"),
]
