"""Voting's rules through real replicas (issue 12). Honest members write through their writers,
whose own replica refuses a bad write at once; a modified node signs whatever it likes with its
certified device (``forge``), and every replica must refuse it, whatever order the ops reach it
in, with the same reason. Every replica judges in strict mode: a rule that read the clock or
anything else of the node would fail here."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from apps.core.thread import payloads as p
from apps.core.thread.lww import materialize
from apps.core.thread.op import Op
from apps.core.thread.replica import Replica
from apps.core.thread.writer import ThreadWriter, WriteError
from apps.voting import crypto, rules
from apps.voting.policy import BALLOT, CLOSE, DEALING, PARTIAL, POLL, voting_spec
from apps.voting.results import poll_result, trustee_rows
from apps.voting.shape import ballot_context, poll_context, poll_shape
from tests.core.thread.conftest import Party, join, rid
from tests.support.replica_groups import ReplicaGroup, forge_at, opened, refused_everywhere

VOTERS = ("owner", "admin", "writer")


@dataclass
class Group(ReplicaGroup):
    """A conversation with voting on: Alice owns it, Bob is an admin, Carol and Dave write, Eve
    reads."""

    named: dict[str, ThreadWriter]
    parties: list[Party]

    table = BALLOT  # where a refusal is read unless a test says

    @property
    def writers(self) -> tuple[ThreadWriter, ...]:
        """The owner first (the thread the replicas judge is the owner's)."""
        return tuple(self.named.values())

    def __getattr__(self, name: str) -> ThreadWriter:
        try:
            return self.named[name]
        except KeyError:
            raise AttributeError(name) from None


def _group(names: dict[str, str]) -> Group:
    parties = {name: Party(name) for name in names}
    owner_name = next(iter(names))
    owner = opened(parties[owner_name], name="Flat share", app="messaging", spec=voting_spec())
    writers = {owner_name: owner}
    for name, role in list(names.items())[1:]:
        writers[name] = join(owner, parties[name], role)
    return Group(writers, list(parties.values())).settled()


@pytest.fixture
def group() -> Group:
    return _group(
        {"alice": "owner", "bob": "admin", "carol": "writer", "dave": "writer", "eve": "reader"}
    )


def poll_cols(voters, **given) -> dict:
    cols = {
        "question": "Where do we go?",
        "description": "",
        "options": json.dumps(["Lake", "Hills", "City", "Coast"]),
        "method": "ranked",
        "roles": json.dumps(list(VOTERS)),
        "electorate": json.dumps(sorted(w.member.hex() for w in voters)),
        "quorum": 0,
        "results_visible": 1,
        "secret": 0,
        "trustees": "[]",
        "threshold": 0,
        "ends_at": None,
    }
    cols.update(given)
    return cols


def open_poll(writer: ThreadWriter, voters, name: str = "trip", **given) -> str:
    pk = rid(writer, name)
    writer.write_data([p.RowChange(POLL, pk, p.UPSERT, poll_cols(voters, **given))])
    return pk


def ballot(writer: ThreadWriter, poll: str, choice: dict, pk: str | None = None) -> p.RowChange:
    cols = {"poll": poll, "choice": json.dumps(choice), "sealed": b""}
    return p.RowChange(BALLOT, pk or rules.ballot_id(writer.member, poll), p.UPSERT, cols)


def vote(writer: ThreadWriter, poll: str, choice: dict) -> Op:
    return writer.write_data([ballot(writer, poll, choice)])


def close(writer: ThreadWriter, poll: str) -> Op:
    pk = rules.close_id(writer.member, poll)
    return writer.write_data([p.RowChange(CLOSE, pk, p.UPSERT, {"scope": poll, "ballots": 0})])


def counted(replica: Replica, poll: str) -> dict[str, dict]:
    rows = materialize(replica.accepted_data()).get(BALLOT, {})
    return {pk: row for pk, row in rows.items() if row.get("poll") == poll}


def result_of(replica: Replica, poll: str, partials=None):
    data = materialize(replica.accepted_data())
    shape = poll_shape(poll, data[POLL][poll])
    rows = [
        SimpleNamespace(
            id=uuid.UUID(hex=pk), choice=row.get("choice", ""), sealed=row.get("sealed")
        )
        for pk, row in sorted(counted(replica, poll).items())
    ]
    given = {pk: row["partial"] for pk, row in data.get(PARTIAL, {}).items()}
    if partials is not None:
        given = {pk: v for pk, v in given.items() if pk in partials}
    closed = any(row.get("scope") == poll for row in data.get(CLOSE, {}).values())
    return poll_result(shape, rows, trustee_rows(shape, given, rules.partial_id), closed=closed)


def test_a_ranked_poll_counts_one_ballot_per_voter_the_same_everywhere(group):
    voters = [group.alice, group.bob, group.carol, group.dave]
    poll = open_poll(group.alice, voters)
    group.share()
    vote(group.alice, poll, {"ranking": [0, 1]})
    vote(group.bob, poll, {"ranking": [1, 0]})
    vote(group.carol, poll, {"ranking": [2, 1]})
    vote(group.dave, poll, {"ranking": [3]})
    group.share()
    vote(group.carol, poll, {"ranking": [1]})  # changes her vote: replaces the ballot
    vote(group.dave, poll, {"ranking": [0, 2]})
    group.share()
    close(group.alice, poll)
    group.share()
    results = [result_of(replica, poll) for replica in group.replicas()]
    first = results[0]
    assert first.ballots == 4
    assert first.final
    # Round 1: Lake 2 (alice, dave), Hills 2 (bob, carol): City and Coast out, then a tie at
    # half each: the backwards tie-break never separates them, so the later-listed goes.
    assert first.tally.winner == 0
    assert {(r.tally, r.counted_hash) for r in results} == {(first.tally, first.counted_hash)}


def test_a_reader_a_latecomer_and_another_key_are_refused_everywhere(group):
    voters = [group.alice, group.bob, group.carol, group.dave]
    poll = open_poll(group.alice, voters)
    group.share()
    with pytest.raises(WriteError, match="not among this poll's voters"):
        vote(group.eve, poll, {"ranking": [0]})
    reader = forge_at(group.eve, ballot(group.eve, poll, {"ranking": [0]}))
    refused_everywhere(group, reader, rules.NOT_VOTER)
    # A poll that lists the reader among its voters still does not let a reader's role vote.
    listed = open_poll(group.alice, [*voters, group.eve], name="listed")
    group.share()
    by_role = forge_at(group.eve, ballot(group.eve, listed, {"ranking": [0]}))
    refused_everywhere(group, by_role, "your role (reader) does not vote in this poll")
    # Frank joins after the poll opened: he is not in its electorate.
    frank_party = Party("frank")
    frank = join(group.alice, frank_party, "writer")
    group.named["frank"], group.parties = frank, [*group.parties, frank_party]
    group.share()
    late = forge_at(frank, ballot(frank, poll, {"ranking": [1]}))
    refused_everywhere(group, late, rules.NOT_VOTER)
    # A second ballot under a key of Carol's choosing.
    other = forge_at(
        group.carol, ballot(group.carol, poll, {"ranking": [2]}, pk=rid(group.carol, "x"))
    )
    refused_everywhere(
        group, other, "a voter has one ballot per poll, under the key that follows from both"
    )
    # Carol's ballot under Dave's key: the policy (own rows) or the rule refuses it.
    squat = forge_at(
        group.carol,
        ballot(group.carol, poll, {"ranking": [2]}, pk=rules.ballot_id(group.dave.member, poll)),
    )
    for replica in group.replicas():
        assert replica.decision(squat.hash).status == "refused"


@pytest.mark.parametrize(
    ("method", "choice", "reason"),
    [
        ("ranked", {"ranking": [0, 7]}, "Option 7 is not one of this poll's 4 options."),
        ("ranked", {"ranking": [1, 1]}, "Option 1 is ranked twice."),
        ("score", {"scores": [1, 2, 9, 0]}, "A score must be a whole number from 0 to 5."),
        ("single", {"choice": 1, "extra": 2}, None),
        ("approval", {"choices": "all"}, None),
    ],
)
def test_a_malformed_ballot_is_refused_everywhere(group, method, choice, reason):
    voters = [group.alice, group.bob, group.carol, group.dave]
    poll = open_poll(group.alice, voters, method=method)
    group.share()
    with pytest.raises(WriteError):
        vote(group.carol, poll, choice)
    op = forge_at(group.carol, ballot(group.carol, poll, choice))
    decisions = {(r.decision(op.hash).status, r.decision(op.hash).reason) for r in group.replicas()}
    assert len(decisions) == 1
    status, said = decisions.pop()
    assert status == "refused"
    if reason is not None:
        assert said == f"{BALLOT}: {reason}"


def test_only_the_creator_closes_and_late_ballots_never_count(group):
    voters = [group.alice, group.bob, group.carol, group.dave]
    poll = open_poll(group.alice, voters, method="single", options=json.dumps(["Yes", "No"]))
    group.share()
    with pytest.raises(WriteError, match="only the poll's creator closes it"):
        close(group.bob, poll)
    pk = rules.close_id(group.bob.member, poll)
    fake = forge_at(group.bob, p.RowChange(CLOSE, pk, p.UPSERT, {"scope": poll, "ballots": 0}))
    refused_everywhere(group, fake, "only the poll's creator closes it", CLOSE)
    vote(group.bob, poll, {"choice": 0})
    group.share()
    # Dave votes while cut off; Alice closes without having seen it.
    late = vote(group.dave, poll, {"choice": 1})
    close(group.alice, poll)
    group.share()
    for replica in group.replicas():
        assert replica.decision(late.hash).status == "refused"
        assert set(counted(replica, poll)) == {rules.ballot_id(group.bob.member, poll)}
    # Dave's own node turned its write over too.
    assert group.dave.replica.decision(late.hash).status == "refused"
    # The poll itself is never changed afterwards.
    change = p.RowChange(POLL, poll, p.UPSERT, {"question": "Something else?"})
    edited = forge_at(group.alice, change)
    refused_everywhere(
        group, edited, "a poll is never changed or deleted once opened: close it instead", POLL
    )


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ({"options": json.dumps(["Only"])}, "a poll has 2 to 50 options"),
        ({"options": json.dumps(["A", "a"])}, "a poll lists each option once"),
        ({"method": "plurality"}, "a poll's method is single choice, approval, ranked or score"),
        ({"electorate": json.dumps(["zz"])}, "a poll's voters are members of the thread"),
        ({"secret": 1, "method": "ranked"}, None),
        ({"quorum": 99}, "a poll's quorum is a number of ballots no larger than its voters"),
        ({"trustees": json.dumps(["ab" * 32]), "threshold": 1}, "only a secret poll has trustees"),
    ],
)
def test_a_malformed_poll_is_refused_everywhere(group, given, reason):
    pk = rid(group.carol, "bad")
    op = forge_at(group.carol, p.RowChange(POLL, pk, p.UPSERT, poll_cols([group.carol], **given)))
    decisions = {(r.decision(op.hash).status, r.decision(op.hash).reason) for r in group.replicas()}
    assert len(decisions) == 1
    status, said = decisions.pop()
    assert status == "refused"
    assert (
        said.startswith(f"{POLL}: a secret poll is single choice or approval")
        if reason is None
        else said == f"{POLL}: {reason}"
    )


