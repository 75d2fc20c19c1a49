"""The voting routes under /api/v1/, composed with the core's by ``sereus_web.api_urls``."""

from django.urls import path

from apps.core.api_urls import THREAD
from apps.voting import apis

POLLS = THREAD + "polls/"
POLL = POLLS + "<str:poll_id>/"

api_urlpatterns = [
    path(POLLS, apis.PollsApi.as_view(), name="polls"),
    path(POLL, apis.PollApi.as_view(), name="poll"),
    path(POLL + "ballot/", apis.BallotApi.as_view(), name="poll_ballot"),
    path(POLL + "close/", apis.CloseApi.as_view(), name="poll_close"),
]
