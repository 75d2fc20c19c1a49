"""Strangers cannot hold every inbound session slot: a real ``SereusNode`` host, a crowd of
throw-away libp2p identities holding as many sync streams open as it lets them (``holder``, a
process of its own), and a member device that still gets its session."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from typing import Any

import nacl.signing
import pytest

from apps.core.thread.writer import redemption_request
from apps.core.threads import services
from apps.core.threads.database import NodeKeys
from apps.p2p.bridge import TrioThread
from apps.p2p.host import quiet_libp2p_logs
from apps.p2p.node import NodeSettings, SereusNode
from tests.support.api import wait_for
from tests.support.nodes import REPO
from tests.support.rogue import RoguePeer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

CROWD = (70, 4)  # identities x streams each: more than the 256 streams a node serves at once
SLOTS = 256
FILL = 25.0  # at most this long for the crowd to take what it can (20 stranger streams/s)
START = 90.0  # at most this long for the crowd's process to hold its first 32 streams


class Crowd:
    """``tests.support.holder`` in a process of its own; ``holding``/``most`` as it last said."""

    def __init__(self, target: str, identities: int, streams: int) -> None:
        command = [sys.executable, "-m", "tests.support.holder", "--target", target]
        command += ["--identities", str(identities), "--streams", str(streams)]
        self.proc = subprocess.Popen(
            command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        self.holding = self.most = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            parts = line.split()
            if len(parts) == 3 and parts[0] == "holding":
                self.holding, self.most = int(parts[1]), int(parts[2])

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


def test_strangers_holding_streams_open_leave_room_for_a_members_session(thread, data_dir):
    quiet_libp2p_logs()
    node = SereusNode(
        NodeKeys.of_this_node().device,
        NodeSettings(data_dir=data_dir, listen="/ip4/127.0.0.1/tcp/0", dht=False),
    )
    bridge = TrioThread("node")
    bridge.start(node.run)
    holder = rogue = None
    try:
        # A member device of the node's thread: admitted with an invite, like any joiner.
        member_key = nacl.signing.SigningKey.generate()
        invite = services.invite_create(
            thread=thread, role="writer", expires_in=timedelta(hours=1)
        ).invite
        request = redemption_request(invite, master_secret=os.urandom(32), device_key=member_key)
        services.invite_admit(thread=thread, request=request)
        bridge.call_soon(node.notify, thread.thread)
        member = bytes(member_key.verify_key)

        async def knows_member() -> bool:
            return member in node.peers

        wait_for(lambda: bridge.submit(knows_member).result(5), what="the node to list the member")

        addrs = list(node.addrs)
        holder = Crowd(f"{node.peer_id}@{addrs[0]}", *CROWD)
        # The crowd's own start (70 identities' handshakes in one process) is no part of what
        # is tested: on a busy machine it took more than FILL before its first stream.
        started = time.monotonic() + START
        while holder.most < 32 and time.monotonic() < started:
            time.sleep(0.2)
        assert holder.most >= 32, "the crowd did not get going"
        # Then until it holds every slot there is (the node as it was: within about 20 s,
        # before its first holds time out after 30 s), or as many as it will ever get.
        deadline = time.monotonic() + FILL
        while holder.holding < SLOTS and time.monotonic() < deadline:
            time.sleep(0.2)
        held = holder.holding

        rogue = RoguePeer(member_key).start()
        rogue.call(rogue.connect, str(node.peer_id), addrs)
        # A sync session for a thread the node does not have: a session that is served ends
        # in "refused"; a stream the node has no slot for is reset (an exception here).
        try:
            outcome = rogue.call(rogue.sync, str(node.peer_id), os.urandom(32), {}, [])
        except Exception as exc:
            raise AssertionError(
                f"the member's stream was not served with {held} streams held by strangers: {exc!r}"
            ) from None
        assert outcome.refused == "refused"

        async def inbound() -> dict[str, Any]:
            return (await node.status())["inbound"]

        slots = bridge.submit(inbound).result(5)
        assert slots["strangers"] <= slots["stranger_slots"] < slots["member_slots"]
    finally:
        for running in (rogue, holder):
            if running is not None:
                running.stop()
        bridge.stop()
