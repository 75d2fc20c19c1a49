from django.urls import path

from apps.timeline import views, views_feed

app_name = "timeline"

TIMELINE = "node/threads/<str:thread_id>/timeline/"
POST = TIMELINE + "p/<str:post_id>/"
REPLY = POST + "r/<str:reply_id>/"

urlpatterns = [
    path("node/feed/", views_feed.feed, name="feed"),
    path("node/feed/rules/", views_feed.rules, name="rules"),
    path("node/feed/rules/add/", views_feed.feed_add, name="feed_add"),
    path("node/feed/rules/remove/", views_feed.feed_remove, name="feed_remove"),
    path("node/feed/rules/recipe/", views_feed.recipe, name="recipe"),
    path("node/feed/rules/import/", views_feed.recipe_upload, name="recipe_upload"),
    path(TIMELINE, views.timeline, name="timeline"),
    path(POST, views.post, name="post"),
    path(POST + "edit/", views.post_edit, name="edit"),
    path(POST + "delete/", views.post_delete, name="delete"),
    path(POST + "react/", views.react, name="react"),
    path(POST + "share/", views.share, name="share"),
    path(POST + "history/", views.history, name="history"),
    path(REPLY + "edit/", views.reply_edit, name="reply_edit"),
    path(REPLY + "delete/", views.reply_delete, name="reply_delete"),
    path(TIMELINE + "a/<str:attachment_id>/", views.attachment, name="attachment"),
    path(TIMELINE + "a/<str:attachment_id>/thumb/", views.attachment_thumb, name="thumb"),
]
