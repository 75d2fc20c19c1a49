"""A deal's rules through real replicas (ADR 22). Alice sells, Bob buys, Erin is the escrow
agent and Sam the shipper; Carol is a second "buyer" the policy lets Alice invite, whom the
deal never knew. Honest members write through their writers, whose own replica refuses a bad
step at once; a modified node signs whatever it likes (``forge``), and fresh replicas fed every
op in shuffled orders, judging strictly, must all refuse it with the same reason. Time is the
ops' own stamps: the writers' clocks run on a wall the test moves (in the past: a replica holds
ops stamped ahead of its clock)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from apps.core.thread import countersign, rowid
from apps.core.thread import payloads as p
from apps.core.thread.hlc import HybridClock, Stamp
from apps.core.thread.lww import materialize
from apps.core.thread.policy import OWNER, WRITER, policy_template
from apps.core.thread.replica import Replica
from apps.core.thread.rowid import row_id_new
from apps.core.thread.writer import ThreadWriter, WriteError
from apps.market import deal_rules
from apps.market.deal import DAY_MS, DealState
from apps.market.deal_rules import DEAL_ID, DOMAIN, release_digest, release_id
from apps.market.policy import (
    DEAL,
    DEAL_APP,
    DEAL_RATING,
    ESCROW,
    RELEASE,
    SHIPPER,
    STEP,
    deal_spec,
)
from tests.core.thread.conftest import Party, forge, join, now_ms
from tests.support.replica_groups import (
    ReplicaGroup,
    accepted_everywhere,
    forged,
    opened,
    refused_alike,
    refused_everywhere,
    write,
)

SIDE = {OWNER: "seller", WRITER: "buyer", ESCROW: "escrow", SHIPPER: "shipper"}
START_MS = now_ms() - 40 * DAY_MS


@dataclass
class Deal(ReplicaGroup):
    """Alice sells, Bob buys, Carol is a second writer; Erin (escrow) and Sam (shipper) too."""

    alice: ThreadWriter
    bob: ThreadWriter
    carol: ThreadWriter
    parties: list[Party]
    erin: ThreadWriter
    sam: ThreadWriter
    wall: list[int]
    table = STEP  # where a refusal is read unless a test says

    @property
    def writers(self) -> list[ThreadWriter]:
        return [self.alice, self.bob, self.erin, self.sam, self.carol]

    def later(self, days: float) -> None:
        self.wall[0] += int(days * DAY_MS)


def terms(seller: bytes, **given: Any) -> p.RowChange:
    cols = {
        "shop": "ab" * 32, "listing": uuid.uuid4().hex, "accept": uuid.uuid4().hex,
        "title": "A red bicycle", "price": 12_000, "currency": "EUR", "quantity": 1,
        "silent_days": 7,
    }  # fmt: skip
    cols.update(given)
    return p.RowChange(DEAL, deal_rules.deal_row_id(seller), p.UPSERT, cols)


def step(
    writer: ThreadWriter, name: str, *, by: str | None = None, pk: str | None = None, **fields: Any
) -> p.RowChange:
    """A step by ``writer`` in the place after the steps its replica holds."""
    fields["by"] = by or SIDE[writer.replica.control.state.role_of(writer.member)]
    fields.setdefault("n", len(rows(writer.replica, STEP)))
    cols = {"step": name, "fields": json.dumps(fields)}
    return p.RowChange(STEP, pk or row_id_new(writer.member).hex, p.UPSERT, cols)


OPENING = {"price": 12_000, "currency": "EUR", "quantity": 1, "silent_days": 7}


@pytest.fixture
def dealt() -> Deal:
    """The deal opened by Alice (terms and the accepted step in one op); everyone in it."""
    wall = [START_MS]
    names = ("alice", "bob", "erin", "sam", "carol")
    parties = [Party(name) for name in names]
    clock = HybridClock(wall=lambda: wall[0])
    alice = opened(parties[0], name="Deal", app=DEAL_APP, spec=deal_spec(), clock=clock)
    roles = (WRITER, ESCROW, SHIPPER, WRITER)
    others = [join(alice, party, role) for party, role in zip(parties[1:], roles, strict=True)]
    bob, erin, sam, carol = others
    made = Deal(alice, bob, carol, parties, erin=erin, sam=sam, wall=wall)
    for writer in made.writers:
        writer.clock = HybridClock(wall=lambda: wall[0])
        writer.replica.ordered.strict = True
    alice.write_data([terms(alice.member), step(alice, "accepted", n=0, **OPENING)])
    made.share()
    return made


def state_everywhere(deal: Deal) -> str:
    """The deal's state every fresh replica folds from its accepted steps."""
    states = set()
    for replica in deal.replicas(2):
        stamps = {
            c.pk: op.hlc.millis
            for op, changes in replica.accepted_data()
            for c in changes
            if c.table == STEP
        }
        steps = rows(replica, STEP)
        folded = deal_rules.fold(
            (pk, r["step"], r["fields"], stamps[pk]) for pk, r in steps.items()
        )
        states.add(folded.state.state)
    assert len(states) == 1, states
    return states.pop()


