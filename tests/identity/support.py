"""A club on this node with identity and voting enabled, and its other members on nodes of their
own in this process (Dana an admin; Eli, Fay and Gus writers). Each member writes the identity
app's rows through its own database as its node would (so a test can write what an honest node
writes, or something else entirely), and logs travel as sync would carry them.

This node is the club's owner, named "Alice". ``Club.sync()`` gives everyone everything."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nacl.signing
from django.db import transaction

from apps.core.models import Thread
from apps.core.threads.context import thread_context
from apps.core.threads.registry import thread_database
from apps.core.threads.thread_apps import app_enable
from apps.identity import policy
from apps.identity.models import (
    Accept,
    Attestation,
    Authority,
    Challenge,
    Claim,
    Judgement,
    Kind,
    Outcome,
    Retraction,
    Setting,
)
from apps.messaging import services as messaging
from apps.voting.models import Ballot, Close
from apps.voting.policy import APP as VOTING
from apps.voting.shape import ballot_json
from tests.support import members

ADMIN, WRITER, READER = "admin", "writer", "reader"
CLAIM_COLUMNS = ("kind", "title", "description", "event_date", "place", "evidence")


def _uuid(hex_id: str | uuid.UUID) -> uuid.UUID:
    return hex_id if isinstance(hex_id, uuid.UUID) else uuid.UUID(hex=hex_id)


def claim_row(alias: str, claim: str) -> dict[str, Any]:
    """A claim's columns as the rules see them (for its digest)."""
    row = Claim.objects.using(alias).get(pk=_uuid(claim))
    return {name: getattr(row, name) for name in CLAIM_COLUMNS}


class Member(members.Member):
    """Another member of the club on a node of its own. Every method writes one op there (as an
    honest node would, unless the arguments say otherwise) and returns the row's id, hex."""

    @property
    def key(self) -> nacl.signing.SigningKey:
        return self.node.database.writer().member_key

    @property
    def me(self) -> bytes:
        return bytes.fromhex(self.member)

    def _create(self, model: type, pk: uuid.UUID | None = None, **cols: Any) -> str:
        if pk is not None:
            cols["pk"] = pk
        return model.objects.using(self.alias).create(**cols).pk.hex

    # -- settings (managers) ---------------------------------------------------------------

    def kind_add(self, slug: str, label: str = "") -> str:
        from apps.identity import formats

        pk = _uuid(formats.kind_id(self.me, slug))
        return self._create(Kind, pk, slug=slug, label=label or slug.title())

    def settings_set(self, seq: int, witnesses: int, flag_after: int) -> str:
        from apps.identity import formats

        pk = _uuid(formats.setting_id(self.me, seq))
        return self._create(Setting, pk, seq=seq, witnesses=witnesses, flag_after=flag_after)

    def authority_add(self, kind: str, member: str) -> str:
        from apps.identity import formats

        pk = _uuid(formats.authority_id(self.me, kind, member))
        return self._create(Authority, pk, kind=kind, member=member)

    def authority_revoke(self, authority: str) -> None:
        Authority.objects.using(self.alias).filter(pk=_uuid(authority)).update(revoked=True)

    # -- achievements ----------------------------------------------------------------------

    def claim(self, title: str, kind: str = "race", **cols: Any) -> str:
        """A claim of its own (random id, as an honest node makes)."""
        cols.setdefault("evidence", "[]")
        return self._create(Claim, kind=kind, title=title, **cols)

    def withdraw(self, claim: str) -> None:
        Claim.objects.using(self.alias).filter(pk=_uuid(claim)).update(withdrawn=True)

    def attest(self, claim: str, verdict: str = "witnessed", note: str = "", **over: Any) -> str:
        """Attest ``claim`` as its node has it: digest and signed endorsement. ``over`` replaces
        columns (a forged digest, jws, ...) or the id (``pk``)."""
        from apps.identity import formats

        row = Claim.objects.using(self.alias).get(pk=_uuid(claim))
        digest = formats.claim_digest(claim, claim_row(self.alias, claim))
        subject = _author(self.alias, claim)
        jws = formats.endorsement_jws(
            self.key,
            digest=digest,
            subject=subject,
            verdict=verdict,
            note=note,
            kind=row.kind,
            title=row.title,
        )
        pk = over.pop("pk", None) or _uuid(formats.attestation_id(self.me, claim))
        cols: dict[str, Any] = {
            "claim": _uuid(claim),
            "digest": digest.hex(),
            "verdict": verdict,
            "note": note,
            "jws": jws,
        }
        cols.update(over)
        return self._create(Attestation, _uuid(pk), **cols)

    def retract(self, attestation: str, reason: str = "") -> str:
        from apps.identity import formats

        pk = _uuid(formats.retraction_id(self.me, attestation))
        return self._create(Retraction, pk, attestation=_uuid(attestation), reason=reason)

    # -- challenges ------------------------------------------------------------------------

    def challenge(
        self,
        *,
        defendant: str,
        feat: str = "Do it again in front of us",
        mode: str = "judges",
        claim: str | None = None,
        against: str | None = None,
        judges: Sequence[str] = (),
        poll: str | None = None,
        deadline: str = "",
    ) -> str:
        return self._create(
            Challenge,
            claim=_uuid(claim) if claim else None,
            against=_uuid(against) if against else None,
            defendant=defendant,
            feat=feat,
            deadline=deadline,
            mode=mode,
            judges=json.dumps(list(judges)),
            poll=_uuid(poll) if poll else None,
        )

    def accept(self, challenge: str) -> str:
        from apps.identity import formats

        pk = _uuid(formats.accept_id(self.me, challenge))
        return self._create(Accept, pk, challenge=_uuid(challenge))

    def judge(self, challenge: str, winner: str, note: str = "") -> str:
        from apps.identity import formats

        pk = _uuid(formats.judgement_id(self.me, challenge))
        return self._create(Judgement, pk, challenge=_uuid(challenge), winner=winner, note=note)

    def outcome(self, challenge: str, winner: str) -> str:
        from apps.identity import formats

        pk = _uuid(formats.outcome_id(self.me, challenge))
        return self._create(Outcome, pk, challenge=_uuid(challenge), winner=winner)

    # -- a challenge's poll ----------------------------------------------------------------

    def vote(self, poll: str, choice: int) -> str:
        from apps.voting import rules as voting_rules

        pk = _uuid(voting_rules.ballot_id(self.me, poll))
        Ballot.objects.using(self.alias).update_or_create(
            pk=pk, defaults={"poll": _uuid(poll), "choice": ballot_json({"choice": choice})}
        )
        return pk.hex

    def close(self, poll: str) -> str:
        from apps.voting import rules as voting_rules

        pk = _uuid(voting_rules.close_id(self.me, poll))
        turnout = Ballot.objects.using(self.alias).filter(poll=_uuid(poll)).count()
        return self._create(Close, pk, scope=_uuid(poll), ballots=turnout)


