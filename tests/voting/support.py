"""Another member's node in this process (its own database file and keys), voting in a thread's
polls through its database as that node would, and exchanging logs with this node as sync
would; and a conversation of this node with voting enabled."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apps.core.models import Thread
from apps.core.threads import services as threads
from apps.core.threads.registry import thread_database
from apps.messaging import services as messaging
from apps.voting import rules, services
from apps.voting.models import Ballot
from apps.voting.shape import ballot_json
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

    def vote(self, poll_id: str, ballot: dict[str, Any]) -> str:
        """Cast (or replace) its named ballot on its own node; the ballot's id, hex."""
        pk = rules.ballot_id(bytes.fromhex(self.member), poll_id)
        Ballot.objects.using(self.alias).update_or_create(
            pk=uuid.UUID(hex=pk),
            defaults={"poll": uuid.UUID(hex=poll_id), "choice": ballot_json(ballot), "sealed": b""},
        )
        return pk

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


def member_join(thread: Thread, tmp_path: Path, name: str, role: str) -> Member:
    """Someone joins this node's ``thread`` at ``role`` on a node of their own and names
    themself; both nodes then have everything."""
    joined = Member(other_node(tmp_path, thread.thread, name.lower()), thread)
    admit(thread_database(thread.thread), joined.node, role)
    joined.node.database.write(lambda writer: writer.set_name(name))  # its member name (ADR 16)
    joined.send()
    return joined


def voting_conversation(name: str = "Flat share", my_name: str = "Alice") -> Thread:
    """A conversation this node owns (as ``my_name``) with voting enabled."""
    chat = messaging.conversation_create(name=name, my_name=my_name)
    services.voting_enable(thread=chat)
    chat.refresh_from_db()
    return chat
