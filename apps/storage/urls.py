"""The storage pages (under /node/storage/)."""

app_name = "storage"
urlpatterns: list = []
