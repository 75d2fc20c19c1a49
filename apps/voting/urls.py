from django.urls import path

from apps.voting import views

app_name = "voting"

POLLS = "node/threads/<str:thread_id>/polls/"
POLL = POLLS + "<str:poll_id>/"

urlpatterns = [
    path(POLLS, views.polls, name="polls"),
    path(POLLS + "enable/", views.enable, name="enable"),
    path(POLL, views.poll, name="poll"),
    path(POLL + "vote/", views.vote, name="vote"),
    path(POLL + "withdraw/", views.withdraw, name="withdraw"),
    path(POLL + "close/", views.close, name="close"),
]
