"""Background tasks of the checklist: thin wrappers around services."""

from celery import shared_task

from apps.checklist import selectors, services


@shared_task(name="checklist.closes_due")
def closes_due(thread_id: str) -> None:
    """Write the closes this node's member planned for now (``services.list_close_plan``)."""
    thread = selectors.thread_find(thread_id)
    if thread is not None:
        services.closes_due(thread=thread)
