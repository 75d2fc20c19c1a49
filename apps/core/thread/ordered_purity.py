"""Catching impure validators: an app's rule that reads the clock, draws random numbers, opens
a socket or a file, reads the environment, or touches a database.

Every replica must decide an ordered row the same way from the same ops (APPS.md §0), so a
validator may read nothing but its arguments. A rule that peeks at the time works on the
author's node and splits the thread on the others, so it is caught where it is written: in the
app's tests (``with pure_validators(): ...``) and by a judge in strict mode.

The guard is a profile function (``sys.setprofile``), which sees every call the validator
makes, in the current thread only: nothing is patched, other threads of the node are not
affected, and nothing is slowed down outside the guarded block. It sees the usual doors
(``time.time``, ``datetime.now``, ``random``, ``open``, ``socket``, ``os.environ``, Django's
database connections), not every conceivable one.
"""

from __future__ import annotations

import datetime
import gc
import io
import os
import random
import socket
import sys
import time
from types import CodeType, FrameType, TracebackType
from typing import Any

_CLOCK = "reads the clock"
_FORBIDDEN_CALLS: dict[Any, str] = {
    time.time: _CLOCK,
    time.time_ns: _CLOCK,
    time.monotonic: _CLOCK,
    time.monotonic_ns: _CLOCK,
    time.perf_counter: _CLOCK,
    time.perf_counter_ns: _CLOCK,
    time.process_time: _CLOCK,
    time.localtime: _CLOCK,
    time.gmtime: _CLOCK,
    time.ctime: _CLOCK,
    io.open: "opens a file",
    os.open: "opens a file",
    os.urandom: "draws random bytes",
}
_CLOCK_METHODS = frozenset({"now", "utcnow", "today"})
# The generator behind random.random(), random.choice()...: seeded by the OS at start-up. A rule
# may draw from its own random.Random(seed), which is as deterministic as its seed.
_SHARED_RANDOM = random.random.__self__
_forbidden_code: dict[CodeType, str] | None = None


class ImpureValidator(Exception):
    """A validator did something that is not a pure function of its arguments: a bug in the
    app (never a refusal: refusing would split the thread just the same)."""


def _code_doors() -> dict[CodeType, str]:
    """Python functions a validator must not enter (built once; Django's only if installed)."""
    global _forbidden_code
    if _forbidden_code is None:
        doors: dict[CodeType, str] = {
            socket.socket.__init__.__code__: "opens a socket",
            socket.create_connection.__code__: "opens a socket",
            socket.getaddrinfo.__code__: "resolves a name",
            os._Environ.__getitem__.__code__: "reads the environment",
        }
        try:
            from django.utils.connection import BaseConnectionHandler
        except ImportError:  # pragma: no cover - Django is installed with the node
            pass
        else:
            doors[BaseConnectionHandler.__getitem__.__code__] = "touches a database connection"
        _forbidden_code = doors
    return _forbidden_code


def _builtin_door(function: Any) -> str | None:
    what = _FORBIDDEN_CALLS.get(function)
    if what is not None:
        return what
    owner = getattr(function, "__self__", None)
    if owner is _SHARED_RANDOM:
        return "draws random numbers"
    if (
        isinstance(owner, type)
        and issubclass(owner, datetime.date)
        and getattr(function, "__name__", "") in _CLOCK_METHODS
    ):
        return _CLOCK
    return None


def _builtin_name(function: Any) -> str:
    """``time.time``, ``datetime.now``: how the app wrote the call."""
    owner = getattr(function, "__self__", None)
    if type(owner) is type(sys):
        return f"{owner.__name__}.{function.__name__}"
    return getattr(function, "__qualname__", repr(function))


class PurityGuard:
    """A block in which calling through a door raises ``ImpureValidator``.

    The violation is also remembered: a validator that catches the error (``except
    Exception``) still ends the block with ``ImpureValidator``, which replaces whatever the
    block raised.
    """

    def __init__(self) -> None:
        self.violation: str | None = None
        self._previous: Any = None
        self._collecting = False
        self._doors = _code_doors()

    def _hook(self, frame: FrameType, event: str, arg: Any) -> None:
        if event == "c_call":
            what = _builtin_door(arg)
            name = _builtin_name(arg)
        elif event == "call":
            what = self._doors.get(frame.f_code)
            name = frame.f_code.co_qualname
        else:
            return
        if what is not None:
            self.violation = f"the validator {what} ({name})"
            raise ImpureValidator(self.violation)

    def __enter__(self) -> PurityGuard:
        self._previous = sys.getprofile()
        # No garbage collection inside: a collection runs gc callbacks (a test framework's that
        # reads the clock, say) in the middle of the validator, and they would be taken for it.
        self._collecting = gc.isenabled()
        gc.disable()
        sys.setprofile(self._hook)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        sys.setprofile(self._previous)
        if self._collecting:
            gc.enable()
        if self.violation is not None and not isinstance(error, ImpureValidator):
            raise ImpureValidator(self.violation) from error


def pure_validators() -> PurityGuard:
    """``with pure_validators(): rule(view, change, author)`` raises ``ImpureValidator`` if the
    rule reads the clock, randomness, files, sockets, the environment or a database."""
    return PurityGuard()
