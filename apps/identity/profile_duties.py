"""Shared profile fields follow the profile: after ops in the profile thread (a field changed
here or on another device of the party), a worker thread brings every active shared copy in
line (``profile.copies_sync``): the new leaf and commitment where a field changed, the copy
deleted where a field was. It never runs inside whoever wrote the ops (a request, sync)."""

from __future__ import annotations

from apps.core.models import Thread
from apps.core.thread.state import ThreadState
from apps.core.threads.duty_worker import DutyWorker


def _wanted(state: ThreadState) -> bool:
    """Only the profile thread (its rules app is enabled only there)."""
    from apps.identity.policy import PROFILE_APP

    return PROFILE_APP in state.apps


def step(thread: Thread) -> list[str]:
    """One run of the duty for the profile thread ``thread``: the threads written."""
    from apps.identity import profile

    if thread.app != profile.policy.PROFILE_SHAPE:
        return []
    try:
        return profile.copies_sync(thread)
    except profile.ProfileError:  # locked (no master secret to sign with): the next op retries
        return []


# Settle a moment: a profile edit is one op, then the duty writes each thread it is shared with.
worker = DutyWorker("identity-profile", _wanted, step, settle_s=0.2)


def install() -> None:
    """Connect the duties (called once, from ``IdentityConfig.ready``)."""
    from apps.core.threads.signals import ops_written

    ops_written.connect(worker.on_ops_written, dispatch_uid="identity-profile-duties")
