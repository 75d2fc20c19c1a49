"""The checklist's rules through real replicas (issue 10 item 7). Honest members write through
their writers (whose own replica refuses a bad write at once); a modified node signs whatever
it likes with its certified device (``forge``), and every replica must refuse it, whatever
order the ops reach it in, with the same reason. Every replica here judges in strict mode: a
rule that read the clock or anything else of the node would fail these tests."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from apps.checklist import rules
from apps.checklist.policy import APPROVAL, CLOSE, ITEM, checklist_spec
from apps.core.thread import payloads as p
from apps.core.thread.lww import materialize
from apps.core.thread.op import Op
from apps.core.thread.ordered_data import ordered_validators
from apps.core.thread.writer import ThreadWriter, WriteError
from tests.core.thread.conftest import Party, join, rid, sync
from tests.support.replica_groups import (
    ReplicaGroup,
    accepted_everywhere,
    forge_at,
    opened,
    refused_everywhere,
)


@dataclass
class Group(ReplicaGroup):
    """A group conversation with the checklist on: Alice owns it, Bob is an admin, Carol and
    Dave are members (writers)."""

    alice: ThreadWriter
    bob: ThreadWriter
    carol: ThreadWriter
    dave: ThreadWriter
    parties: tuple[Party, ...]

    runs = 4  # fresh replicas that judge each write
    table = ITEM  # where a refusal is read unless a test says

    @property
    def writers(self) -> tuple[ThreadWriter, ...]:
        return (self.alice, self.bob, self.carol, self.dave)


@pytest.fixture
def group() -> Group:
    alice, bob, carol, dave = (Party(name) for name in ("alice", "bob", "carol", "dave"))
    owner = opened(alice, name="Flat share", app="messaging", spec=checklist_spec())
    members = [join(owner, bob, "admin"), join(owner, carol), join(owner, dave)]
    return Group(owner, *members, parties=(alice, bob, carol, dave)).settled()


def change(pk: str, **cols) -> p.RowChange:
    return p.RowChange(ITEM, pk, p.UPSERT, cols)


def add(writer: ThreadWriter, text: str, todo: str = "To do") -> str:
    pk = rid(writer, text)
    fields = {"text": text, "list": todo, "claimed_by": "", "done": 0, "done_by": ""}
    writer.write_data([change(pk, **fields)])
    return pk


def write(writer: ThreadWriter, pk: str, **cols) -> Op:
    return writer.write_data([change(pk, **cols)])


def claim(writer: ThreadWriter, pk: str) -> Op:
    return write(writer, pk, claimed_by=writer.member.hex())


def item(writer: ThreadWriter, pk: str) -> dict:
    return materialize(writer.replica.accepted_data())[ITEM][pk]


def approval(writer: ThreadWriter, pk: str, row: dict | None = None) -> p.RowChange:
    values = rules.approval_values(writer.member_key, pk, row or item(writer, pk))
    return p.RowChange(APPROVAL, values.pop("id"), p.UPSERT, values)


def test_the_app_registers_its_rules_and_its_spec():
    assert ordered_validators()[ITEM] is rules.item_rule
    assert ordered_validators()[APPROVAL] is rules.approval_rule
    assert ordered_validators()[CLOSE] is rules.close_rule
    spec = checklist_spec()
    assert spec.ordered == {ITEM, APPROVAL, CLOSE}
    assert spec.closes[CLOSE].target == ITEM
    assert spec.closes[CLOSE].scope == "list"
    assert rules.ADMIN_RANK == 100


def test_a_claim_for_someone_else_is_refused_everywhere(group: Group):
    pk = add(group.alice, "Buy milk")
    group.share()
    op = forge_at(group.carol, change(pk, claimed_by=group.dave.member.hex()))
    refused_everywhere(group, op, "a member claims an item only for themself")
    with pytest.raises(WriteError, match="claims an item only for themself"):
        write(group.carol, pk, claimed_by=group.dave.member.hex())
    # Not even an admin hands items out.
    op = forge_at(group.bob, change(pk, claimed_by=group.dave.member.hex()))
    refused_everywhere(group, op, "a member claims an item only for themself")


def test_claiming_an_item_someone_holds_is_refused_everywhere(group: Group):
    pk = add(group.alice, "Take out the bins")
    group.share()
    held = claim(group.dave, pk)
    group.share()
    with pytest.raises(WriteError, match="already claimed by someone else"):
        claim(group.carol, pk)
    op = forge_at(group.carol, change(pk, claimed_by=group.carol.member.hex()))
    refused_everywhere(group, op, rules.ALREADY_CLAIMED)
    for replica in accepted_everywhere(group, held):
        rows = materialize(replica.accepted_data())[ITEM]
        assert rows[pk]["claimed_by"] == group.dave.member.hex()


def test_two_concurrent_claims_have_the_same_winner_everywhere(group: Group):
    pk = add(group.alice, "Water the plants")
    group.share()
    # Carol and Dave claim at once, each on a node that has not heard of the other's claim:
    # both nodes accept their own.
    by_carol, by_dave = claim(group.carol, pk), claim(group.dave, pk)
    first, second = sorted([by_carol, by_dave], key=lambda op: (op.hlc, op.device))
    winner = group.carol if first is by_carol else group.dave
    loser = group.dave if winner is group.carol else group.carol
    assert item(loser, pk)["claimed_by"] == loser.member.hex()
    for replica in group.replicas(runs=6):
        assert replica.decision(first.hash).status == "accepted"
        decision = replica.decision(second.hash)
        assert (decision.status, decision.reason) == ("refused", f"{ITEM}: {rules.ALREADY_CLAIMED}")
        assert materialize(replica.accepted_data())[ITEM][pk]["claimed_by"] == winner.member.hex()
    # The loser's own node turns its claim over when the winner's arrives.
    sync(winner.replica, loser.replica)
    decision = loser.replica.decision(second.hash)
    assert (decision.status, decision.reason) == ("refused", f"{ITEM}: {rules.ALREADY_CLAIMED}")
    assert item(loser, pk)["claimed_by"] == winner.member.hex()


def test_only_the_claimer_or_an_admin_marks_done_or_unclaims(group: Group):
    pk = add(group.alice, "Clean the oven")
    group.share()
    claim(group.dave, pk)
    group.share()
    done = {"done": 1, "done_by": group.carol.member.hex()}
    with pytest.raises(WriteError, match="only who claimed an item or an admin may mark it"):
        write(group.carol, pk, **done)
    op = forge_at(group.carol, change(pk, **done))
    refused_everywhere(
        group, op, "only who claimed an item or an admin may mark it done or not done"
    )
    op = forge_at(group.carol, change(pk, claimed_by=""))
    refused_everywhere(group, op, "only who claimed an item or an admin may unclaim it")
    # Marking it done in someone else's name: refused too.
    op = forge_at(group.dave, change(pk, done=1, done_by=group.carol.member.hex()))
    refused_everywhere(group, op, "an item marked done names who marked it (done_by)")
    # The claimer marks it done; an admin marks it not done again and un-claims it.
    by_dave = write(group.dave, pk, done=1, done_by=group.dave.member.hex())
    group.share()
    undone = write(group.bob, pk, done=0, done_by="")
    unclaimed = write(group.bob, pk, claimed_by="")
    for replica in accepted_everywhere(group, by_dave, undone, unclaimed):
        row = materialize(replica.accepted_data())[ITEM][pk]
        assert (row["claimed_by"], row["done"], row["done_by"]) == ("", 0, "")


def test_only_who_added_an_item_or_an_admin_edits_or_deletes_it(group: Group):
    pk = add(group.dave, "Fix the tap")
    group.share()
    with pytest.raises(WriteError, match="only who added an item or an admin"):
        write(group.carol, pk, text="Fix the tap (Carol did it)")
    op = forge_at(group.carol, change(pk, text="Fix the tap (Carol did it)"))
    refused_everywhere(group, op, "only who added an item or an admin may change its text or list")
    op = forge_at(group.carol, change(pk, list="Someday"))
    refused_everywhere(group, op, "only who added an item or an admin may change its text or list")
    op = forge_at(group.carol, p.RowChange(ITEM, pk, p.DELETE, {}))
    refused_everywhere(group, op, "only who added an item or an admin may delete it")
    # An item in someone else's name (its id names Dave, the op is Carol's): refused.
    op = forge_at(group.carol, change(rid(group.dave, "not Dave's"), text="not Dave's"))
    refused_everywhere(group, op, "an item is added by the member its id names")
    # A new item that starts claimed or done: refused.
    op = forge_at(
        group.carol, change(rid(group.carol, "x"), text="x", claimed_by=group.carol.member.hex())
    )
    refused_everywhere(group, op, "a new item starts unclaimed")
    # Its author and an admin may.
    edited = write(group.dave, pk, text="Fix the kitchen tap")
    group.share()
    by_admin = write(group.bob, pk, text="Fix the kitchen tap (plumber on Tuesday)")
    group.share()
    removed = group.dave.write_data([p.RowChange(ITEM, pk, p.DELETE, {})])
    for replica in accepted_everywhere(group, edited, by_admin, removed):
        assert pk not in materialize(replica.accepted_data()).get(ITEM, {})


def test_approvals_are_admins_own_signatures_over_the_item_as_it_stands(group: Group):
    pk = add(group.dave, "Pay the electricity bill")
    group.share()
    before = item(group.alice, pk)
    # A member's approval, validly signed: only admins approve.
    op = forge_at(group.carol, approval(group.carol, pk))
    refused_everywhere(group, op, "only an admin may approve an item", APPROVAL)
    with pytest.raises(WriteError, match="only an admin may approve"):
        group.carol.write_data([approval(group.carol, pk)])
    # An admin signing for another admin.
    signed_by_alice = approval(group.alice, pk)
    op = forge_at(group.bob, signed_by_alice)
    refused_everywhere(group, op, "an admin approves only for themself", APPROVAL)
    # Bob approves; a second approval of his for the same content (another row) is refused.
    bobs = group.bob.write_data([approval(group.bob, pk)])
    group.share()
    again = approval(group.bob, pk)
    again = p.RowChange(APPROVAL, rid(group.bob, "again"), p.UPSERT, again.cols)
    op = forge_at(group.bob, again)
    refused_everywhere(group, op, "this admin already approved the item as it stands", APPROVAL)
    # A signature that does not verify.
    bad = dict(approval(group.alice, pk).cols, sig=bytes(64))
    op = forge_at(group.alice, p.RowChange(APPROVAL, rid(group.alice, "bad"), p.UPSERT, bad))
    refused_everywhere(group, op, "the approval's signature does not verify", APPROVAL)
    # The item changes: an approval of its old content is refused, and Bob's stops counting.
    claim(group.dave, pk)
    group.share()
    op = forge_at(group.alice, approval(group.alice, pk, before))
    refused_everywhere(group, op, "the approval is for another version of the item", APPROVAL)
    alices = group.alice.write_data([approval(group.alice, pk)])
    group.share()
    for replica in accepted_everywhere(group, bobs, alices):
        rows = materialize(replica.accepted_data())
        signed = rules.signers_of(pk, rows[ITEM][pk], rows[APPROVAL].values())
        assert signed == {group.alice.member}  # Bob approved the unclaimed item
    group.bob.write_data([approval(group.bob, pk)])
    group.share()
    rows = materialize(group.carol.replica.accepted_data())
    signed = rules.signers_of(pk, rows[ITEM][pk], rows[APPROVAL].values())
    assert len(signed) == rules.APPROVALS_NEEDED


def test_a_close_refuses_what_its_author_had_not_seen(group: Group):
    seen = add(group.dave, "Bread", "Shopping")
    group.share()
    unseen = add(group.carol, "Cheese", "Shopping")  # concurrent with the close
    close = group.alice.write_data(
        [p.RowChange(CLOSE, rid(group.alice, "close shopping"), p.UPSERT, {"scope": "Shopping"})]
    )
    elsewhere = add(group.carol, "Sweep", "Chores")
    for replica in accepted_everywhere(group, close):
        rows = materialize(replica.accepted_data())[ITEM]
        assert seen in rows
        assert elsewhere in rows
        assert unseen not in rows
    group.share()
    with pytest.raises(WriteError, match="closed"):
        claim(group.dave, seen)
    # Members do not close lists; a close is written once.
    with pytest.raises(WriteError, match="may not insert"):
        group.carol.write_data(
            [p.RowChange(CLOSE, rid(group.carol, "close chores"), p.UPSERT, {"scope": "Chores"})]
        )
    op = forge_at(
        group.bob,
        p.RowChange(CLOSE, rid(group.alice, "close shopping"), p.UPSERT, {"scope": "Chores"}),
    )
    refused_everywhere(group, op, "a list is closed once, for good", CLOSE)
