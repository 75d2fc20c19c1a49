"""The API's URLs come first in the root URLconf (the most requested paths, tried first): that
must not change which view any path reaches. Every path pattern of the node, filled with sample
values, resolves to the same view with the API first as with the API last (where it was)."""

from __future__ import annotations

import re

from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.exceptions import Resolver404
from django.urls.resolvers import RegexPattern, RoutePattern

from sereus_web import urls

SAMPLES = ("abc", "7", "12345678-1234-5678-1234-567812345678", "ab" * 32, "a/b")
_PART = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<parameter>[^>]+)>")


def _sample(route: RoutePattern) -> str | None:
    def fill(part: re.Match[str]) -> str:
        converter = route.converters[part["parameter"]]
        return next(s for s in SAMPLES if re.fullmatch(converter.regex, s))

    try:
        return _PART.sub(fill, str(route))
    except StopIteration:
        return None


def _paths(patterns, prefix: str = "") -> list[str]:
    found = []
    for pattern in patterns:
        if not isinstance(pattern.pattern, RoutePattern):
            continue  # the admin's regular expressions: not under api/
        part = _sample(pattern.pattern)
        if part is None:
            continue
        if isinstance(pattern, URLResolver):
            found += _paths(pattern.url_patterns, prefix + part)
        elif isinstance(pattern, URLPattern):
            found.append(prefix + part)
    return found


def _resolved(resolver: URLResolver, path: str):
    try:
        match = resolver.resolve(path)
    except Resolver404:
        return None
    return match.func, match.url_name, match.namespaces, match.kwargs


def test_the_api_first_changes_no_paths_view():
    api = urls.urlpatterns[0]
    assert str(api.pattern) == "api/"
    api_last = URLResolver(RegexPattern(r"^/"), [*urls.urlpatterns[1:], api])
    now = get_resolver("sereus_web.urls")
    paths = _paths(urls.urlpatterns)
    assert len([p for p in paths if p.startswith("api/")]) > 100
    assert len(paths) > 300
    for path in paths:
        assert _resolved(now, "/" + path) == _resolved(api_last, "/" + path), path
