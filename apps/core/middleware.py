"""Every page is the owner's unless its view says otherwise (public pages, PWA files, the API)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth.middleware import LoginRequiredMiddleware as DjangoLoginRequired
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
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
