"""The CSP header: the node's middleware (policy built once) writes what django-csp's writes."""

from __future__ import annotations

import pytest
from csp.constants import HEADER, HEADER_REPORT_ONLY, SELF
from csp.decorators import csp_exempt, csp_update
from csp.middleware import CSPMiddleware as DjangoCSPMiddleware
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory

from apps.core.middleware import CSPMiddleware


def _answer(middleware_class, view, path: str = "/node/", status: int = 200) -> HttpResponse:
    middleware = middleware_class(lambda request: view(request))
    request = RequestFactory().get(path)
    middleware.process_request(request)
    response = view(request)
    response.status_code = status
    return middleware.process_response(request, response)


def _plain(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


@csp_update({"img-src": ["https://example.org"]})
def _updated(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


@csp_exempt()
def _exempt(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


def _directives(header: str) -> set[str]:
    return set(header.split("; "))


@pytest.mark.parametrize("view", [_plain, _updated, _exempt])
def test_same_headers_as_django_csp(view):
    ours, theirs = _answer(CSPMiddleware, view), _answer(DjangoCSPMiddleware, view)
    for header in (HEADER, HEADER_REPORT_ONLY):
        assert (header in ours) == (header in theirs)
        if header in theirs:
            assert _directives(ours[header]) == _directives(theirs[header])
    assert HEADER in _answer(CSPMiddleware, _plain)
    assert "https://example.org" in _answer(CSPMiddleware, _updated)[HEADER]
    assert HEADER not in _answer(CSPMiddleware, _exempt)


def test_a_changed_setting_is_followed(settings):
    _answer(CSPMiddleware, _plain)  # the policy of the old settings, built
    settings.CONTENT_SECURITY_POLICY = {
        "DIRECTIVES": {"default-src": [SELF], "script-src": [SELF, "https://cdn.example"]},
        "EXCLUDE_URL_PREFIXES": ["/excluded/"],
    }
    settings.CONTENT_SECURITY_POLICY_REPORT_ONLY = {"DIRECTIVES": {"default-src": [SELF]}}
    response = _answer(CSPMiddleware, _plain)
    assert "https://cdn.example" in response[HEADER]
    assert response[HEADER_REPORT_ONLY] == "default-src 'self'"
    assert HEADER not in _answer(CSPMiddleware, _plain, path="/excluded/page")


def test_debug_error_pages_get_no_header(settings):
    settings.DEBUG = True
    assert HEADER not in _answer(CSPMiddleware, _plain, status=500)
    settings.DEBUG = False
    assert HEADER in _answer(CSPMiddleware, _plain, status=500)


def test_a_nonce_asked_for_after_the_header_is_an_error():
    middleware = CSPMiddleware(_plain)
    request = RequestFactory().get("/node/")
    middleware.process_request(request)
    middleware.process_response(request, HttpResponse("ok"))
    with pytest.raises(Exception, match="csp_nonce"):
        str(request.csp_nonce)


def test_a_nonce_used_by_the_page_is_in_the_header():
    middleware = CSPMiddleware(_plain)
    request = RequestFactory().get("/node/")
    middleware.process_request(request)
    nonce = str(request.csp_nonce)
    response = middleware.process_response(request, HttpResponse("ok"))
    # The settings' script-src has no NONCE sentinel: django-csp leaves the nonce out too.
    theirs = DjangoCSPMiddleware(_plain)
    other = RequestFactory().get("/node/")
    theirs.process_request(other)
    other._csp_nonce = nonce
    assert _directives(response[HEADER]) == _directives(
        theirs.process_response(other, HttpResponse("ok"))[HEADER]
    )
