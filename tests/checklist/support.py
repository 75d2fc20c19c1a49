"""Another member's node in this process (its own database file and keys), writing to a thread's
checklist through its database as that node would, and exchanging logs with this node as sync
would."""

from __future__ import annotations

from pathlib import Path

from apps.checklist import rules
from apps.checklist.models import DEFAULT_LIST, Approval, Item
from apps.checklist.policy import checklist_spec
from apps.core.models import Thread
from apps.core.thread import payloads as p
from tests.support import members
from tests.support.cut_off import carols_conversation


class Member(members.Member):
    """Another member of ``thread``, on a node of its own, with its checklist."""

    def add(self, text: str, list_name: str = DEFAULT_LIST) -> str:
        return Item.objects.using(self.alias).create(text=text, list=list_name).id.hex

    def claim(self, pk: str) -> None:
        Item.objects.using(self.alias).filter(pk=pk).update(claimed_by=self.member)

    def approve(self, pk: str) -> None:
        item = Item.objects.using(self.alias).get(pk=pk)
        row = {"text": item.text, "done": item.done, "claimed_by": item.claimed_by}
        member_key = self.node.database.writer().member_key
        Approval.objects.using(self.alias).create(**rules.approval_values(member_key, pk, row))


def member_join(thread: Thread, tmp_path: Path, name: str, role: str) -> Member:
    return members.member_join(thread, tmp_path, name, role, Member)


def carols_checklist(tmp_path: Path) -> Member:
    """Carol's conversation with the checklist on, which this node joined as the writer Bob."""
    conversation = carols_conversation(tmp_path, name="Flat share")
    carol = conversation.carol.database
    carol.write(lambda writer: writer.control(p.EnableApp(checklist_spec())))
    shared = Member(conversation.carol, conversation.thread)
    shared.send()
    return shared
