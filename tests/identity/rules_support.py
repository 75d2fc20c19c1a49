"""Rows of the identity app as a member's node writes them, and the members of one thread with
identity and voting on, for the rule tests (``test_rules.py``). Builders return ``RowChange``s:
a test writes them honestly (``write``) or signs them as a modified node would (``forged``),
possibly after changing a column."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from apps.core.thread import payloads as p
from apps.core.thread.op import Op
from apps.core.thread.writer import ThreadWriter
from apps.identity import formats
from apps.identity.policy import (
    ACCEPT,
    ATTESTATION,
    AUTHORITY,
    CHALLENGE,
    CLAIM,
    JUDGEMENT,
    KIND,
    OUTCOME,
    RETRACTION,
    SETTING,
    SHARED,
    identity_spec,
)
from apps.identity.rules import POLL_OPTIONS
from apps.voting import rules as voting_rules
from apps.voting.policy import BALLOT, CLOSE, POLL, voting_spec
from tests.core.thread.conftest import Party, join, rid
from tests.support.replica_groups import ReplicaGroup, opened


@dataclass
class Group(ReplicaGroup):
    """A club with identity and voting on: Alice owns it, Bob is an admin, Carol, Dave, Erin and
    Finn write, Gail reads."""

    named: dict[str, ThreadWriter]
    parties: list[Party]

    @property
    def writers(self) -> tuple[ThreadWriter, ...]:
        return tuple(self.named.values())

    def __getattr__(self, name: str) -> ThreadWriter:
        try:
            return self.named[name]
        except KeyError:
            raise AttributeError(name) from None

    def party(self, name: str) -> Party:
        return next(party for party in self.parties if party.name == name)


ROLES = {
    "alice": "owner",
    "bob": "admin",
    "carol": "writer",
    "dave": "writer",
    "erin": "writer",
    "finn": "writer",
    "gail": "reader",
}


def club() -> Group:
    parties = {name: Party(name) for name in ROLES}
    owner = opened(parties["alice"], name="Climbing club", app="messaging", spec=identity_spec())
    owner.control(p.EnableApp(voting_spec()))
    writers = {"alice": owner}
    for name, role in list(ROLES.items())[1:]:
        writers[name] = join(owner, parties[name], role)
    return Group(writers, list(parties.values())).settled()


def write(group: Group, writer: ThreadWriter, *changes: p.RowChange) -> Op:
    op = writer.write_data(list(changes))
    group.share()
    return op


def upsert(table: str, pk: str, **cols: Any) -> p.RowChange:
    return p.RowChange(table, pk, p.UPSERT, cols)


# -- settings ---------------------------------------------------------------------------------


def kind(writer: ThreadWriter, slug: str, label: str = "", **given: Any) -> p.RowChange:
    cols = {"slug": slug, "label": label or slug.capitalize(), "retired": 0, **given}
    return upsert(KIND, formats.kind_id(writer.member, slug), **cols)


def setting(writer: ThreadWriter, seq: int, witnesses: int = 2, flag_after: int = 2) -> p.RowChange:
    cols = {"seq": seq, "witnesses": witnesses, "flag_after": flag_after}
    return upsert(SETTING, formats.setting_id(writer.member, seq), **cols)


def authority(writer: ThreadWriter, slug: str, member: ThreadWriter | str) -> p.RowChange:
    hex_key = member if isinstance(member, str) else member.member.hex()
    pk = formats.authority_id(writer.member, slug, hex_key)
    return upsert(AUTHORITY, pk, kind=slug, member=hex_key, revoked=0)


# -- claims, attestations, retractions ----------------------------------------------------------


def claim_cols(slug: str = "climb", title: str = "Climbed the north face", **given: Any) -> dict:
    cols = {
        "kind": slug,
        "title": title,
        "description": "With a rope team of three.",
        "event_date": "2026-06-01",
        "place": "Eiger",
        "evidence": "[]",
        "withdrawn": 0,
    }
    cols.update(given)
    return cols


def claim(writer: ThreadWriter, name: str = "claim", **given: Any) -> tuple[str, p.RowChange]:
    pk = rid(writer, name)
    return pk, upsert(CLAIM, pk, **claim_cols(**given))


def evidence(**given: Any) -> dict:
    item = {"name": "summit.jpg", "mime": "image/jpeg", "size": 1000, "key": "ab" * 32}
    item["chunks"] = "cd" * 32
    item.update(given)
    return item


def attestation(
    witness: ThreadWriter,
    subject: ThreadWriter,
    pk: str,
    row: dict,
    verdict: str = "witnessed",
    note: str = "",
    *,
    signed_row: dict | None = None,
    signer: ThreadWriter | None = None,
) -> p.RowChange:
    """``witness``'s attestation of claim ``pk`` (columns ``row``); the endorsement signed over
    ``signed_row`` by ``signer`` when a test forges one."""
    digest = formats.claim_digest(pk, row)
    signed = formats.claim_digest(pk, signed_row) if signed_row is not None else digest
    jws = formats.endorsement_jws(
        (signer or witness).member_key,
        digest=signed,
        subject=subject.member,
        verdict=verdict,
        note=note,
        kind=row["kind"],
        title=row["title"],
    )
    cols = {"claim": pk, "digest": digest.hex(), "verdict": verdict, "note": note, "jws": jws}
    return upsert(ATTESTATION, formats.attestation_id(witness.member, pk), **cols)


def retraction(witness: ThreadWriter, attestation_pk: str, reason: str = "") -> p.RowChange:
    pk = formats.retraction_id(witness.member, attestation_pk)
    return upsert(RETRACTION, pk, attestation=attestation_pk, reason=reason)


# -- challenges ---------------------------------------------------------------------------------


def challenge(
    writer: ThreadWriter,
    defendant: ThreadWriter | str,
    *,
    name: str = "challenge",
    claim_pk: str | None = None,
    against: str | None = None,
    judges: tuple[ThreadWriter, ...] = (),
    poll: str | None = None,
    **given: Any,
) -> tuple[str, p.RowChange]:
    pk = rid(writer, name)
    cols = {
        "claim": claim_pk,
        "against": against,
        "defendant": defendant if isinstance(defendant, str) else defendant.member.hex(),
        "feat": "Climb it again, filmed",
        "deadline": "2026-09-01",
        "mode": "poll" if poll else "judges",
        "judges": json.dumps([j.member.hex() for j in judges]),
        "poll": poll,
    }
    cols.update(given)
    return pk, upsert(CHALLENGE, pk, **cols)


def poll(
    writer: ThreadWriter, voters: list[ThreadWriter], name: str = "poll", **given: Any
) -> tuple[str, p.RowChange]:
    """The poll a challenge opens in the same op (it goes first)."""
    pk = rid(writer, name)
    cols = {
        "question": "Who wins the challenge?",
        "description": "",
        "options": json.dumps(list(POLL_OPTIONS)),
        "method": "single",
        "roles": json.dumps(["owner", "admin", "writer"]),
        "electorate": json.dumps(sorted(v.member.hex() for v in voters)),
        "quorum": 0,
        "results_visible": 1,
        "secret": 0,
        "trustees": "[]",
        "threshold": 0,
        "ends_at": None,
    }
    cols.update(given)
    return pk, upsert(POLL, pk, **cols)


def ballot(voter: ThreadWriter, poll_pk: str, choice: int) -> p.RowChange:
    cols = {"poll": poll_pk, "choice": json.dumps({"choice": choice}), "sealed": b""}
    return upsert(BALLOT, voting_rules.ballot_id(voter.member, poll_pk), **cols)


def close(writer: ThreadWriter, poll_pk: str) -> p.RowChange:
    return upsert(CLOSE, voting_rules.close_id(writer.member, poll_pk), scope=poll_pk, ballots=0)


def accept(defendant: ThreadWriter, challenge_pk: str) -> p.RowChange:
    return upsert(ACCEPT, formats.accept_id(defendant.member, challenge_pk), challenge=challenge_pk)


def judgement(judge: ThreadWriter, challenge_pk: str, winner: str, note: str = "") -> p.RowChange:
    pk = formats.judgement_id(judge.member, challenge_pk)
    return upsert(JUDGEMENT, pk, challenge=challenge_pk, winner=winner, note=note)


def outcome(writer: ThreadWriter, challenge_pk: str, winner: str) -> p.RowChange:
    pk = formats.outcome_id(writer.member, challenge_pk)
    return upsert(OUTCOME, pk, challenge=challenge_pk, winner=winner)


# -- shared profile fields ----------------------------------------------------------------------


def shared(
    writer: ThreadWriter,
    party: Party,
    name: str,
    fields: dict[str, str],
    *,
    as_member: bytes | None = None,
) -> p.RowChange:
    """``party``'s field ``name`` shared by ``writer``, with the commitment over every field of
    ``fields`` and the binding to ``as_member`` (the writer's own member key unless given)."""
    key = formats.profile_key(party.master)
    leaves = {n: formats.disclosure(f"salt-{n}", n, v) for n, v in fields.items()}
    commitment = formats.commitment_make(
        key, [formats.disclosure_digest(x) for x in leaves.values()]
    )
    cols = {
        "name": name,
        "disclosure": leaves.get(name) or formats.disclosure("salt-x", name, "made up"),
        "commitment": commitment,
        "profile": bytes(key.verify_key).hex(),
        "binding": formats.binding_make(key, as_member or writer.member),
    }
    return upsert(SHARED, formats.shared_id(writer.member, name), **cols)
