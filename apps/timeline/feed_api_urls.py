"""The feed routes under /api/v1/, composed with the core's by ``sereus_web.api_urls``."""

from django.urls import path

from apps.timeline import feed_apis

FEED = "feed/"

api_urlpatterns = [
    path(FEED, feed_apis.FeedApi.as_view(), name="feed"),
    path(FEED + "rules/", feed_apis.RulesApi.as_view(), name="feed_rules"),
    path(FEED + "recipes/", feed_apis.RecipeImportApi.as_view(), name="feed_recipe_import"),
    path(
        FEED + "recipes/<path:name>/",
        feed_apis.RecipeExportApi.as_view(),
        name="feed_recipe_export",
    ),
]
