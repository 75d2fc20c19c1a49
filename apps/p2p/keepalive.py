"""Keepalive: find connections to member devices that stopped answering, close them, redial.

A TCP connection whose packets are lost (a cut path, a NAT that forgot its mapping, a laptop that
slept) ends without a FIN: it still looks connected, and py-libp2p hands it out for every new
stream, so sessions with that device time out one after another until TCP itself gives up or
its retransmission backoff comes round (observed: about 2.5 minutes without sync after the loss
stopped). So:

- every ``PING_INTERVAL`` each connected member device gets a libp2p ping (``/ipfs/ping/1.0.0``,
  which every node answers) that must come back within ``PING_DEADLINE``; a sync session that
  timed out asks for the same check at once (``check``). A ping that fails is tried once more
  right away, so one slow answer from a busy peer does not cost the connection;
- a connection that fails both is closed: its socket first (the muxer's goodbye would otherwise
  wait on the silent peer, and a writer blocked on it lets go), then the libp2p connection, which
  leaves the swarm, so the next dial makes a new one instead of reusing the dead one;
- the device is then redialed on a short schedule (``REDIAL_DELAYS``) for ``REDIAL_FOR``
  seconds: the path usually comes back, and waiting out the usual per-peer backoff (up to five
  minutes) would keep the thread apart long after it did. A new connection starts a session for
  every thread shared with the device (``SereusNode._on_connected``).

The socket is reached through py-libp2p 0.8.1 internals (``muxed_conn.secured_conn``); an upgrade
must re-check that name (the network namespace test of a stalled connection fails otherwise).
"""

from __future__ import annotations

import contextlib
import logging
import random
import secrets
import time
from typing import TYPE_CHECKING

import trio
from libp2p.abc import IHost
from libp2p.custom_types import TProtocol
from libp2p.io.utils import read_exactly
from libp2p.peer.id import ID

from apps.p2p.host import peer_id_of

if TYPE_CHECKING:
    from apps.p2p.node import SereusNode

logger = logging.getLogger(__name__)

PING_PROTOCOL = TProtocol("/ipfs/ping/1.0.0")
PING_SIZE = 32
PING_INTERVAL = 15.0
PING_DEADLINE = 5.0
REDIAL_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)  # then every 8 s
REDIAL_FOR = 600.0
CLOSE_TIMEOUT = 2.0


async def ping(host: IHost, peer_id: ID, *, deadline: float = PING_DEADLINE) -> bool:
    """One ping on a new stream over the existing connection; True if it came back in time.
    Never dials: without a connection there is nothing to check (False)."""
    if not _live_connections(host, peer_id):
        return False
    payload = secrets.token_bytes(PING_SIZE)
    stream = None
    try:
        with trio.fail_after(deadline):
            stream = await host.new_stream(peer_id, [PING_PROTOCOL])
            await stream.write(payload)
            echoed = await read_exactly(stream, PING_SIZE)
    except Exception:  # a timeout, a reset, a refused protocol: no answer is no answer
        return False
    finally:
        if stream is not None:
            with trio.move_on_after(1), contextlib.suppress(Exception):
                await stream.close()
    return echoed == payload


async def connection_drop(host: IHost, peer_id: ID) -> None:
    """Close every connection to ``peer_id`` without waiting on the peer, and make sure the
    swarm forgets them (so the next dial is a real one)."""
    network = host.get_network()
    for conn in network.get_connections(peer_id):
        secured = getattr(getattr(conn, "muxed_conn", None), "secured_conn", None)
        if secured is not None:
            with trio.move_on_after(CLOSE_TIMEOUT), contextlib.suppress(Exception):
                await secured.close()
        with trio.move_on_after(CLOSE_TIMEOUT), contextlib.suppress(Exception):
            await conn.close()
        if conn in network.get_connections(peer_id):  # the library did not get that far
            with contextlib.suppress(Exception):
                network.remove_conn(conn)  # type: ignore[attr-defined]


def _live_connections(host: IHost, peer_id: ID) -> list:
    return [c for c in host.get_network().get_connections(peer_id) if not c.is_closed]


class Keepalive:
    def __init__(self, node: SereusNode) -> None:
        self.node = node
        self._checking: set[bytes] = set()
        self._redialing: set[bytes] = set()
        self._nursery: trio.Nursery | None = None
        self.stats = {"pings": 0, "dead": 0, "redials": 0}

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            while True:
                await trio.sleep(PING_INTERVAL * random.uniform(0.9, 1.1))  # noqa: S311 - jitter
                for device in list(self.node.peers):
                    if self.node.connected(device):
                        self.check(device)

    def check(self, device: bytes) -> None:
        """Ping ``device`` now (unless a check is under way); a dead connection is dropped and
        the device redialed."""
        if device in self._checking or self._nursery is None:
            return
        self._checking.add(device)
        self._nursery.start_soon(self._check, device)

    async def _check(self, device: bytes) -> None:
        try:
            dead = await self._dead(device)
        except Exception:  # a bug here must not take the node down: log it, try next round
            logger.exception("checking the connection to %s failed", peer_id_of(device))
            dead = False
        finally:
            self._checking.discard(device)
        if dead:
            self.redial(device)

    async def _dead(self, device: bytes) -> bool:
        """Ping ``device``; if it does not answer, drop its connection (True)."""
        host = self.node.host
        assert host is not None
        peer_id = peer_id_of(device)
        for _attempt in range(2):
            if not self.node.connected(device):
                return False  # gone meanwhile: dialing is someone else's business
            self.stats["pings"] += 1
            if await ping(host, peer_id):
                return False
        self.stats["dead"] += 1
        logger.info("the connection to %s stopped answering: closing it", peer_id)
        self.node.idle_stream_drop(device)
        await connection_drop(host, peer_id)
        record = self.node.peers.get(device)
        if record is not None:
            record.last_error = "the connection stopped answering"
        return True

    def redial(self, device: bytes) -> None:
        if device in self._redialing or self._nursery is None:
            return
        self._redialing.add(device)
        self._nursery.start_soon(self._redial, device)

    async def _redial(self, device: bytes) -> None:
        """Dial ``device`` on the short schedule until connected (by this dial or by the peer
        dialing us), it is no longer a member device, or ``REDIAL_FOR`` has passed."""
        give_up = time.monotonic() + REDIAL_FOR
        try:
            attempt = 0
            while time.monotonic() < give_up:
                record = self.node.peers.get(device)
                if record is None or self.node.connected(device):
                    return
                record.retry_at = 0.0  # this schedule instead of the per-peer backoff
                self.stats["redials"] += 1
                if await self.node.ensure_connected(device):
                    return
                await trio.sleep(REDIAL_DELAYS[min(attempt, len(REDIAL_DELAYS) - 1)])
                attempt += 1
        except Exception:  # a bug here must not take the node down; anti-entropy dials too
            logger.exception("redialing %s failed", peer_id_of(device))
        finally:
            self._redialing.discard(device)

    def status(self) -> dict[str, int]:
        return dict(self.stats)
