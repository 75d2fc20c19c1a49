"""Django over ASGI with one thread hop per request, on threads (and so database connections)
that live on from one request to the next.

Django's own ``ASGIHandler`` costs this node more than its views do (profiled with py-spy under
daphne, a token-authenticated GET of ``/api/v1/node/``):

- it starts a new thread for every request (a ``ThreadSensitiveContext`` with its own one-thread
  executor, joined at the end), and since Django's database connections belong to a thread,
  every request also opened, set up (PRAGMAs, SQL functions) and closed its SQLite connections;
- it runs the middleware chain in async mode: our middleware is sync-only, so a request crossed
  from the event loop to a thread for the middleware, back to the loop for the async view
  handler and to the thread again for the (sync) view, each crossing a wakeup of the other side.

Here a request takes an idle one-thread executor from a small pool (a new one only when every
pooled one is busy) and gives it back when it ends, and the whole sync handler (middleware, view,
the same code a WSGI server runs) runs on it in one call. Everything per request stays as it was:
the request_started/request_finished signals (so ``close_old_connections`` still closes a
connection that is broken, or kept past ``CONN_MAX_AGE``), every middleware (Host, CSRF, session,
auth, CSP) and the view, in the same order. (How many thread-database connections a thread
keeps open is bounded in their backend.)

Django's ``handle`` also sent ``request_started`` on its own before building the request: its sync
receivers (``close_old_connections``, ``reset_queries``) ran through ``sync_to_async``, a second
round trip to the request thread before the one that runs the view. Here they run at the start of
that one hop, on the same thread, just before the middleware. And it closed every response
(``request_finished``) in another hop after sending it: a response whose body is all in memory
(not streaming) is closed at the end of the view's hop instead, before it is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.http import FileResponse, HttpRequest, HttpResponse
from django.urls import ResolverMatch, URLResolver, get_resolver, set_script_prefix

# Idle request threads kept for the next requests. More than this many at once (long polls, a
# burst of page loads) still get threads of their own; those end when their request does.
IDLE_THREADS = 8

logger = logging.getLogger("django.request")


# Resolving a path walks the URL patterns in order, and the API's are many: 0.29-0.37 ms of CPU
# for a conversation's messages (``/api/v1/threads/<id>/messages/``), 0.13-0.17 ms for
# ``/api/v1/node/``, 1 ms for a page of the medical record. A path resolves to the same view and
# arguments as long as the URLconf is the same (a changed one is a new resolver: ``get_resolver``
# is cleared with it), so the matches of the paths requested lately are kept. A path that matches
# nothing raises and is not kept.
RESOLVED_PATHS = 1024
RESOLVED_PATH_MAX = 512  # characters; a longer path is resolved each time


@functools.lru_cache(maxsize=RESOLVED_PATHS)
def _resolved(resolver: URLResolver, path: str) -> ResolverMatch:
    return resolver.resolve(path)


class _RequestThread(ThreadPoolExecutor):
    """A one-thread executor that knows whether it still runs something: a request cancelled
    by its client's disconnect leaves its view running on the thread, which must then not be
    handed to the next request (it would wait behind it)."""

    def __init__(self) -> None:
        super().__init__(max_workers=1, thread_name_prefix="sereus-request")
        self.pending = 0
        self._count_lock = threading.Lock()  # counted on the loop's thread and on this one

    def submit(self, fn, /, *args, **kwargs):
        with self._count_lock:
            self.pending += 1
        future = super().submit(fn, *args, **kwargs)
        future.add_done_callback(self._done)
        return future

    def _done(self, _future) -> None:
        with self._count_lock:
            self.pending -= 1


class _RequestThreads:
    """One-thread executors, each used by one request at a time, reused by the next."""

    def __init__(self, keep: int) -> None:
        self._keep = keep
        self._idle: list[_RequestThread] = []
        self._lock = threading.Lock()

    def take(self) -> _RequestThread:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return _RequestThread()

    def give(self, executor: _RequestThread) -> None:
        with self._lock:
            if executor.pending == 0 and len(self._idle) < self._keep:
                self._idle.append(executor)
                return
        executor.shutdown(wait=False)


class NodeASGIHandler(ASGIHandler):
    """``ASGIHandler`` with the sync middleware chain run in one call on a pooled thread."""

    def __init__(self) -> None:
        super().__init__()
        self._threads = _RequestThreads(IDLE_THREADS)

    def load_middleware(self, is_async: bool = False) -> None:
        # The chain as a WSGI server builds it: sync middleware calling the sync view directly
        # (an async view, if one came, is still run by Django's own adapter).
        super().load_middleware(is_async=False)

    def resolve_request(self, request: HttpRequest) -> ResolverMatch:
        """Django's, with the match of a path seen lately taken from ``_resolved``."""
        if hasattr(request, "urlconf") or len(request.path_info) > RESOLVED_PATH_MAX:
            return super().resolve_request(request)
        match = ResolverMatch.__new__(ResolverMatch)  # a copy (ResolverMatch refuses copy.copy)
        match.__dict__.update(vars(_resolved(get_resolver(), request.path_info)))
        # Its own dicts: a view or middleware may change its request's match.
        for name in ("kwargs", "captured_kwargs", "extra_kwargs"):
            if isinstance(value := getattr(match, name), dict):
                setattr(match, name, dict(value))
        request.resolver_match = match
        return match

    async def get_response_async(self, request: HttpRequest) -> HttpResponse:
        return await sync_to_async(self.get_response, thread_sensitive=True)(request)

    def _started_and_response(self, request: HttpRequest) -> HttpResponse:
        signals.request_started.send(sender=self.__class__, scope=request.scope)
        response = self.get_response(request)
        response._handler_class = self.__class__
        if not response.streaming:
            # Its body is all in memory: closed here (request_finished sent, its resources
            # freed), the response no longer needs a second hop to this thread after it is
            # sent (a wakeup of this thread and then of the event loop, ~0.1-0.3 ms a request).
            try:
                response.close()
            except Exception:  # after sending, Django would have logged it: the client's
                logger.exception("closing the response of %s", request.path)  # answer stands
            response._sereus_closed = True
        return response

    async def handle(self, scope, receive, send) -> None:
        """Django 5.2's ``ASGIHandler.handle`` (5.2.19), with ``request_started`` sent on the
        request thread in the hop that runs the view, after the request is built (building it
        reads no database). An async receiver of ``request_started`` (none is connected today)
        would need the event loop: then Django's own ``handle`` runs."""
        if signals.request_started._live_receivers(self.__class__)[1]:
            await super().handle(scope, receive, send)
            return
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            await signals.request_started.asend(sender=self.__class__, scope=scope)
            body_file.close()
            await self.send_response(error_response, send)
            await sync_to_async(error_response.close)()
            return

        async def process_request(request, send):
            response = await sync_to_async(self._started_and_response, thread_sensitive=True)(
                request
            )
            if isinstance(response, FileResponse):
                response.block_size = self.chunk_size
            with contextlib.suppress(asyncio.CancelledError):  # a disconnect while it was sent
                await self.send_response(response, send)
            return response

        # From here on as Django's: a disconnect while the view runs cancels it.
        tasks = [
            asyncio.create_task(self.listen_for_disconnect(receive)),
            asyncio.create_task(process_request(request, send)),
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                try:
                    task.result()
                except RequestAborted:
                    pass
                except AssertionError:
                    body_file.close()
                    raise
            else:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        try:
            response = tasks[1].result()
        except asyncio.CancelledError:
            await signals.request_finished.asend(sender=self.__class__)
        else:
            if not getattr(response, "_sereus_closed", False):  # a streaming one
                await sync_to_async(response.close)()
        body_file.close()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        executor = self._threads.take()
        try:
            # Every thread-sensitive call of this request (the handler, the signals, the
            # response's close) runs on this executor's one thread, as Django's own context does.
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        finally:
            self._threads.give(executor)
