"""ASGI entry point: Django over HTTP, Channels consumers over WebSocket (the core's and the
apps', listed in ``app_routes``), and the channel-layer workers (``sereus-p2p``) that runnode runs
in-process or ``runworker`` runs on their own."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sereus_web.settings.dev")
# Django must be set up before anything imports models (consumers below do).
django.setup(set_prefix=False)

from sereus_web.http_handler import NodeASGIHandler  # noqa: E402

django_asgi_app = NodeASGIHandler()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ChannelNameRouter, ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from apps.p2p.consumers import P2P_CHANNEL, P2PConsumer  # noqa: E402
from sereus_web.app_routes import WEBSOCKET_URLS, patterns_collect  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # A WebSocket from a page on another origin is refused before any consumer runs: the
        # browser sends the session cookie along, so without this any site could talk to the node.
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(
                URLRouter(patterns_collect(WEBSOCKET_URLS, "websocket_urlpatterns"))
            )
        ),
        "channel": ChannelNameRouter({P2P_CHANNEL: P2PConsumer.as_asgi()}),
    }
)
