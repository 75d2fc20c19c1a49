"""The profile pages (namespace ``identity_profile``), with the node's other pages under /node/."""

from django.urls import path

from apps.identity import profile_views

app_name = "identity_profile"

PROFILE = "node/profile/"
# The core's thread_people is the thread's page (members): the profiles list has a path of its own.
PROFILES = "node/threads/<str:thread_id>/profiles/"
PEOPLE = "node/threads/<str:thread_id>/people/"

urlpatterns = [
    path(PROFILE, profile_views.profile_page, name="profile"),
    path(PROFILE + "share/", profile_views.share, name="share"),
    path(PROFILE + "unshare/", profile_views.unshare, name="unshare"),
    path(PROFILE + "credential/", profile_views.credential, name="credential"),
    path(PROFILES, profile_views.thread_people, name="thread_people"),
    path(PEOPLE + "<str:member>/", profile_views.thread_profile, name="thread_profile"),
]
