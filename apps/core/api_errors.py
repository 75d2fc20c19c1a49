"""One JSON error shape for the whole API: ``{"error": <code>, "detail": <message>, ...}``."""

from __future__ import annotations

from typing import Any

from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # not an API error: Django's 500 handling (and logging) applies
    code = getattr(exc, "default_code", "error")
    data = response.data
    if isinstance(data, dict) and set(data) == {"detail"}:
        response.data = {"error": code, "detail": str(data["detail"])}
    else:
        # Validation errors: field -> messages, kept as DRF gives them, under "fields".
        response.data = {"error": code, "detail": "The request is not valid.", "fields": data}
    return response