def rows(replica: Replica, table: str) -> dict[str, dict[str, Any]]:
    return materialize(replica.accepted_data()).get(table, {})


def paid_and_shipped(deal: Deal) -> None:
    write(deal, deal.bob, step(deal.bob, "paid", reference="SEPA 4711"))
    deal.later(1)
    write(deal, deal.alice, step(deal.alice, "shipped", carrier="DHL", tracking="0034"))


def test_forged_steps_by_the_wrong_role_are_refused_by_every_replica(dealt):
    # A shipper marking the deal paid; an escrow agent resolving outside a dispute.
    by_shipper = forged(dealt, dealt.sam, step(dealt.sam, "paid"))
    no_dispute = forged(dealt, dealt.erin, step(dealt.erin, "resolved", outcome="refund"))
    write(dealt, dealt.bob, step(dealt.bob, "paid"))
    # A buyer marking it shipped, and lying about the side it writes as.
    by_buyer = forged(dealt, dealt.bob, step(dealt.bob, "shipped", carrier="X", tracking="1"))
    posing = forged(
        dealt, dealt.bob, step(dealt.bob, "shipped", by="seller", carrier="X", tracking="1")
    )
    write(dealt, dealt.sam, step(dealt.sam, "shipped", carrier="DHL", tracking="0034"))
    # A seller marking it received; a second "buyer" the deal never knew.
    by_seller = forged(dealt, dealt.alice, step(dealt.alice, "received"))
    stranger = forged(dealt, dealt.carol, step(dealt.carol, "received"))
    refused_everywhere(dealt, by_shipper, "Only the buyer marks the deal paid.")
    refused_everywhere(
        dealt,
        no_dispute,
        "The escrow agent cannot resolve the deal now: it is accepted but not yet paid.",
    )
    refused_everywhere(dealt, by_buyer, "Only the seller or the shipper marks the deal shipped.")
    refused_everywhere(dealt, posing, "a step says which side wrote it: this one is by the buyer")
    refused_everywhere(dealt, by_seller, "Only the buyer marks the deal received.")
    refused_everywhere(dealt, stranger, "another member already acts as the buyer in this deal")
    assert state_everywhere(dealt) == "shipped"
    # An honest node refuses the same at once.
    with pytest.raises(WriteError, match="Only the buyer marks the deal received"):
        dealt.alice.write_data([step(dealt.alice, "received")])


def test_the_terms_are_the_sellers_once_and_the_opening_step_states_them(dealt):
    again = forged(dealt, dealt.alice, terms(dealt.alice.member, price=1))
    by_buyer = forged(dealt, dealt.bob, terms(dealt.bob.member))
    opened_twice = forged(dealt, dealt.alice, step(dealt.alice, "accepted", **OPENING))
    # The policy already keeps the seller from changing its row and the buyer from writing one.
    assert refused_alike(dealt, again) == f"role owner may not update own rows of {DEAL}"
    assert "role writer may not" in refused_alike(dealt, by_buyer)
    refused_everywhere(
        dealt, opened_twice, "The seller cannot open the deal now: it is accepted but not yet paid."
    )


def test_a_fresh_deal_refuses_terms_that_differ_from_its_opening_step():
    wall = [START_MS]
    seller = Party("alice")
    alice = ThreadWriter.create(
        master_secret=seller.master, device_key=seller.device, name="Deal", app=DEAL_APP,
        policy=policy_template(DEAL_APP), clock=HybridClock(wall=lambda: wall[0]),
    )  # fmt: skip
    alice.control(p.EnableApp(deal_spec()))
    with pytest.raises(WriteError, match="the opening step states the deal's terms"):
        alice.write_data([terms(alice.member), step(alice, "accepted", **OPENING | {"price": 1})])
    with pytest.raises(WriteError, match="terms come before its steps"):
        alice.write_data([step(alice, "accepted", **OPENING)])
    with pytest.raises(WriteError, match="The deal's price must be from 1"):
        alice.write_data([terms(alice.member, price=0)])


