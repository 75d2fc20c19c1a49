"""Background tasks of voting: thin wrappers around services."""

from celery import shared_task

from apps.voting import selectors, services


@shared_task(name="voting.polls_due")
def polls_due(thread_id: str) -> None:
    """Close this node's member's polls whose planned end has come (``services.poll_open``)."""
    thread = selectors.thread_find(thread_id)
    if thread is not None:
        services.polls_due(thread=thread)
