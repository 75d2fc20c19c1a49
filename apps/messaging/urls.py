from django.urls import path

from apps.messaging import views

app_name = "messaging"

MESSAGE = "node/messages/<str:thread_id>/m/<str:message_id>/"

urlpatterns = [
    path("node/messages/", views.conversation_list, name="list"),
    # Before the conversation's address, which would take "invite" for a thread id.
    path("node/messages/invite/", views.invite_someone, name="invite"),
    path("node/messages/<str:thread_id>/", views.conversation, name="conversation"),
    path(
        "node/messages/<str:thread_id>/invited/<str:invite_id>/",
        views.invited,
        name="invited",
    ),
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
