"""Another member's node in this process (its own database file and keys), voting in a thread's
polls through its database as that node would, and exchanging logs with this node as sync
would; and a conversation of this node with voting enabled."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from apps.core.models import Thread
from apps.messaging import services as messaging
from apps.voting import rules, services
from apps.voting.models import Ballot
from apps.voting.shape import ballot_json
from tests.support import members


class Member(members.Member):
    """Another member of ``thread``, on a node of its own, voting there."""

    def vote(self, poll_id: str, ballot: dict[str, Any]) -> str:
        """Cast (or replace) its named ballot on its own node; the ballot's id, hex."""
        pk = rules.ballot_id(bytes.fromhex(self.member), poll_id)
        Ballot.objects.using(self.alias).update_or_create(
            pk=uuid.UUID(hex=pk),
            defaults={"poll": uuid.UUID(hex=poll_id), "choice": ballot_json(ballot), "sealed": b""},
        )
        return pk


def member_join(thread: Thread, tmp_path: Path, name: str, role: str) -> Member:
    return members.member_join(thread, tmp_path, name, role, Member)


def voting_conversation(name: str = "Flat share", my_name: str = "Alice") -> Thread:
    """A conversation this node owns (as ``my_name``) with voting enabled."""
    chat = messaging.conversation_create(name=name, my_name=my_name)
    services.voting_enable(thread=chat)
    chat.refresh_from_db()
    return chat
