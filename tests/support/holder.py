"""A crowd of strangers holding streams open on a node, as a process of its own (so that it does
not share the test's GIL with the node it crowds):

    python -m tests.support.holder --target <peer id>@<multiaddr> --identities 70 --streams 4

Each throw-away identity connects and opens ``--streams`` sync streams, sends nothing on them
and holds them until the node resets them; then opens them again. Every 0.2 s it prints
``holding <now> <most>`` (streams held now, and at most so far).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import multiaddr
import nacl.signing
import trio
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo

from apps.p2p.host import host_build, quiet_libp2p_logs
from apps.p2p.protocols import SYNC_PROTOCOL


class Crowd:
    def __init__(self, peer_id: str, addr: str, identities: int, streams: int) -> None:
        self.peer_id = ID.from_base58(peer_id)
        self.addr = multiaddr.Multiaddr(addr)
        self.identities = identities
        self.streams = streams
        self.holding = 0
        self.most = 0

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._report)
            for _ in range(self.identities):
                nursery.start_soon(self._identity)

    async def _report(self) -> None:
        while True:
            print(f"holding {self.holding} {self.most}", flush=True)
            await trio.sleep(0.2)

    async def _identity(self) -> None:
        host = host_build(nacl.signing.SigningKey.generate())
        async with host.run(listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
            with trio.fail_after(30):
                await host.connect(PeerInfo(self.peer_id, [self.addr]))
            async with trio.open_nursery() as nursery:
                for _ in range(self.streams):
                    nursery.start_soon(self._hold, host)

    async def _hold(self, host: Any) -> None:
        while True:
            try:
                with trio.fail_after(5):
                    stream = await host.new_stream(self.peer_id, [SYNC_PROTOCOL])
            except Exception:  # refused, or the node is busy: try again in a while
                await trio.sleep(1)
                continue
            self.holding += 1
            self.most = max(self.most, self.holding)
            try:
                await stream.read(1)  # nothing comes: this waits until the node gives up
            except Exception:  # noqa: S110 - reset by the node: the end of this hold
                pass
            finally:
                self.holding -= 1
            await trio.sleep(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Strangers holding streams open on a node.")
    parser.add_argument("--target", required=True, help="peer_id@multiaddr")
    parser.add_argument("--identities", type=int, default=70)
    parser.add_argument("--streams", type=int, default=4)
    args = parser.parse_args(argv)
    quiet_libp2p_logs()
    peer_id, addr = args.target.split("@", 1)
    trio.run(Crowd(peer_id, addr, args.identities, args.streams).run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
