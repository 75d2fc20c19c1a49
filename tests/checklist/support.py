"""A checklist in a conversation shared with another node in this process (Carol's), written
through Carol's database as her node would, and delivered to this node as sync would."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from apps.checklist.models import DEFAULT_LIST, Item
from apps.checklist.policy import checklist_spec
from apps.core.thread import payloads as p
from tests.support.cut_off import Conversation, carols_conversation


@dataclass
class Shared:
    """Carol's conversation, which this node (Bob, a writer) has joined; the checklist is on."""

    conversation: Conversation

    @property
    def thread(self):
        return self.conversation.thread

    @property
    def alias(self) -> str:
        return self.conversation.carol.alias

    @property
    def carol(self) -> str:
        """Carol's member key, hex."""
        member = self.conversation.carol.database.member_public()
        assert member is not None
        return member.hex()

    def add(self, text: str, list_name: str = DEFAULT_LIST) -> str:
        return Item.objects.using(self.alias).create(text=text, list=list_name).id.hex

    def claim(self, pk: str) -> None:
        Item.objects.using(self.alias).filter(pk=pk).update(claimed_by=self.carol)

    def to_bob(self) -> None:
        self.conversation.receive_from_carol()

    def to_carol(self) -> None:
        self.conversation.send_to_carol()


def carols_checklist(tmp_path: Path) -> Shared:
    conversation = carols_conversation(tmp_path, name="Flat share")
    carol = conversation.carol.database
    carol.write(lambda writer: writer.control(p.EnableApp(checklist_spec())))
    shared = Shared(conversation)
    shared.to_bob()
    return shared
