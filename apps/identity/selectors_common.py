"""What every achievements read starts from: whether the app is on in a thread, the thread's
database alias, people's names ("you", their name in the thread, else "member N"), and ids as
hex. Shared by the claims, challenges, witnesses and rules reads."""

from __future__ import annotations

import uuid

from apps.core.models import Thread
from apps.core.threads.app_kit import app_enabled
from apps.core.threads.names import Names, thread_names
from apps.core.threads.registry import thread_database
from apps.identity.policy import APP

FORMER = "a former member"  # a key the thread no longer names


def enabled(thread: Thread) -> bool:
    return app_enabled(thread, APP)


def member_names(thread: Thread) -> Names:
    return thread_names(thread, me_as="you")


def alias_of(thread: Thread) -> str:
    return thread_database(thread.thread).alias


def hex_of(value: uuid.UUID | str | None) -> str | None:
    return None if value is None else getattr(value, "hex", str(value))
