"""Apps in a thread (issue 10): which apps a thread has enabled, which this node could enable,
and enabling or disabling one (a control op every replica checks: roles that manage the thread).

The spec an enable op carries is this node's (``appspec.thread_app_register``); once in the
thread it is the thread's, so a member whose node runs an older version of the app still judges
the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass

from apps.core.models import Thread
from apps.core.thread import payloads as p
from apps.core.thread.appspec import AppSpecError, thread_app_spec, thread_apps
from apps.core.threads.service_base import ThreadServiceError, _database, _write


@dataclass(frozen=True)
class ThreadApp:
    app: str
    enabled: bool
    primary: bool  # the app the thread was created for: always enabled
    installed: bool  # this node has the app (its pages, its rules)


def thread_apps_list(*, thread: Thread) -> list[ThreadApp]:
    """The thread's apps (its own first, then in the order they were enabled), then the apps
    this node could enable in it."""
    state = _database(thread).replica().control.state
    installed = set(thread_apps(state.app))
    listed = [
        ThreadApp(app, True, app == state.app, app in installed or app == state.app)
        for app in state.apps
    ]
    listed += [ThreadApp(app, False, False, True) for app in sorted(installed - set(state.apps))]
    return listed


def thread_apps_enabled(thread: Thread) -> list[str]:
    return list(_database(thread).replica().control.state.apps)


def app_enable(*, thread: Thread, app: str) -> ThreadApp:
    try:
        spec = thread_app_spec(app)
    except AppSpecError as exc:
        raise ThreadServiceError("not_found", str(exc)) from exc
    if app in thread_apps_enabled(thread):
        raise ThreadServiceError("conflict", f"the {app} app is already enabled in this thread")
    if app not in thread_apps(thread.app):
        raise ThreadServiceError("invalid", f"the {app} app belongs to another kind of thread")
    _write(thread, lambda writer: writer.control(p.EnableApp(spec)))
    return ThreadApp(app, True, False, True)


def app_disable(*, thread: Thread, app: str) -> None:
    """Disable an app: its rows stay, nobody writes to its tables until it is enabled again."""
    if app not in thread_apps_enabled(thread):
        raise ThreadServiceError("not_found", f"the {app} app is not enabled in this thread")
    _write(thread, lambda writer: writer.control(p.DisableApp(app)))
