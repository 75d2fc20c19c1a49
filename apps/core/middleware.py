"""Every page is the owner's unless its view says otherwise (public pages, PWA files, the API);
the Content-Security-Policy header of every response."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from csp import middleware as csp_middleware
from csp.constants import HEADER, HEADER_REPORT_ONLY
from csp.utils import build_policy
from django.conf import settings
from django.contrib.auth.middleware import LoginRequiredMiddleware as DjangoLoginRequired
from django.core.exceptions import PermissionDenied
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from rest_framework.views import APIView

from apps.core.selectors import is_node_owner


class LoginRequiredMiddleware(DjangoLoginRequired):
    """Django's middleware, plus: a logged-in account that is not the node's owner gets 403.

    DRF views are left to DRF: they authenticate the request themselves (session or token),
    check ``IsNodeOwner`` and answer 401/403 in JSON instead of redirecting to a login page.
    """

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., Any],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> HttpResponse | None:
        view_class = getattr(view_func, "cls", None)
        if isinstance(view_class, type) and issubclass(view_class, APIView):
            return None
        response = super().process_view(request, view_func, view_args, view_kwargs)
        if response is not None or not getattr(view_func, "login_required", True):
            return response
        if not is_node_owner(request.user):
            raise PermissionDenied("Only the node's owner may open this page.")
        return None


# Attributes by which a view gives its response a policy of its own (django-csp's decorators).
_OWN_POLICY = (
    "_csp_config",
    "_csp_update",
    "_csp_replace",
    "_csp_exempt",
    "_csp_config_ro",
    "_csp_update_ro",
    "_csp_replace_ro",
    "_csp_exempt_ro",
)


@cache
def _settings_policies() -> tuple[str, str]:
    """The Content-Security-Policy and its report-only twin as the settings define them."""
    return build_policy(), build_policy(report_only=True)


@receiver(setting_changed)
def _settings_policies_forget(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("CONTENT_SECURITY_POLICY"):
        _settings_policies.cache_clear()


class CSPMiddleware(csp_middleware.CSPMiddleware):
    """django-csp's middleware, with the settings' policy built once, not for every response.

    Building it (``build_policy``: the directives copied, sorted and joined) cost 0.24 ms a
    request, as much as a trivial API view. A response with a policy of its own (a decorator's
    ``_csp_*`` attributes) or a request that used a nonce still goes through django-csp's own
    ``process_response``; for the others the headers, the exemptions (DEBUG error pages,
    ``EXCLUDE_URL_PREFIXES``, a header the view set) and the nonce guard are django-csp's.
    """

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        if getattr(request, "_csp_nonce", None) is not None or any(
            getattr(response, name, None) is not None for name in _OWN_POLICY
        ):
            return super().process_response(request, response)
        if response.status_code in (500, 404) and settings.DEBUG:
            return response  # as django-csp: Django's debug pages use inline scripts
        policy, report_only = _settings_policies()
        for header, value, setting in (
            (HEADER, policy, "CONTENT_SECURITY_POLICY"),
            (HEADER_REPORT_ONLY, report_only, "CONTENT_SECURITY_POLICY_REPORT_ONLY"),
        ):
            prefixes = (getattr(settings, setting, None) or {}).get("EXCLUDE_URL_PREFIXES") or ()
            if (
                value
                and header not in response
                and not request.path_info.startswith(tuple(prefixes))
            ):
                response[header] = value
        # As django-csp: a nonce asked for after the header was written is an error.
        request.csp_nonce = csp_middleware.CheckableLazyObject(self._csp_nonce_post_response)
        return response
