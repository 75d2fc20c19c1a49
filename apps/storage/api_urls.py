"""The storage API (under /api/v1/storage/)."""

api_urlpatterns: list = []
