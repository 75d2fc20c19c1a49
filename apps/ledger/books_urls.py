"""The personal ledger's page and its import steps and downloads."""

from django.urls import path

from apps.ledger import books_views

app_name = "ledger_books"

BOOKS = "ledger/books/"

urlpatterns = [
    path(BOOKS, books_views.books_page, name="books"),
    path(BOOKS + "import/", books_views.books_upload, name="upload"),
    path(BOOKS + "import/columns/", books_views.books_columns, name="columns"),
    path(BOOKS + "export/<str:kind>/", books_views.books_export, name="export"),
    path("node/threads/<str:thread_id>/books/", books_views.books_of_thread, name="thread"),
]
