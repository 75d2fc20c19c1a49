"""Top-level URLs: the public site at the root, node pages under /node/, the API under /api/."""

from django.contrib import admin
from django.urls import include, path

from apps.core.threads.admin_site import thread_data_select, thread_data_site

urlpatterns = [
    # First: Django tries the patterns in order and lists every one it tried on the way, so
    # the API, requested most often, came after 16 includes (~8 % of a message POST). Only
    # "api/..." paths can match it, and none of the others claims one (tests/core/test_urls.py).
    path("api/", include("sereus_web.api_urls")),
    path("", include("apps.website.urls")),
    path("", include("apps.core.urls")),
    path("", include("apps.messaging.urls")),
    path("", include("apps.checklist.urls")),
    path("", include("apps.voting.urls")),
    path("", include("apps.identity.urls")),
    path("", include("apps.identity.profile_urls")),
    path("", include("apps.timeline.blog_urls")),
    path("", include("apps.timeline.urls")),
    path("", include("apps.ledger.books_urls")),
    path("", include("apps.ledger.urls")),
    path("", include("apps.market.urls")),
    path("", include("apps.medical.urls")),
    path("", include("apps.medical.emergency_public_urls")),
    path("", include("apps.cadre.urls")),
    path("", include("apps.storage.urls")),
    path("admin/", admin.site.urls),
    path("node/threads/<str:thread_id>/data/", thread_data_select, name="thread_data_select"),
    path("node/thread-data/", thread_data_site.urls),
]
