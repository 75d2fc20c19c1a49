"""The personal ledger's routes under /api/v1/ledger/, composed by ``sereus_web.api_urls``."""

from django.urls import path

from apps.ledger import books_apis

LEDGER = "ledger/"

api_urlpatterns = [
    path(LEDGER, books_apis.BooksApi.as_view(), name="ledger"),
    path(LEDGER + "history/", books_apis.HistoryApi.as_view(), name="ledger_history"),
    path(LEDGER + "export/", books_apis.ExportApi.as_view(), name="ledger_export"),
    path(LEDGER + "import/", books_apis.ImportApi.as_view(), name="ledger_import"),
]