# -- secret polls -------------------------------------------------------------------------------


def _deal(writer: ThreadWriter, poll: str, shape) -> Op:
    dealing = crypto.dealing_make(poll_context(poll), shape.threshold, shape.trustee_keys())
    pk = rules.dealing_id(writer.member, poll)
    return writer.write_data(
        [p.RowChange(DEALING, pk, p.UPSERT, {"poll": poll, "dealing": dealing})]
    )


def _sealed(writer: ThreadWriter, poll: str, key: bytes, choices: list[int]) -> bytes:
    return crypto.ballot_make(ballot_context(poll, writer.member), key, choices, False)


def secret_ballot(writer: ThreadWriter, poll: str, sealed: bytes) -> p.RowChange:
    pk = rules.ballot_id(writer.member, poll)
    return p.RowChange(BALLOT, pk, p.UPSERT, {"poll": poll, "choice": "", "sealed": sealed})


def _partial(writer: ThreadWriter, poll: str, shape, dealings, ballots) -> p.RowChange:
    index = shape.trustees.index(writer.member.hex()) + 1
    share = crypto.share_open(
        poll_context(poll),
        shape.threshold,
        shape.trustee_keys(),
        dealings,
        index,
        writer.member_key,
    )
    total = crypto.aggregate(ballots, len(shape.options))
    partial = crypto.partial_make(poll_context(poll), total, share, index)
    return p.RowChange(
        PARTIAL, rules.partial_id(writer.member, poll), p.UPSERT, {"poll": poll, "partial": partial}
    )


