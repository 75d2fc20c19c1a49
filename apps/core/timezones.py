"""Times in the reader's own time zone. The node runs in UTC; the browser says where its person
is (``static/js/ui.js`` keeps the IANA name in a cookie) and pages and live renders show times,
and the day separators of a conversation, in that zone. An unknown or malformed name is ignored
(UTC): it is the browser's word, not trusted further than that."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

COOKIE = "sereus_tz"
# IANA names are short ASCII paths ("Europe/Berlin", "America/Argentina/Buenos_Aires",
# "Etc/GMT+5"); anything else is refused before it reaches the tz database loader.
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2}")


def zone_named(name: str | None) -> ZoneInfo | None:
    if not name or len(name) > 64 or not _NAME.fullmatch(name):
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def zone_of_cookies(cookies: dict[str, str] | None) -> ZoneInfo | None:
    return zone_named((cookies or {}).get(COOKIE))


class BrowserTimeZoneMiddleware:
    """Render each page in the time zone its browser reported (UTC when none or unknown)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> Any:
        zone = zone_of_cookies(request.COOKIES)
        if zone is None:
            timezone.deactivate()
            return self.get_response(request)
        with timezone.override(zone):
            return self.get_response(request)
