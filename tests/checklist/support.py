"""Another member's node in this process (its own database file and keys), writing to a thread's
checklist through its database as that node would, and exchanging logs with this node as sync
would."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from apps.checklist import rules
from apps.checklist.models import DEFAULT_LIST, Approval, Item
from apps.checklist.policy import checklist_spec
from apps.core.models import Thread
from apps.core.thread import payloads as p
from apps.core.threads import services as threads
from apps.core.threads.registry import thread_database
from tests.core.threads.conftest import OtherNode, admit, exchange, other_node
from tests.support.cut_off import carols_conversation


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

    def add(self, text: str, list_name: str = DEFAULT_LIST) -> str:
        return Item.objects.using(self.alias).create(text=text, list=list_name).id.hex

    def claim(self, pk: str) -> None:
        Item.objects.using(self.alias).filter(pk=pk).update(claimed_by=self.member)

    def approve(self, pk: str) -> None:
        item = Item.objects.using(self.alias).get(pk=pk)
        row = {"text": item.text, "done": item.done, "claimed_by": item.claimed_by}
        member_key = self.node.database.writer().member_key
        Approval.objects.using(self.alias).create(**rules.approval_values(member_key, pk, row))

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


def carols_checklist(tmp_path: Path) -> Member:
    """Carol's conversation with the checklist on, which this node joined as the writer Bob."""
    conversation = carols_conversation(tmp_path, name="Flat share")
    carol = conversation.carol.database
    carol.write(lambda writer: writer.control(p.EnableApp(checklist_spec())))
    shared = Member(conversation.carol, conversation.thread)
    shared.send()
    return shared