def test_a_secret_approval_poll_with_three_trustees_counts_right_and_reveals_no_ballot():
    names = {"t1": "owner", "t2": "admin", "t3": "writer"}
    names.update({f"v{i}": "writer" for i in range(1, 6)})
    names["r"] = "reader"
    group = _group(names)
    w = group.named
    voters = [w[n] for n in ("t1", "t2", "t3", "v1", "v2", "v3", "v4")]  # 7 voters
    trustees = [w["t1"], w["t2"], w["t3"]]
    cols = {
        "method": "approval",
        "options": json.dumps(["Mon", "Tue", "Wed", "Thu", "Fri"]),
        "secret": 1,
        "results_visible": 0,
        "trustees": json.dumps([t.member.hex() for t in trustees]),
        "threshold": 2,
    }
    poll = open_poll(w["t1"], voters, **cols)
    group.share()
    shape = poll_shape(poll, poll_cols(voters, **cols))
    # Before every trustee has dealt, nobody can vote.
    for trustee in trustees[:2]:
        _deal(trustee, poll, shape)
    group.share()
    premature = forge_at(w["v1"], secret_ballot(w["v1"], poll, b"\x01"))
    refused_everywhere(group, premature, "the poll's trustees have not all set up its key yet")
    _deal(trustees[2], poll, shape)
    group.share()
    dealings = [rules_row for rules_row in _dealings(w["t1"], poll, shape)]
    key = crypto.poll_key(dealings)
    picks = {
        "t1": [1, 0, 0, 1, 0],
        "t2": [1, 1, 0, 0, 0],
        "t3": [0, 0, 0, 0, 0],
        "v1": [1, 1, 1, 1, 1],
        "v2": [0, 1, 0, 0, 1],
        "v3": [1, 0, 0, 0, 0],
        "v4": [0, 0, 1, 0, 0],
    }
    sealed = {}
    for name, choices in picks.items():
        sealed[name] = _sealed(w[name], poll, key, choices)
        w[name].write_data([secret_ballot(w[name], poll, sealed[name])])
    group.share()
    # A tampered proof, another voter's ballot copied under one's own key, a reader: refused.
    tampered = bytearray(sealed["v2"])
    tampered[-5] ^= 1
    bad = forge_at(w["v2"], secret_ballot(w["v2"], poll, bytes(tampered)))
    copied = forge_at(w["v3"], secret_ballot(w["v3"], poll, sealed["v1"]))
    reader = forge_at(
        w["r"], secret_ballot(w["r"], poll, _sealed(w["r"], poll, key, [1, 0, 0, 0, 0]))
    )
    group.share()
    for op in (bad, copied):
        for replica in group.replicas(runs=1):
            decision = replica.decision(op.hash)
            assert decision.status == "refused"
            assert decision.reason.startswith(f"{BALLOT}: the encrypted ballot is not valid")
    refused_everywhere(group, reader, rules.NOT_VOTER)
    # A trustee cannot decrypt before the close.
    stored = [row["sealed"] for row in counted(w["t1"].replica, poll).values()]
    early = forge_at(w["t2"], _partial(w["t2"], poll, shape, dealings, stored))
    refused_everywhere(group, early, "the result is decrypted only after the poll closes", PARTIAL)
    close(w["t1"], poll)
    group.share()
    # Two of three trustees decrypt; the third is offline.
    w["t1"].write_data([_partial(w["t1"], poll, shape, dealings, stored)])
    group.share()
    one = result_of(w["t1"].replica, poll)
    assert one.tally is None
    assert one.missing_trustees == 1
    w["t3"].write_data([_partial(w["t3"], poll, shape, dealings, stored)])
    group.share()
    expected = [sum(c[i] for c in picks.values()) for i in range(5)]
    for replica in group.replicas(runs=2):
        found = result_of(replica, poll)
        assert list(found.tally.totals) == expected
        assert found.ballots == 7
    # A partial decryption made with a wrong share is refused.
    wrong = crypto.partial_make(
        poll_context(poll), crypto.aggregate(stored, 5), bytes(32 - 1) + b"\x05", 2
    )
    fake = forge_at(
        w["t2"],
        p.RowChange(
            PARTIAL,
            rules.partial_id(w["t2"].member, poll),
            p.UPSERT,
            {"poll": poll, "partial": wrong},
        ),
    )
    for replica in group.replicas(runs=1):
        assert replica.decision(fake.hash).reason.startswith(
            f"{PARTIAL}: the partial decryption is not valid"
        )
    # No single ballot can be read from what is stored: one trustee's share does not decrypt a
    # ballot (two shares would; that is the threshold the poll promises).
    share = crypto.share_open(
        poll_context(poll), 2, shape.trustee_keys(), dealings, 1, w["t1"].member_key
    )
    alone = crypto.partial_make(poll_context(poll), crypto.aggregate([sealed["v4"]], 5), share, 1)
    with pytest.raises(crypto.CryptoError):
        crypto.result(crypto.aggregate([sealed["v4"]], 5), {1: alone}, 2, 1)


def _dealings(writer: ThreadWriter, poll: str, shape) -> list[bytes]:
    rows = materialize(writer.replica.accepted_data())[DEALING]
    return [rows[rules.dealing_id(bytes.fromhex(t), poll)]["dealing"] for t in shape.trustees]