def _author(alias: str, pk: str) -> bytes:
    """The member whose id ``pk`` names (its last 12 hex digits are the owner's row tag)."""
    from django.db import connections

    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT member FROM sereus_members WHERE tag = %s", [_uuid(pk).hex[20:]])
        found = cursor.fetchone()
    if found is None:
        raise LookupError("the row's author is not a member this node knows")
    return bytes(found[0])


def member_join(thread: Thread, tmp_path: Path, name: str, role: str) -> Member:
    return members.member_join(thread, tmp_path, name, role, Member)


def owner_write(thread: Thread, action: Any) -> Any:
    """Run ``action()`` as this node in one op of the thread (bypassing the services: for rows
    the services would refuse, or setup before they exist)."""
    database = thread_database(thread.thread)
    with thread_context(thread.thread), transaction.atomic(using=database.alias):
        return action()


@dataclass
class Club:
    """This node's club (owner "Alice") and its other members' nodes."""

    thread: Thread
    dana: Member  # admin
    eli: Member
    fay: Member
    gus: Member
    extra: list[Member] = field(default_factory=list)

    @property
    def others(self) -> list[Member]:
        return [self.dana, self.eli, self.fay, self.gus, *self.extra]

    @property
    def alias(self) -> str:
        return thread_database(self.thread.thread).alias

    @property
    def me(self) -> str:
        """This node's member key, hex."""
        return self.thread.member_id

    def sync(self, among: Iterable[Member] | None = None) -> None:
        """Everyone's log reaches this node, then this node's reaches everyone (so all have all
        the ops of ``among``, everyone by default)."""
        chosen = list(self.others if among is None else among)
        for member in chosen:
            member.send()
        for member in chosen:
            member.receive()
        self.thread.refresh_from_db()

    def by_name(self, name: str) -> Member:
        return {m.node.alias.rsplit("_", 1)[-1]: m for m in self.others}[name.lower()]


def club(tmp_path: Path, *, kinds: Sequence[str] = ("race",), voting: bool = True) -> Club:
    """A conversation this node owns with identity (and voting) enabled, the kinds ``kinds``
    added by this node, and Dana (admin), Eli, Fay and Gus (writers) in it on their own
    nodes; everyone has everything."""
    thread = messaging.conversation_create(name="Climbing club", my_name="Alice")
    app_enable(thread=thread, app=policy.APP)
    if voting:
        app_enable(thread=thread, app=VOTING)
    thread.refresh_from_db()
    if kinds:
        from apps.identity import formats

        me = bytes.fromhex(thread.member_id)
        for slug in kinds:
            pk = _uuid(formats.kind_id(me, slug))
            owner_write(
                thread, lambda pk=pk, slug=slug: Kind.objects.create(pk=pk, slug=slug, label=slug)
            )
    dana = member_join(thread, tmp_path, "Dana", ADMIN)
    eli = member_join(thread, tmp_path, "Eli", WRITER)
    fay = member_join(thread, tmp_path, "Fay", WRITER)
    gus = member_join(thread, tmp_path, "Gus", WRITER)
    made = Club(thread, dana, eli, fay, gus)
    made.sync()
    return made
