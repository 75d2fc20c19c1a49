"""Another member's node in this process (its own database file and keys): it writes to a
thread through its own database as that node would, and exchanges logs with this node as sync
would. Apps' test support subclasses ``Member`` with what their members do."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from apps.core.models import Thread
from apps.core.threads import services as threads
from apps.core.threads.registry import thread_database
from tests.core.threads.conftest import OtherNode, admit, exchange, other_node


@dataclass
class Member:
    """Another member of ``thread`` (this node's registry row of it), on a node of its own."""

    node: OtherNode
    thread: Thread

    @property
    def alias(self) -> str:
        return self.node.alias

    @property
    def member(self) -> str:
        """Its member key, hex."""
        member = self.node.database.member_public()
        assert member is not None
        return member.hex()

    def send(self) -> None:
        """Its log reaches this node."""
        raws = [
            raw
            for (raw,) in self.node.database.raw().execute(
                "SELECT raw FROM sereus_ops WHERE place = 'log' ORDER BY n"
            )
        ]
        threads.thread_ingest(thread=self.thread, raws=raws)
        self.thread.refresh_from_db()

    def receive(self) -> None:
        """This node's log reaches it."""
        exchange(thread_database(self.thread.thread), self.node.database)


M = TypeVar("M", bound=Member)


def member_join(thread: Thread, tmp_path: Path, name: str, role: str, kind: type[M]) -> M:
    """Someone joins this node's ``thread`` at ``role`` on a node of their own and names
    themself; both nodes then have everything."""
    joined = kind(other_node(tmp_path, thread.thread, name.lower()), thread)
    admit(thread_database(thread.thread), joined.node, role)
    joined.node.database.write(lambda writer: writer.set_name(name))  # its member name (ADR 16)
    joined.send()
    return joined
