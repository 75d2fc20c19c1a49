"""The one place that names the apps whose routes the project serves: the core imports no app.

``API_URLS`` lists modules that define ``api_urlpatterns`` (paths under ``/api/v1/``, named in
the ``api`` namespace: ``sereus_web.api_urls``); ``WEBSOCKET_URLS`` lists modules that define
``websocket_urlpatterns`` (Channels paths, behind the origin check and session auth:
``sereus_web.asgi``). The core comes first, then each app; a new app adds its modules here (and
its pages to ``sereus_web.urls``). Dotted names, as in ``INSTALLED_APPS``: the URLconf imports
only the API modules, the ASGI router only the websocket ones (their consumers need Django set
up first); a listed module without its list fails loudly, it is never skipped.
"""

from importlib import import_module
from typing import Any

API_URLS = (
    "apps.core.api_urls",
    "apps.messaging.api_urls",
    "apps.checklist.api_urls",
    "apps.voting.api_urls",
    "apps.timeline.api_urls",
    "apps.timeline.feed_api_urls",
    "apps.ledger.api_urls",
    "apps.ledger.books_api_urls",
    "apps.market.api_urls",
    "apps.market.deal_api_urls",
    "apps.market.search_api_urls",
    "apps.medical.api_urls",
    "apps.medical.emergency_urls",
    "apps.medical.audit_apis",
    "apps.cadre.api_urls",
    "apps.storage.api_urls",
    "apps.identity.profile_api_urls",
    "apps.identity.api_urls",
)
WEBSOCKET_URLS = (
    "apps.core.routing",
    "apps.messaging.routing",
    "apps.checklist.routing",
    "apps.voting.routing",
    "apps.timeline.routing",
    "apps.ledger.routing",
    "apps.market.routing",
    "apps.medical.routing",
    "apps.identity.routing",
)


def patterns_collect(modules: tuple[str, ...], attribute: str) -> list[Any]:
    """The ``attribute`` list of each of ``modules``, joined in their order."""
    return [pattern for name in modules for pattern in getattr(import_module(name), attribute)]