def test_the_seller_completes_only_after_the_buyer_was_silent_by_stamps(dealt):
    paid_and_shipped(dealt)
    shipped_at = dealt.wall[0]
    # Stamped six days after shipping, whenever it is sent.
    early = forge(
        dealt.alice,
        kind="data",
        payload=p.data_doc([step(dealt.alice, "completed")]),
        hlc=Stamp(shipped_at + 6 * DAY_MS, 0),
    )
    dealt.alice.replica.ingest(early.raw)
    dealt.share()
    refused_everywhere(
        dealt,
        early,
        "The seller can complete the deal only once the buyer has been silent for 7 days "
        "after shipping; until then the buyer completes it.",
    )
    dealt.later(7)
    done = write(dealt, dealt.alice, step(dealt.alice, "completed"))
    accepted_everywhere(dealt, done)
    assert state_everywhere(dealt) == "completed"


def test_the_buyer_completes_at_once(dealt):
    paid_and_shipped(dealt)
    done = write(dealt, dealt.bob, step(dealt.bob, "completed"))
    accepted_everywhere(dealt, done)


def release(deal: Deal, writer: ThreadWriter, party: Party, state: DealState, side: str):
    row = rows(writer.replica, DEAL)[deal_rules.deal_row_id(deal.alice.member)]
    digest = release_digest(row, state)
    key = party.member_key(writer.thread)
    cols = {
        "target": DEAL_ID,
        "digest": digest,
        "signer": writer.member,
        "sig": countersign.signature_make(key, DOMAIN, digest),
    }
    return p.RowChange(RELEASE, release_id(writer.member, side, digest), p.UPSERT, cols)


def released_everywhere(deal: Deal, state: DealState) -> set[str]:
    found = []
    for replica in deal.replicas(2):
        row = rows(replica, DEAL)[deal_rules.deal_row_id(deal.alice.member)]
        releases = [{"pk": pk, **r} for pk, r in rows(replica, RELEASE).items()]
        found.append(deal_rules.release_roles(row, state, releases))
    assert all(f == found[0] for f in found)
    return found[0]


def test_the_release_needs_two_of_buyer_seller_and_escrow(dealt):
    alice_p, bob_p, erin_p, sam_p, _ = dealt.parties
    too_early = forged(dealt, dealt.bob, release(dealt, dealt.bob, bob_p, DealState(), "buyer"))
    write(dealt, dealt.bob, step(dealt.bob, "paid"))
    paid = DealState(state="paid")
    stale = release(dealt, dealt.alice, alice_p, paid, "seller")  # signed now, sent later
    write(dealt, dealt.bob, step(dealt.bob, "disputed", reason="It never came."))
    resolved = write(dealt, dealt.erin, step(dealt.erin, "resolved", outcome="release"))
    accepted_everywhere(dealt, resolved)
    now = DealState(state="resolved", outcome="release")
    late = forged(dealt, dealt.alice, stale)
    shipper = forged(dealt, dealt.sam, release(dealt, dealt.sam, sam_p, now, "shipper"))
    posing = forged(dealt, dealt.bob, release(dealt, dealt.bob, bob_p, now, "seller"))
    write(dealt, dealt.alice, release(dealt, dealt.alice, alice_p, now, "seller"))
    assert released_everywhere(dealt, now) == {"seller"}
    twice = forged(dealt, dealt.alice, release(dealt, dealt.alice, alice_p, now, "seller"))
    write(dealt, dealt.erin, release(dealt, dealt.erin, erin_p, now, "escrow"))
    assert released_everywhere(dealt, now) == {"seller", "escrow"}
    refused_everywhere(
        dealt,
        too_early,
        "nothing is held to release before the buyer pays, or after a cancellation",
        RELEASE,
    )
    refused_everywhere(
        dealt,
        late,
        "the release is over the deal as it stood earlier: sign it as it stands",
        RELEASE,
    )
    assert refused_alike(dealt, shipper) == "role shipper may not insert own rows of " + RELEASE
    refused_everywhere(
        dealt, posing, "a release's id names its signer, their side and what they sign", RELEASE
    )
    # Signing the same again is an update of the same row: the policy lets nobody.
    assert refused_alike(dealt, twice) == "role owner may not update own rows of " + RELEASE


def rating(writer: ThreadWriter, overall: int = 5, pk: str | None = None) -> p.RowChange:
    cols = {
        "overall": overall, "as_described": None, "communication": 4, "shipping": None,
        "comment": "",
    }  # fmt: skip
    return p.RowChange(DEAL_RATING, pk or deal_rules.rating_id(writer.member), p.UPSERT, cols)


