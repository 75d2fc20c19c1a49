"""App protocols (``apps.p2p.app_protocols``) between two real ``SereusNode`` hosts on 127.0.0.1:
one request and one answer per stream, bounded both ways, a rate per peer, a handler's refusal
in its words, its failure and its slowness answered without harm to the node, and a peer that
breaks the framing struck like on any Sereus protocol."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import nacl.signing
import pytest
import trio
from libp2p.network.stream.exceptions import StreamEOF

from apps.core.identity import device_key_ensure
from apps.p2p import app_protocols, client
from apps.p2p.app_protocols import AppRefused, AppRequestError, varint
from apps.p2p.bridge import TrioThread
from apps.p2p.consumers import P2P_CHANNEL
from apps.p2p.host import quiet_libp2p_logs
from apps.p2p.node import NodeSettings, SereusNode
from tests.support.api import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

ECHO, SLOW, CAPPED = "/test/echo/1.0.0", "/test/slow/1.0.0", "/test/capped/1.0.0"
TIMEOUT = 10.0


def echo(peer: bytes, request: bytes) -> bytes:
    if request == b"fail":
        raise RuntimeError("a bug in the handler")
    if request == b"refuse":
        raise AppRefused("The page must be a whole number.")
    if request == b"big":
        return b"x" * 2000  # over max_response
    return peer + request


def slow(peer: bytes, request: bytes) -> bytes:
    time.sleep(3)
    return b"late"


class Running:
    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir()
        self.node = SereusNode(
            nacl.signing.SigningKey.generate(),
            NodeSettings(data_dir=data_dir, listen="/ip4/127.0.0.1/tcp/0", dht=False),
        )
        self.bridge = TrioThread("node")
        self.bridge.start(self.node.run)

    def ask(self, other: Running, protocol: str, payload: bytes, timeout: float = TIMEOUT):
        future = self.bridge.submit(
            app_protocols.request,
            self.node,
            other.node.peer_id,
            list(other.node.addrs),
            protocol,
            payload,
            timeout,
        )
        return future.result(timeout + 5)

    def stop(self) -> None:
        self.bridge.stop()


def _register() -> None:
    app_protocols.register(ECHO, echo, max_request=64, max_response=1024, rate=(50.0, 100))
    app_protocols.register(SLOW, slow, max_request=64, max_response=64, rate=(50, 50), timeout=1)
    app_protocols.register(
        CAPPED, echo, max_request=64, max_response=1024, rate=(0.01, 2), busy="Too many, wait."
    )


def _unregister() -> None:
    for protocol in (ECHO, SLOW, CAPPED):
        app_protocols.unregister(protocol)


@pytest.fixture
def registered() -> Iterator[None]:
    _register()
    yield
    _unregister()


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[tuple[Running, Running]]:
    quiet_libp2p_logs()
    _register()
    server = asker = None
    try:
        server, asker = Running(tmp_path / "server"), Running(tmp_path / "asker")
        yield server, asker
    finally:
        for running in (asker, server):
            if running is not None:
                running.stop()
        _unregister()


def refusal(call) -> AppRequestError:
    with pytest.raises(AppRequestError) as caught:
        call()
    return caught.value


def test_a_request_is_answered_and_handler_faults_stay_with_the_request(nodes) -> None:
    server, asker = nodes
    assert asker.ask(server, ECHO, b"hello") == asker.node.device + b"hello"

    refused = refusal(lambda: asker.ask(server, ECHO, b"refuse"))
    assert (refused.code, refused.words) == ("refused", "The page must be a whole number.")

    failed = refusal(lambda: asker.ask(server, ECHO, b"fail"))
    assert failed.code == "unavailable"
    assert "bug" not in failed.words
    assert "Traceback" not in failed.words

    too_big = refusal(lambda: asker.ask(server, ECHO, b"big"))
    assert too_big.code == "unavailable"

    started = time.monotonic()
    late = refusal(lambda: asker.ask(server, SLOW, b"?"))
    assert late.code == "unavailable"
    assert "too long" in late.words
    assert time.monotonic() - started < 2.5, "the slow handler was cut at its timeout"

    # The node serves on, and the sync client path reaches it too.
    client.local_set(asker.bridge, asker.node)
    try:
        answer = client.app_request(
            server.node.peer_id, list(server.node.addrs), ECHO, b"again", timeout=TIMEOUT
        )
    finally:
        client.local_clear()
    assert answer == asker.node.device + b"again"

    # A request larger than the protocol allows is not even sent.
    assert refusal(lambda: asker.ask(server, ECHO, b"x" * 65)).code == "invalid"
    assert refusal(lambda: asker.ask(server, "/test/unknown/1.0.0", b"")).code == "invalid"


def test_over_the_rate_a_peer_is_told_to_wait(nodes) -> None:
    server, asker = nodes
    assert asker.ask(server, CAPPED, b"1")
    assert asker.ask(server, CAPPED, b"2")
    busy = refusal(lambda: asker.ask(server, CAPPED, b"3"))
    assert (busy.code, busy.words) == ("busy", "Too many, wait.")
    # Its own bucket per protocol: the echo still answers.
    assert asker.ask(server, ECHO, b"4")


def test_a_request_over_its_bound_or_garbled_is_a_strike(nodes) -> None:
    server, asker = nodes
    asker.ask(server, ECHO, b"connect")

    async def raw(data: bytes, *, close: bool = False) -> bytes:
        stream = await asker.node.open_stream(server.node.device, ECHO)
        await stream.write(data)
        if close:
            await stream.close()  # this side is done writing
        got = b""
        with trio.move_on_after(5), contextlib.suppress(StreamEOF):
            while chunk := await stream.read(4096):
                got += chunk
        await stream.reset()
        return got

    oversized = asker.bridge.submit(raw, varint(5000) + b"x" * 100).result(15)
    assert b"malformed" in oversized
    assert b"the limit is 64" in oversized
    garbled = asker.bridge.submit(raw, b"\xff" * 12).result(15)
    assert b"malformed" in garbled
    # Cut short: this side closes (and so can read no answer), the strike is counted anyway.
    asker.bridge.submit(partial(raw, close=True), varint(40) + b"short").result(15)

    async def strikes() -> int:
        return server.node.limits._state(str(asker.node.peer_id)).strikes

    wait_for(lambda: server.bridge.submit(strikes).result(5) == 3, what="three strikes")
    # Still served: three strikes are not a ban.
    assert asker.ask(server, ECHO, b"ok") == asker.node.device + b"ok"


def test_an_unreachable_node_is_said_so(nodes, tmp_path: Path) -> None:
    _server, asker = nodes
    gone = Running(tmp_path / "gone")
    peer, addrs = gone.node.peer_id, list(gone.node.addrs)
    gone.stop()
    future = asker.bridge.submit(app_protocols.request, asker.node, peer, addrs, ECHO, b"?", 5.0)
    with pytest.raises(AppRequestError) as caught:
        future.result(10)
    assert caught.value.code == "unreachable"
    itself = refusal(lambda: asker.ask(asker, ECHO, b"?"))
    assert itself.code == "invalid"


@pytest.mark.anyio
async def test_another_process_asks_through_the_p2p_worker(
    registered, p2p_worker, data_dir: Path, tmp_path: Path
) -> None:
    """Scale-out: a web process asks over the channel layer (``p2p.app``), the worker's node asks
    the other node and answers with its answer or its words."""
    server = Running(tmp_path / "server")
    layer = p2p_worker.worker.channel_layer
    me = bytes(device_key_ensure(data_dir).signing_key.verify_key)

    async def ask(**message: Any) -> dict[str, Any]:
        reply_channel = await layer.new_channel()
        base = {
            "type": "p2p.app",
            "reply_channel": reply_channel,
            "peer": server.node.peer_id,
            "addrs": list(server.node.addrs),
            "protocol": ECHO,
            "timeout": 5,
        }
        await layer.send(P2P_CHANNEL, {**base, **message})
        return await asyncio.wait_for(layer.receive(reply_channel), 15)

    try:
        assert (await ask(payload=b"hi"))["payload"] == me + b"hi"
        refused = await ask(payload=b"refuse")
        assert (refused["error"], refused["detail"]) == (
            "refused",
            "The page must be a whole number.",
        )
        assert (await ask(payload="not bytes"))["error"] == "invalid"
    finally:
        server.stop()
