"""The market search routes under /api/v1/, composed with the others by ``sereus_web.api_urls``
(listed in ``sereus_web.app_routes.API_URLS``)."""

from django.urls import path

from apps.market import search_apis

api_urlpatterns = [
    path("market/search/", search_apis.SearchApi.as_view(), name="market_search"),
    path("market/indexes/", search_apis.IndexesApi.as_view(), name="market_indexes"),
    path("market/index/", search_apis.IndexSettingApi.as_view(), name="market_index"),
]
