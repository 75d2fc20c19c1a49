"""How the thread APIs answer a service's refusal: ``{"error": code, "detail": message}`` with
the HTTP status its code maps to (``STATUS_OF``). The threads API (``apis``, ``write_apis``,
``leave_api``) and the apps' APIs built on the thread kit use these."""

from __future__ import annotations

from rest_framework.exceptions import APIException

from apps.core.models import Thread
from apps.core.threads import selectors, services

STATUS_OF = {
    "invalid": 400,
    "malformed": 400,
    "version": 400,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "expired": 410,
    "revoked": 410,
    "used": 409,
    "unknown": 404,
    "unavailable": 503,
    "unreachable": 503,
    "interrupted": 503,
}


class ServiceFailed(APIException):
    def __init__(self, error: services.ThreadServiceError) -> None:
        super().__init__(detail=str(error), code=error.code)
        self.status_code = STATUS_OF.get(error.code, 400)
        self.default_code = error.code


def _thread(thread_id: str) -> Thread:
    thread = selectors.thread_find(thread_id)
    if thread is None:
        raise ServiceFailed(services.ThreadServiceError("not_found", "no such thread here"))
    return thread


def _call(fn, **kwargs):
    try:
        return fn(**kwargs)
    except services.ThreadServiceError as exc:
        raise ServiceFailed(exc) from exc
