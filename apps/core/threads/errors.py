"""The errors a thread database raises (``apps.core.threads.database`` exports them too)."""

from __future__ import annotations

from django.db import DatabaseError


class ThreadDatabaseError(DatabaseError):
    """A thread database problem, with a message that says which thread and what."""


class ThreadCorrupt(ThreadDatabaseError):
    """The thread's file failed its integrity check: it is not served until repaired."""


class WriteRefused(ThreadDatabaseError):
    """A local write that the thread's rules refuse (role, keys); nothing of it was kept."""
