"""Threads that are the party's own (its backups, its profile): one per party and shape, made on
first use after the control thread, so the cadre lists them, every full device of the party takes
them in, and the party's standby key is certified in them (a node restored from the phrase alone
takes them over, ADR 24). Nobody else is ever a member."""

from __future__ import annotations

from apps.cadre.control import CadreError, control_ensure
from apps.core.models import Thread
from apps.core.threads import services as thread_services
from apps.core.threads.database import NodeKeys
from apps.core.threads.thread_apps import app_enable


def master_secret() -> bytes:
    """The party's master secret on this node; CadreError ("unavailable") in words if none."""
    secret = NodeKeys.of_this_node().master_secret
    if secret is None:
        raise CadreError(
            "unavailable", "This node has no master secret yet: claim it (or restore it) first."
        )
    return secret


def own_thread(shape: str) -> Thread | None:
    """The party's thread of ``shape`` on this node (the oldest, should two devices have made
    one at the same moment), or None."""
    return Thread.objects.filter(app=shape, state=Thread.State.ACTIVE).order_by("id").first()


def own_thread_ensure(*, shape: str, rules_app: str, name: str) -> Thread:
    """The party's thread of ``shape``, made now with the control thread it needs (and
    ``rules_app`` enabled) if there is none. CadreError in words when it cannot be."""
    found = own_thread(shape)
    if found is not None:
        return found
    master_secret()
    control_ensure()
    thread = thread_services.thread_create(name=name, app=shape)
    app_enable(thread=thread, app=rules_app)
    return thread
