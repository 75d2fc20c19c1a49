"""Small request/answer protocols that apps add to the p2p node, without the core knowing them.

An app registers a protocol in its ``ready()`` (``register``): a protocol id, a synchronous
``handler(peer_device, request) -> answer`` and its bounds. When the node starts it serves each
registered protocol (``install``): one request per stream, one answer, closed.

On the wire (the varint length prefix of every Sereus frame, ``apps.p2p.wire``):

- the request: ``varint(n)`` then ``n`` bytes, the app's payload, at most ``max_request``;
- the answer: ``varint(n)`` then ``0x00`` and the app's answer (at most ``max_response``), or an
  ``err`` frame of the Sereus protocols (``frames.Error``: a CBOR map, never starting with
  ``0x00``): ``busy`` (over the peer's rate), ``malformed`` (a request too large or cut short),
  ``refused`` (the handler refused it, in its words: ``AppRefused``) or ``unavailable`` (the
  handler failed or was too slow; the asking node learns nothing more).

The serving side: a stream comes in through the node's usual gate (stream budget, inbound slot,
bans: ``inbound._serve``); the request is read with the first-frame wait, its size announced up
front is checked before a byte of it is read, its bytes come out of the peer's byte budget; a
request over the size or cut short is the peer's fault (a strike, ``limits``). Each protocol keeps
a token bucket per peer (``rate``). The handler runs in a worker thread of its own small pool
(Django's ORM is synchronous); one slower than ``timeout`` is answered "unavailable" and left to
finish alone. A handler's exception is logged and answered "unavailable": it never reaches the
node.

The asking side (``request``, in the node's trio thread; ``apps.p2p.client.app_request`` from
any other thread or process) dials only the addresses it is given, under the rule every
peer-supplied address is dialed by (``addresses``), like an invite link's.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from libp2p.abc import INetStream

    from apps.p2p.node import SereusNode

logger = logging.getLogger(__name__)

Handler = Callable[[bytes, bytes], bytes]

OK = b"\x00"
FIRST_IDLE = 5.0  # the wait for the request, which the asking side sends right after opening
HANDLER_THREADS = 2  # handlers running at once, apart from the node's own database threads
MAX_VARINT = 10
WORDS_MOST = 300  # characters of a refusal kept


class AppRefused(Exception):
    """Raised by a handler to answer a refusal in words ("The page must be a whole number.")."""


class AppRequestError(Exception):
    """A request that got no answer. ``code``: ``unreachable`` (no connection at the addresses
    given), ``refused`` (the other node's words), ``busy`` (too many requests), ``unavailable``
    (it failed or did not answer in time), ``malformed`` (an answer that breaks the protocol) or
    ``invalid`` (the request itself: an unknown protocol, this node's own peer id)."""

    def __init__(self, code: str, words: str) -> None:
        super().__init__(words)
        self.code = code
        self.words = words


@dataclass
class AppProtocol:
    protocol: str
    handler: Handler
    max_request: int
    max_response: int
    rate: tuple[float, float]  # requests per second per peer, burst
    timeout: float
    busy: str  # the words of the answer over the rate


_registry: dict[str, AppProtocol] = {}


def register(
    protocol: str,
    handler: Handler,
    *,
    max_request: int,
    max_response: int,
    rate: tuple[float, float],
    timeout: float = 5.0,
    busy: str = "Too many requests; wait a moment.",
) -> None:
    """Serve ``protocol`` from the next start of the p2p node on (registering again replaces).

    ``handler(peer_device, request)`` runs in a worker thread and returns the answer's bytes, or
    raises ``AppRefused`` with words for the asking person. Bounds: the request and the answer
    in bytes, ``rate`` (requests per second per peer, burst), ``timeout`` in seconds."""
    if not protocol.startswith("/") or len(protocol) > 100:
        raise ValueError("a protocol id is a path like /app/name/1.0.0")
    # 5 MiB: one share of a backup chunk (its largest is 4 MiB, sealed) in one request.
    if not 0 < max_request <= 5 << 20 or not 0 < max_response <= 5 << 20:
        raise ValueError("requests and answers are at most 5 MiB")
    if rate[0] <= 0 or rate[1] < 1:
        raise ValueError("a rate is (requests per second > 0, burst >= 1)")
    _registry[protocol] = AppProtocol(
        protocol, handler, max_request, max_response, rate, timeout, busy
    )


def unregister(protocol: str) -> None:
    """Forget a protocol (tests); a running node serves it until it stops."""
    _registry.pop(protocol, None)


def registered(protocol: str) -> AppProtocol | None:
    return _registry.get(protocol)


# -- the frames ------------------------------------------------------------------------------------


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class _Fault(Exception):
    """The other side broke the protocol (``wire.PeerFault`` on the serving side)."""


async def _read_frame(stream: INetStream, limit: int, idle: float) -> bytes:
    """One varint-prefixed frame of at most ``limit`` bytes, which must start within ``idle``
    seconds and arrive within as many; ``_Fault`` when it is longer, cut short or garbled."""
    import trio
    from libp2p.network.stream.exceptions import StreamEOF

    with trio.fail_after(idle):
        try:
            return await _frame_of(stream, limit)
        except StreamEOF as exc:
            raise _Fault("the stream ended before the whole frame") from exc


async def _frame_of(stream: INetStream, limit: int) -> bytes:
    size, shift = 0, 0
    for count in range(MAX_VARINT + 1):
        if count == MAX_VARINT:
            raise _Fault("bad frame length")
        byte = await stream.read(1)
        if not byte:
            raise _Fault("the stream ended before the whole frame")
        size |= (byte[0] & 0x7F) << shift
        shift += 7
        if not byte[0] & 0x80:
            break
    if size > limit:
        raise _Fault(f"a frame of {size} bytes (the limit is {limit})")
    data = bytearray()
    while len(data) < size:
        chunk = await stream.read(size - len(data))
        if not chunk:
            raise _Fault("the stream ended before the whole frame")
        data.extend(chunk)
    return bytes(data)


# -- serving ---------------------------------------------------------------------------------------


@dataclass
class _Served:
    """What a running node keeps for the app protocols: buckets per (protocol, peer) and the
    handlers' thread pool."""

    limiter: Any
    buckets: dict[tuple[str, str], Any] = field(default_factory=dict)

    def allow(self, spec: AppProtocol, peer: str) -> bool:
        from apps.p2p.limits import TokenBucket

        key = (spec.protocol, peer)
        bucket = self.buckets.get(key)
        if bucket is None:
            if len(self.buckets) > 10_000:  # forget the oldest rather than grow forever
                for old in list(self.buckets)[:5_000]:
                    del self.buckets[old]
            bucket = self.buckets[key] = TokenBucket(*spec.rate)
        return bucket.take()


def install(node: SereusNode) -> None:
    """Set a stream handler on ``node``'s host for every registered protocol (in ``run``)."""
    import trio
    from libp2p.custom_types import TProtocol

    assert node.host is not None
    served = _Served(trio.CapacityLimiter(HANDLER_THREADS))
    for spec in list(_registry.values()):

        async def on_stream(stream: INetStream, spec: AppProtocol = spec) -> None:
            await node._serve(stream, partial(_respond, spec=spec, served=served))

        node.host.set_stream_handler(TProtocol(spec.protocol), on_stream)


async def _refuse(stream: INetStream, code: str, words: str) -> None:
    import trio

    from apps.p2p import frames
    from apps.p2p.wire import CLOSE_TIMEOUT

    data = frames.encode(frames.Error(code, words[:WORDS_MOST]))
    with trio.move_on_after(CLOSE_TIMEOUT):
        await stream.write(varint(len(data)) + data)


async def _respond(
    node: SereusNode, stream: INetStream, device: bytes, *, spec: AppProtocol, served: _Served
) -> None:
    import trio

    from apps.p2p.wire import CLOSE_TIMEOUT, PeerFault

    try:
        await _answer(node, stream, device, spec, served)
    except PeerFault as exc:
        # Said here, before the close; ``_serve`` counts the strike.
        await _refuse(stream, "malformed", str(exc))
        raise
    finally:
        # Closed before ``_serve`` resets it: a reset may overtake the answer on its way.
        with trio.move_on_after(CLOSE_TIMEOUT), contextlib.suppress(Exception):
            await stream.close()


async def _answer(
    node: SereusNode, stream: INetStream, device: bytes, spec: AppProtocol, served: _Served
) -> None:
    import trio

    from apps.p2p.wire import PeerFault

    peer = str(stream.muxed_conn.peer_id)
    try:
        request = await _read_frame(stream, spec.max_request, FIRST_IDLE)
    except _Fault as exc:
        raise PeerFault(str(exc)) from exc
    except trio.TooSlowError as exc:
        raise PeerFault("no request in time") from exc
    delay = node.limits.byte_delay(peer, len(request))
    if delay:
        await trio.sleep(delay)
    if not served.allow(spec, peer):
        await _refuse(stream, "busy", spec.busy)
        return
    answer: bytes | None = None
    words = "The node could not answer this request."
    with trio.move_on_after(spec.timeout) as scope:
        try:
            answer = await trio.to_thread.run_sync(
                partial(spec.handler, device, request),
                limiter=served.limiter,
                abandon_on_cancel=True,
            )
        except AppRefused as exc:
            await _refuse(stream, "refused", str(exc) or "refused")
            return
        except Exception:
            logger.exception("%s: the handler failed", spec.protocol)
    if scope.cancelled_caught:
        words = "The node took too long to answer."
        logger.warning("%s: the handler took over %g s", spec.protocol, spec.timeout)
    if not isinstance(answer, bytes) or len(answer) > spec.max_response:
        if answer is not None:
            logger.error("%s: the handler's answer is not bytes within the bound", spec.protocol)
        await _refuse(stream, "unavailable", words)
        return
    with trio.fail_after(spec.timeout):
        await stream.write(varint(len(answer) + 1) + OK + answer)


# -- asking ----------------------------------------------------------------------------------------


async def request(
    node: SereusNode,
    peer_id: str,
    addrs: list[str],
    protocol: str,
    payload: bytes,
    timeout: float,
) -> bytes:
    """Ask ``peer_id`` (dialed at ``addrs`` only, unless already connected) and return the
    answer; ``AppRequestError`` otherwise. Runs in the node's trio thread."""
    import trio
    from libp2p.custom_types import TProtocol
    from libp2p.peer.id import ID

    from apps.p2p import frames
    from apps.p2p.bridge import unwrap
    from apps.p2p.host import device_of

    spec = _registry.get(protocol)
    if spec is None:
        raise AppRequestError("invalid", f"this node does not speak {protocol[:100]}")
    if len(payload) > spec.max_request:
        raise AppRequestError("invalid", "the request is larger than the protocol allows")
    try:
        peer = ID.from_base58(peer_id)
    except Exception as exc:
        raise AppRequestError("invalid", "the peer id is not valid") from exc
    device = device_of(peer)
    if device is None:
        raise AppRequestError("invalid", "the peer id is not a node's device key")
    if device == node.device:
        raise AppRequestError("invalid", "that is this node itself")
    started = time.monotonic()
    try:
        with trio.fail_after(timeout):
            if not node.connected(device) and not await node.dial_addrs(peer, list(addrs)):
                raise AppRequestError(
                    "unreachable", "cannot reach that node at its addresses: is it online?"
                )
            try:
                stream = await node.open_stream(device, TProtocol(protocol))
            except Exception as exc:
                raise AppRequestError(
                    "unreachable", "that node did not take the request (it may not offer it)"
                ) from exc
            try:
                await stream.write(varint(len(payload)) + payload)
                left = max(0.1, timeout - (time.monotonic() - started))
                data = await _read_frame(stream, max(spec.max_response + 1, 8192), left)
            finally:
                with trio.move_on_after(1), contextlib.suppress(Exception):  # already closed
                    await stream.reset()
    except AppRequestError:
        raise
    except trio.TooSlowError as exc:
        raise AppRequestError("unavailable", "that node did not answer in time") from exc
    except _Fault as exc:
        raise AppRequestError("malformed", f"that node's answer is not readable ({exc})") from exc
    except Exception as exc:
        raise AppRequestError(
            "unreachable", f"the connection to that node broke ({type(unwrap(exc)).__name__})"
        ) from exc
    if data[:1] == OK:
        if len(data) - 1 > spec.max_response:
            raise AppRequestError("malformed", "that node's answer is larger than allowed")
        return data[1:]
    try:
        frame = frames.decode(data)
    except frames.FrameError as exc:
        raise AppRequestError("malformed", "that node's answer is not readable") from exc
    if not isinstance(frame, frames.Error):
        raise AppRequestError("malformed", "that node's answer is not readable")
    code = frame.code if frame.code in ("busy", "refused", "malformed") else "unavailable"
    raise AppRequestError(code, frame.detail)
