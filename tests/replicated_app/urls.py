from django.urls import path

from tests.replicated_app import apis

urlpatterns = [
    path("threads/<str:thread_id>/notes/", apis.NotesApi.as_view()),
    path("threads/<str:thread_id>/notes/<str:note_id>/", apis.NoteApi.as_view()),
    path("threads/<str:thread_id>/dump/", apis.DumpApi.as_view()),
]
