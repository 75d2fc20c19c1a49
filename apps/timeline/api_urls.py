"""The timeline routes under /api/v1/, composed with the core's by ``sereus_web.api_urls``."""

from django.urls import path

from apps.core.api_urls import THREAD
from apps.timeline import apis

POSTS = THREAD + "posts/"
POST = POSTS + "<str:post_id>/"

api_urlpatterns = [
    path(POSTS, apis.PostsApi.as_view(), name="timeline_posts"),
    path(POST, apis.PostApi.as_view(), name="timeline_post"),
    path(POST + "history/", apis.HistoryApi.as_view(), name="timeline_history"),
    path(POST + "reactions/<str:emoji>/", apis.ReactionApi.as_view(), name="timeline_reaction"),
    path(THREAD + "atom/", apis.AtomApi.as_view(), name="timeline_atom"),
]
