"""Background tasks of the node core: thin wrappers around services."""

from celery import shared_task

from apps.core import services


@shared_task(name="core.sessions_clear_expired")
def sessions_clear_expired() -> None:
    services.sessions_clear_expired()
