"""How the rest of the node reaches the p2p node.

In the process that runs it (runnode, or ``runworker sereus-p2p``), directly through the trio
bridge. In a web or Celery process of the scale-out mode, over the channel layer: ``p2p.push``
messages, ``p2p.fetch`` (chunks of attachments to fetch), a ``p2p.redeem`` request and an app
protocol's ``p2p.app`` request (``app_request``) to the worker. This module is the thread services'
``Network`` (``services.network``) and the receiver of ``ops_written``, which also tells open
browser pages of the thread (the live UI group ``thread-<id>``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

from apps.core.thread.invite import Invite
from apps.core.thread.writer import RedemptionRequest
from apps.core.threads import services
from apps.p2p.state import state_load

logger = logging.getLogger(__name__)

P2P_CHANNEL = "sereus-p2p"
REDEEM_WAIT = 120.0  # dial, admission and the log of a big thread
# A worker answers a status request within its own 3 s cap on the host's answer; more is margin
# for a loaded machine and Redis.
WORKER_CHECK_WAIT = 6.0
MAX_FETCH_MESSAGE = 256  # chunk hashes per p2p.fetch message

_local_lock = threading.Lock()
_local: tuple[Any, Any] | None = None  # (TrioThread, SereusNode) of this process
# Set by the p2p node around its own ingest of a peer's ops (in that worker thread): the ops
# written then came from that peer, which ``notify`` tells the node (``SereusNode.notify``).
received = threading.local()


def local_set(bridge: Any, node: Any) -> None:
    global _local
    with _local_lock:
        _local = (bridge, node)


def local_clear() -> None:
    global _local
    with _local_lock:
        _local = None


def live_group(thread: bytes) -> str:
    """The Channels group of the browser pages showing ``thread``."""
    return f"thread-{thread.hex()}"


class NetworkClient:
    """``services.Network`` for this process."""

    def addresses(self) -> tuple[str, ...]:
        local = _local
        if local is not None:
            return tuple(local[1].addrs)
        return state_load(Path(settings.DATA_DIR)).addrs

    def redeem(self, invite: Invite, request: RedemptionRequest) -> None:
        local = _local
        if local is not None:
            bridge, node = local
            future = bridge.submit(node.redeem, invite, request)
            try:
                future.result(timeout=REDEEM_WAIT)
            except TimeoutError as exc:
                # The redemption goes on in the p2p thread (a running coroutine cannot be
                # cancelled from here), and the inviter may have admitted this node already:
                # the thread stays joining, and the p2p node finishes the join.
                future.cancel()
                raise services.ThreadServiceError(
                    "interrupted", "redeeming the invite is taking long; this node goes on trying"
                ) from exc
            return
        if not settings.SEREUS.scale_out:
            raise services.ThreadServiceError(
                "unreachable", "this node cannot reach the inviter: its p2p host is not running"
            )
        _worker_check()
        reply = _request(
            {
                "type": "p2p.redeem",
                "link": invite.link(),
                "invite": request.invite,
                "member": request.member,
                "device": request.device,
                "device_cert": request.device_cert,
                "proof": request.proof,
                "device_proof": request.device_proof,
            },
            timeout=REDEEM_WAIT,
        )
        if reply is None:
            # The worker may be redeeming still (or may not run): the thread stays joining, and
            # the worker finishes the join once it can.
            raise services.ThreadServiceError(
                "interrupted",
                "the p2p worker does not answer (is runworker sereus-p2p running?); "
                "the join goes on when it does",
            )
        if reply.get("error"):
            raise services.ThreadServiceError(str(reply["error"]), str(reply.get("detail", "")))

    def leave_deliver(self, thread: bytes, timeout: float) -> bool:
        local = _local
        if local is None:
            # Scale-out: the write's p2p.push already reached the worker, which delivers the
            # leave like any push; this process cannot tell when it arrives.
            return False
        bridge, node = local
        future = bridge.submit(node.leave_deliver, thread, timeout)
        try:
            return bool(future.result(timeout=timeout + 2))
        except Exception:  # the leave is written either way; the p2p node goes on trying
            logger.warning("pushing the leave of %s failed", thread.hex()[:12], exc_info=True)
            return False

    def blobs_want(self, thread: bytes, chunks: list[bytes]) -> None:
        if not chunks:
            return
        local = _local
        if local is not None:
            local[0].call_soon(local[1].blob_want, thread, list(chunks))
            return
        if not settings.SEREUS.scale_out:
            return  # no p2p host in this process and none elsewhere: nothing can fetch
        layer = get_channel_layer()
        for start in range(0, len(chunks), MAX_FETCH_MESSAGE):
            batch = chunks[start : start + MAX_FETCH_MESSAGE]
            async_to_sync(layer.send)(
                P2P_CHANNEL,
                {"type": "p2p.fetch", "thread": thread.hex(), "chunks": [c.hex() for c in batch]},
            )

    def typing(self, thread: bytes) -> None:
        local = _local
        if local is not None:
            local[0].call_soon(local[1].typing_send, thread)
            return
        if settings.SEREUS.scale_out:
            layer = get_channel_layer()
            async_to_sync(layer.send)(P2P_CHANNEL, {"type": "p2p.typing", "thread": thread.hex()})


def app_request(
    peer_id: str, addrs: list[str], protocol: str, payload: bytes, *, timeout: float
) -> bytes:
    """Ask another node over an app protocol (``apps.p2p.app_protocols``), dialing only
    ``addrs``; its answer, or ``AppRequestError`` in words. From any thread but the p2p one."""
    from apps.p2p.app_protocols import AppRequestError

    local = _local
    if local is not None:
        from apps.p2p.app_protocols import request

        bridge, node = local
        future = bridge.submit(request, node, peer_id, list(addrs), protocol, payload, timeout)
        try:
            return future.result(timeout=timeout + 2)
        except TimeoutError as exc:
            future.cancel()
            raise AppRequestError("unavailable", "that node did not answer in time") from exc
        except AppRequestError:
            raise
        except Exception as exc:  # the p2p host stopped under the request
            raise AppRequestError("unreachable", "this node's p2p host is not running") from exc
    if not settings.SEREUS.scale_out:
        raise AppRequestError("unreachable", "this node's p2p host is not running")
    message = {
        "type": "p2p.app",
        "peer": peer_id,
        "addrs": list(addrs),
        "protocol": protocol,
        "payload": payload,
        "timeout": timeout,
    }
    reply = _request(message, timeout=timeout + WORKER_CHECK_WAIT)
    if reply is None:
        raise AppRequestError(
            "unavailable",
            "this node's p2p worker does not answer (is runworker sereus-p2p running?)",
        )
    if reply.get("error"):
        raise AppRequestError(str(reply["error"]), str(reply.get("detail", "")))
    answer = reply.get("payload")
    if not isinstance(answer, bytes):
        raise AppRequestError("malformed", "this node's p2p worker answered nothing readable")
    return answer


def _worker_check() -> None:
    """Fail in seconds, not after ``REDEEM_WAIT``, when no p2p worker would take the redeem
    (a request on the channel waits there for a worker that may never come)."""
    reply = status(timeout=WORKER_CHECK_WAIT)
    if reply is None:
        raise services.ThreadServiceError(
            "unreachable",
            "This node's peer-to-peer worker is not running, so it cannot reach the inviter. "
            "Start it with: python manage.py runworker sereus-p2p",
        )
    if not reply.get("running"):
        raise services.ThreadServiceError(
            "unreachable",
            "This node's peer-to-peer worker runs but could not start its network connection, "
            "so it cannot reach the inviter. Its log says why.",
        )


def status(*, timeout: float) -> dict[str, Any] | None:
    """The p2p worker's status (whichever process runs it), or None if it does not answer."""
    reply = _request({"type": "p2p.status"}, timeout=timeout)
    if reply is not None:
        reply.pop("type", None)
    return reply