def test_each_side_rates_once_and_only_after_the_end(dealt):
    paid_and_shipped(dealt)
    before = forged(dealt, dealt.bob, rating(dealt.bob))
    write(dealt, dealt.bob, step(dealt.bob, "completed"))
    bob_rates = write(dealt, dealt.bob, rating(dealt.bob, 4))
    no_stars = forged(dealt, dealt.alice, rating(dealt.alice, 0))
    alice_rates = write(dealt, dealt.alice, rating(dealt.alice, 5))
    again = forged(dealt, dealt.bob, rating(dealt.bob, 1))
    other_id = forged(dealt, dealt.bob, rating(dealt.bob, 1, pk=row_id_new(dealt.bob.member).hex))
    escrow = forged(dealt, dealt.erin, rating(dealt.erin))
    stranger = forged(dealt, dealt.carol, rating(dealt.carol))
    stars = forged(dealt, dealt.alice, rating(dealt.alice, 6, pk=None))
    accepted_everywhere(dealt, bob_rates, alice_rates)
    refused_everywhere(
        dealt, before, "a deal is rated once it is completed or resolved, not before", DEAL_RATING
    )
    # A second rating has the same id: an update, which the policy lets nobody write.
    assert refused_alike(dealt, again) == "role writer may not update own rows of " + DEAL_RATING
    assert refused_alike(dealt, stars) == "role owner may not update own rows of " + DEAL_RATING
    refused_everywhere(
        dealt,
        no_stars,
        "The overall rating must be a whole number of stars from 1 to 5.",
        DEAL_RATING,
    )
    refused_everywhere(dealt, other_id, "a deal rating's id names its author", DEAL_RATING)
    assert refused_alike(dealt, escrow) == "role escrow may not insert own rows of " + DEAL_RATING
    refused_everywhere(
        dealt, stranger, "only the buyer and the seller of this deal rate it", DEAL_RATING
    )
    replica = dealt.replicas(1)[0]
    assert sorted(r["overall"] for r in rows(replica, DEAL_RATING).values()) == [4, 5]


def test_a_dispute_and_a_shipping_written_at_once_end_alike_everywhere(dealt):
    write(dealt, dealt.bob, step(dealt.bob, "paid"))
    dealt.later(1)
    dispute = dealt.bob.write_data([step(dealt.bob, "disputed", reason="Too slow.")])
    ship = dealt.alice.write_data([step(dealt.alice, "shipped", carrier="DHL", tracking="1")])
    dealt.share()
    decided = {
        tuple((d.status, d.reason or "") for d in map(replica.decision, (dispute.hash, ship.hash)))
        for replica in dealt.replicas()
    }
    assert len(decided) == 1
    dispute_said, ship_said = decided.pop()
    # Whichever the thread orders first stands; the other is refused with why.
    assert {dispute_said[0], ship_said[0]} == {"accepted", "refused"}
    assert (dispute_said, ship_said) in {
        (("accepted", ""), ("refused", f"{STEP}: The seller cannot mark the deal shipped now: "
                                         "it is disputed, and the escrow agent resolves it.")),
        (("refused", f"{STEP}: {deal_rules.CAME_FIRST}"), ("accepted", "")),
    }  # fmt: skip
    assert state_everywhere(dealt) in {"disputed", "shipped"}


def test_steps_in_one_millisecond_fold_in_their_places_whatever_their_ids(dealt):
    """A node whose clock is behind stamps its steps with the millisecond of what it saw last
    and a counter: the deal follows the places the steps state, not their ids."""
    write(dealt, dealt.bob, step(dealt.bob, "paid"))
    write(dealt, dealt.alice, step(dealt.alice, "shipped", carrier="DHL", tracking="1"))
    lowest = rowid._assemble(bytes(10), rowid.member_tag(dealt.bob.member)).hex
    received = write(dealt, dealt.bob, step(dealt.bob, "received", pk=lowest))
    accepted_everywhere(dealt, received)
    assert state_everywhere(dealt) == "received"
    again = forged(dealt, dealt.bob, step(dealt.bob, "completed", n=2))
    refused_everywhere(dealt, again, deal_rules.CAME_FIRST)
    unplaced = forged(dealt, dealt.bob, step(dealt.bob, "completed", n="last"))
    refused_everywhere(dealt, unplaced, "a step says how many steps came before it (n)")
