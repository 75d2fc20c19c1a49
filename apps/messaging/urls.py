from django.urls import path

from apps.messaging import views

app_name = "messaging"

MESSAGE = "node/messages/<str:thread_id>/m/<str:message_id>/"

urlpatterns = [
    path("node/messages/", views.conversation_list, name="list"),
    path("node/messages/<str:thread_id>/", views.conversation, name="conversation"),
    path("node/messages/<str:thread_id>/name/", views.profile, name="profile"),
    path(MESSAGE + "edit/", views.message_edit, name="edit"),
    path(MESSAGE + "delete/", views.message_delete, name="delete"),
    path(MESSAGE + "react/", views.message_react, name="react"),
    path(
        "node/messages/<str:thread_id>/a/<str:attachment_id>/",
        views.attachment_get,
        name="attachment",
    ),
    path(
        "node/messages/<str:thread_id>/a/<str:attachment_id>/thumb/",
        views.attachment_thumb,
        name="attachment_thumb",
    ),
]