def _request(message: dict[str, Any], *, timeout: float) -> dict[str, Any] | None:
    """Ask the p2p worker over the channel layer and wait for its answer (sync callers)."""

    async def ask() -> dict[str, Any] | None:
        layer = get_channel_layer()
        reply_channel = await layer.new_channel()
        await layer.send(P2P_CHANNEL, {**message, "reply_channel": reply_channel})
        try:
            return await asyncio.wait_for(layer.receive(reply_channel), timeout)
        except TimeoutError:
            return None

    return async_to_sync(ask)()


def notify(thread: bytes, *, own: bool = False) -> None:
    """Ops were written to ``thread`` in this process: push them, tell open pages. ``own``:
    this node wrote them (not ops taken in from another node)."""
    local = _local
    if local is not None:
        # The first write of an ingest is the peer's ops; any after it (in the same call) is
        # this node's own.
        source, received.source = getattr(received, "source", None), None
        ready = None
        if source is None and own:
            # The push's first flights, read here rather than by the node (``push_ahead``).
            from apps.p2p.push_ahead import push_ahead

            ready = push_ahead(local[1], thread)
        local[0].call_soon(local[1].notify, thread, source, ready)
    scale_out = settings.SEREUS.scale_out
    if home_loop is None and not scale_out:
        return  # no web server in this process and no shared channel layer: nobody to tell
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        if local is None and scale_out:
            async_to_sync(layer.send)(P2P_CHANNEL, {"type": "p2p.push", "thread": thread.hex()})
        group = live_group(thread)
        if _may_listen(layer, group):
            _group_send(layer, group, {"type": "thread.changed", "thread": thread.hex()})
    except Exception:  # a write must not fail because nobody could be told
        logger.warning("could not announce new ops of thread %s", thread.hex()[:12], exc_info=True)


