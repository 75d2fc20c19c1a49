"""Browser-like WebSocket connections to the node's ASGI app (Host, Origin, cookies)."""

from __future__ import annotations

from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from sereus_web.asgi import application

ORIGIN = "http://127.0.0.1:8000"


def session_cookies(client: Client) -> dict[str, str]:
    """The cookies a browser would send after this client's requests (session, CSRF)."""
    return {name: morsel.value for name, morsel in client.cookies.items()}


def logged_in_cookies(user) -> dict[str, str]:
    client = Client()
    client.force_login(user)
    return {settings.SESSION_COOKIE_NAME: client.cookies[settings.SESSION_COOKIE_NAME].value}


def socket(
    path: str, *, origin: str | None = ORIGIN, cookies: dict[str, str] | None = None
) -> WebsocketCommunicator:
    headers = [(b"host", b"127.0.0.1:8000")]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    if cookies:
        cookie = "; ".join(f"{name}={value}" for name, value in cookies.items())
        headers.append((b"cookie", cookie.encode()))
    return WebsocketCommunicator(application, path, headers=headers)
