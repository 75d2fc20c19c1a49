"""The asyncio <-> trio bridge: one trio event loop in a thread of its own.

py-libp2p is trio-only, the web side (daphne, Channels) is asyncio, and Django's ORM is
synchronous. The host lives in a ``TrioThread``; only that thread touches libp2p objects. Other
threads hand it work with ``submit`` (a ``concurrent.futures.Future`` comes back, which asyncio
code awaits with ``asyncio.wrap_future`` and sync code waits on) or ``call_soon`` (fire and
forget, for notifications). Both are safe from any thread, at any time: once the loop is gone a
future fails with ``BridgeStopped`` and ``call_soon`` returns False, never a hang.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio

T = TypeVar("T")

logger = logging.getLogger(__name__)


class BridgeStopped(RuntimeError):
    """The trio thread is not running (not started yet, or stopped)."""


def unwrap(exc: BaseException) -> BaseException:
    """What really went wrong, out of trio's (strict) exception groups of one."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


class TrioThread:
    def __init__(self, name: str = "sereus-p2p") -> None:
        self.name = name
        self._thread: threading.Thread | None = None
        # The loop's token once it runs (to cancel it, even during start-up), and the nursery
        # that work is spawned in once ``main`` has started (``_open`` says so).
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None
        self._open = False
        self._started = threading.Event()
        self._error: BaseException | None = None

    @property
    def running(self) -> bool:
        return self._open and self._thread is not None and self._thread.is_alive()

    def start(self, main: Callable[..., Awaitable[Any]], *, timeout: float = 30.0) -> None:
        """Run ``main(task_status=...)`` in the trio thread; return once it calls
        ``task_status.started()``, or raise what it raised before that."""
        if self._thread is not None:
            raise RuntimeError("the trio thread runs once")
        self._thread = threading.Thread(target=self._run, args=(main,), name=self.name, daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            self.stop(timeout=5)
            raise TimeoutError(f"{self.name} did not start within {timeout:g}s")
        if self._error is not None:
            raise self._error

    def _run(self, main: Callable[..., Awaitable[Any]]) -> None:
        async def root() -> None:
            with trio.CancelScope() as scope:
                self._scope = scope
                self._token = trio.lowlevel.current_trio_token()
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    await nursery.start(main)
                    self._open = True
                    self._started.set()
            if not self._started.is_set():
                raise BridgeStopped(f"{self.name} was stopped while starting")

        try:
            trio.run(root)
        except BaseException as exc:
            if not self._started.is_set():
                self._error = unwrap(exc)
            else:
                logger.error("%s failed", self.name, exc_info=unwrap(exc))
        finally:
            self._open = False
            self._token = None
            self._started.set()

    def submit(self, fn: Callable[..., Awaitable[T]], *args: Any) -> concurrent.futures.Future[T]:
        """Run ``await fn(*args)`` in the trio thread; its outcome arrives in the future."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        async def runner() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = await fn(*args)
            except trio.Cancelled:
                future.set_exception(BridgeStopped(f"{self.name} stopped"))
                raise
            except BaseException as exc:  # handed to the caller
                future.set_exception(exc)
            else:
                future.set_result(result)

        def spawn() -> None:
            if not self._open or self._nursery is None:
                _fail(future, self.name)
                return
            try:
                self._nursery.start_soon(runner)
            except RuntimeError:  # the nursery closed under us: the loop is ending
                _fail(future, self.name)

        if not self._schedule(spawn):
            _fail(future, self.name)
        return future

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> bool:
        """Run the synchronous ``fn(*args)`` in the trio thread soon; False if it is not
        running. An exception from ``fn`` is logged; it does not end the loop."""

        def guarded() -> None:
            try:
                fn(*args)
            except Exception:
                logger.exception("%s: a scheduled call failed", self.name)

        return self._open and self._schedule(guarded)

    def _schedule(self, fn: Callable[[], Any]) -> bool:
        token = self._token
        if token is None:
            return False
        try:
            token.run_sync_soon(fn)
        except trio.RunFinishedError:
            return False
        return True

    def stop(self, timeout: float = 30.0) -> None:
        """Cancel everything running in the trio thread and wait for it to end."""
        self._open = False
        token, scope = self._token, self._scope
        if token is not None and scope is not None:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(scope.cancel)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError(f"{self.name} did not stop within {timeout:g}s")


def _fail(future: concurrent.futures.Future, name: str) -> None:
    if not future.done():
        future.set_exception(BridgeStopped(f"{name} is not running"))