# The event loop the in-memory channel layer lives on (runnode's), set by the runtime: its
# queues must only be touched from that loop.
home_loop: asyncio.AbstractEventLoop | None = None


def _may_listen(layer: Any, group: str) -> bool:
    """Whether a page of this process may be in ``group``. The in-memory layer (one process)
    says so exactly; telling an empty group would wake the web server's loop on every write,
    beside the push that write starts. A page that opens meanwhile renders once it joined,
    from what is committed by then."""
    groups = getattr(layer, "groups", None)
    if settings.SEREUS.scale_out or not isinstance(groups, dict):
        return True  # a shared layer: pages of other processes may listen
    return bool(groups.get(group))


def _group_send(layer: Any, group: str, message: dict[str, Any]) -> None:
    loop = home_loop
    if loop is not None and loop.is_running():
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            loop.create_task(layer.group_send(group, message))
        else:
            asyncio.run_coroutine_threadsafe(layer.group_send(group, message), loop)
        return
    async_to_sync(layer.group_send)(group, message)


def pages_tell(thread: bytes) -> None:
    """Something of ``thread`` that is not an op changed here (chunks of an attachment came):
    open pages re-render. Safe to call from any thread, the p2p host's included."""
    if home_loop is None and not settings.SEREUS.scale_out:
        return
    layer = get_channel_layer()
    if layer is None:
        return
    group = live_group(thread)
    if not _may_listen(layer, group):
        return
    try:
        _group_send(layer, group, {"type": "thread.changed", "thread": thread.hex()})
    except Exception:
        logger.warning("could not tell pages of thread %s", thread.hex()[:12], exc_info=True)


def pages_typing(thread: bytes, member: bytes) -> None:
    """A member of ``thread`` is typing on another node: open pages show it for a moment."""
    if home_loop is None and not settings.SEREUS.scale_out:
        return
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "thread.typing", "thread": thread.hex(), "member": member.hex()}
    group = live_group(thread)
    if not _may_listen(layer, group):
        return
    try:
        _group_send(layer, group, message)
    except Exception:
        logger.debug("could not tell pages of thread %s", thread.hex()[:12], exc_info=True)


def on_ops_written(sender: Any, thread: bytes, alias: str, **kwargs: Any) -> None:
    notify(thread, own=not kwargs.get("received", False))


def on_thread_added(sender: Any, thread: bytes, **kwargs: Any) -> None:
    notify(thread)
