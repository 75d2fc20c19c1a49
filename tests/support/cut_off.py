"""A member removed while its node was cut off, in one process (issue 9, defect 14).

Carol's node (another node in this process) starts the conversation "Book club"; this node (the
one the test's pages and API serve) joins it as a writer called Bob, posts, and the two nodes
exchange their logs. Then they lose each other: Carol removes Bob, and Bob, who cannot know,
keeps writing; his node accepts every write (the API answers 201). When Carol's log reaches Bob's
node, the removal makes every replica refuse what Bob wrote after it: his node shows each of
those writes as not accepted, with the reason and the text he wrote.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import nacl.signing
import nacl.utils

from apps.core.models import Thread
from apps.core.thread.policy import policy_template
from apps.core.thread.writer import ThreadWriter
from apps.core.threads import services as threads
from apps.core.threads.database import NodeKeys, ThreadDatabase
from apps.core.threads.registry import thread_database
from apps.messaging import services
from apps.messaging.models import Message
from tests.core.threads.conftest import OtherNode, exchange


@dataclass
class Conversation:
    thread: Thread  # this node's (Bob's) registry row
    carol: OtherNode

    @property
    def database(self) -> ThreadDatabase:
        return thread_database(self.thread.thread)

    def send_to_carol(self) -> None:
        exchange(self.database, self.carol.database)

    def receive_from_carol(self) -> None:
        """Carol's log reaches this node, as sync would deliver it."""
        raws = [
            raw
            for (raw,) in self.carol.database.raw().execute(
                "SELECT raw FROM sereus_ops WHERE place = 'log' ORDER BY n"
            )
        ]
        threads.thread_ingest(thread=self.thread, raws=raws)
        self.thread.refresh_from_db()


def carols_conversation(tmp_path: Path, name: str = "Book club") -> Conversation:
    """Carol's conversation, which this node has joined as the writer Bob (by an invite that
    Carol's node admitted), with a message of each of them known to both nodes."""
    keys = NodeKeys(device=nacl.signing.SigningKey.generate(), master_secret=nacl.utils.random(32))
    writer = ThreadWriter.create(
        master_secret=keys.master_secret,
        device_key=keys.device,
        name=name,
        app="messaging",
        policy=policy_template("messaging"),
    )
    carol = OtherNode(
        keys,
        ThreadDatabase(
            writer.thread,
            path=tmp_path / "carol.sqlite3",
            alias=f"thread_{writer.thread.hex()}_carol",
            node=keys,
        ),
    )
    carol.database.ingest(op.raw for op in writer.replica.admitted)
    carol.database.write(lambda writer: writer.set_name("Carol"))
    Message.objects.using(carol.alias).create(text="Welcome to the book club!")
    expiry = time.time_ns() // 1_000_000 + 3_600_000
    invite = carol.database.write(
        lambda w: w.invite_create(role="writer", expiry=expiry, inviter="carol")
    )
    invite, request = threads.invite_redeem_local(link=invite.link())
    carol.database.write(lambda w: w.admit(request))
    raws = [
        raw
        for (raw,) in carol.database.raw().execute(
            "SELECT raw FROM sereus_ops WHERE place = 'log' ORDER BY n"
        )
    ]
    conversation = Conversation(threads.thread_join(invite=invite, raws=raws), carol)
    services.profile_set(thread=conversation.thread, name="Bob")
    services.message_send(thread=conversation.thread, text="Hello Carol, glad to be here")
    conversation.send_to_carol()
    return conversation


def carol_removes_bob(conversation: Conversation) -> None:
    """Carol removes Bob on her node; nothing of it reaches Bob's node yet."""
    bob = bytes.fromhex(conversation.thread.member_id)
    conversation.carol.database.write(lambda w: w.remove_member(bob))
