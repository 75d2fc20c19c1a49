"""The project's routes with the market's, for the market's page and API tests while the
project does not list them yet (``sereus_web.urls`` and ``app_routes`` are the lead's): the
``routes`` fixture switches to this URLconf only when the market's are missing."""

from __future__ import annotations

import pytest
from django.urls import include, path

from sereus_web import urls as project
from sereus_web.app_routes import API_URLS, patterns_collect

MARKET_API = ("apps.market.api_urls", "apps.market.deal_api_urls")
LISTED = "apps.market.api_urls" in API_URLS

api = patterns_collect(tuple(dict.fromkeys(API_URLS + MARKET_API)), "api_urlpatterns")
urlpatterns = [
    path("", include("apps.market.urls")),
    path("api/v1/", include((api, "api"))),
    *project.urlpatterns,
]


@pytest.fixture(autouse=True)
def routes(settings) -> None:
    if not LISTED:
        settings.ROOT_URLCONF = __name__
