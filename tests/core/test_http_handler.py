"""The node's ASGI handler (``sereus_web.http_handler``): ``request_started`` is sent on the request
thread in the hop that runs the view. The signals still run once per request, in order around the
view, and a database connection ``close_old_connections`` closes at the start is open again for
the view."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from asgiref.testing import ApplicationCommunicator
from django.contrib.auth.decorators import login_not_required
from django.core import signals
from django.db import connection
from django.http import HttpResponse, StreamingHttpResponse
from django.urls import path

from sereus_web.http_handler import NodeASGIHandler, _RequestThread, _resolved

events: list[tuple[str, int]] = []
raw_connections: list[object] = []


@login_not_required
def probe(request):
    with connection.cursor() as cursor:  # a read of the node's database
        cursor.execute("SELECT 1")
    raw_connections.append(connection.connection)
    events.append(("view", threading.get_ident()))
    if request.GET.get("expire"):  # too old once this request is over, before the next
        connection.close_at = time.monotonic() + 0.5
    return HttpResponse("ok")


@login_not_required
def streamed(request):
    events.append(("view", threading.get_ident()))

    def chunks():
        events.append(("chunk", threading.get_ident()))
        yield b"o"
        yield b"k"

    return StreamingHttpResponse(chunks())


@login_not_required
def named(request, name: str):
    seen = request.resolver_match
    events.append((f"{name} {seen.url_name} {sorted(seen.kwargs.items())}", 0))
    seen.kwargs["changed"] = "by the view"  # must not reach the next request's match
    return HttpResponse(name)


urlpatterns = [
    path("probe/", probe),
    path("streamed/", streamed),
    path("named/<str:name>/", named, name="named"),
]
pytestmark = [
    pytest.mark.anyio,
    pytest.mark.urls(__name__),
    pytest.mark.django_db(transaction=True),
]


def _started(**kwargs) -> None:
    events.append(("started", threading.get_ident()))


def _finished(**kwargs) -> None:
    events.append(("finished", threading.get_ident()))


async def _get(
    handler: NodeASGIHandler, query: str = "", where: str = "/probe/"
) -> tuple[int, bytes]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": where,
        "raw_path": where.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
    }
    app = ApplicationCommunicator(handler, scope)
    await app.send_input({"type": "http.request", "body": b""})
    start = await app.receive_output(5)
    body = b""
    while True:
        message = await app.receive_output(5)
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await app.wait(5)
    return start["status"], body


@pytest.fixture
def signals_seen():
    events.clear()
    raw_connections.clear()
    signals.request_started.connect(_started)
    signals.request_finished.connect(_finished)
    yield events
    signals.request_started.disconnect(_started)
    signals.request_finished.disconnect(_finished)


@pytest.fixture
def hops(monkeypatch) -> list:
    """The calls handed to request threads (each a hop from the event loop)."""
    handed = []
    submit = _RequestThread.submit

    def counted(self, fn, /, *args, **kwargs):
        handed.append(fn)
        return submit(self, fn, *args, **kwargs)

    monkeypatch.setattr(_RequestThread, "submit", counted)
    return handed


async def test_signals_run_once_around_the_view_on_the_request_thread(signals_seen, hops):
    handler = NodeASGIHandler()
    for _ in range(3):
        assert await _get(handler) == (200, b"ok")
    # per request one hop: request_started, the view and response.close (its body is in memory)
    assert len(hops) == 3
    assert [name for name, _ in events] == ["started", "view", "finished"] * 3
    # started and the view in one hop: the same thread, not the event loop's
    for i in range(0, 9, 3):
        assert events[i][1] == events[i + 1][1] != threading.get_ident()


async def test_a_connection_closed_when_the_request_starts_is_open_again_for_the_view(
    signals_seen,
):
    handler = NodeASGIHandler()
    assert await _get(handler, "expire=1") == (200, b"ok")
    await asyncio.sleep(0.6)
    # request_started closes it (too old); the view opens a new one
    assert await _get(handler) == (200, b"ok")
    assert await _get(handler) == (200, b"ok")
    first, second, third = raw_connections
    assert first is not second
    assert second is third  # kept between requests otherwise


async def test_a_streamed_response_is_closed_after_it_is_sent(signals_seen, hops):
    handler = NodeASGIHandler()
    assert await _get(handler, where="/streamed/") == (200, b"ok")
    # the view's hop, then its chunks, then response.close in a hop of its own
    assert [name for name, _ in events] == ["started", "view", "chunk", "finished"]
    assert len(hops) >= 2


async def test_an_error_while_closing_leaves_the_answer_as_it_was(signals_seen, caplog):
    def broken(**kwargs) -> None:
        raise RuntimeError("a broken request_finished receiver")

    signals.request_finished.connect(broken)
    try:
        assert await _get(NodeASGIHandler()) == (200, b"ok")
    finally:
        signals.request_finished.disconnect(broken)
    assert "a broken request_finished receiver" in caplog.text


async def test_paths_resolve_as_django_resolves_them_when_seen_again(signals_seen):
    handler = NodeASGIHandler()
    _resolved.cache_clear()
    for name in ["a", "b", "a", "a"]:
        assert await _get(handler, where=f"/named/{name}/") == (200, name.encode())
    assert [event for event, _ in events if event[0] in "ab"] == [
        "a named [('name', 'a')]",
        "b named [('name', 'b')]",
        "a named [('name', 'a')]",
        "a named [('name', 'a')]",
    ]
    assert _resolved.cache_info().hits == 2
    for _ in range(2):  # a path that matches nothing is looked for each time (this URLconf's
        assert (await _get(handler, where="/nothing/here/"))[0] >= 400  # 404 page fails: 500)
    assert _resolved.cache_info().currsize == 2
