"""Random thread histories with hostile members (issue 9): honest members write, sync and
rotate; one or two hostile members (writers, with the keys they legitimately hold) mix in ops
drawn from every known attack. The honest replicas must end identical, refuse no honest op, and
keep replicating.

Attacks: an upsert or delete of an honest member's row with deps that leave its insert out;
ops signed by throw-away keys; ops stamped a day ahead; a rotation that seals a wrong secret to
an honest member, or seals to only some members; two different ops at one place (each half
delivered to different members); a redemption of the hostile member's own invite after its
removal, citing a past without the removal; values of the wrong type.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field

import nacl.signing

from apps.core.thread import codec, crypto, keys
from apps.core.thread import payloads as p
from apps.core.thread.data import Wait
from apps.core.thread.hlc import Stamp
from apps.core.thread.invite import Invite
from apps.core.thread.op import KIND_KEYS, Op, op_seal
from apps.core.thread.replica import Replica
from apps.core.thread.writer import ThreadWriter, WriteError, redemption_request
from tests.core.thread.conftest import Party, forge, now_ms, rid

ATTACKS = (
    "omitted_deps",
    "junk_key",
    "future_stamp",
    "split_keys",
    "partial_keys",
    "equivocate",
    "stale_invite",
    "wrong_type",
)


def note_rules(change: p.RowChange, action: str, schema: Mapping[str, str]) -> str | Wait | None:
    """The app rule of the simulated table: a note's text is text, its count an integer."""
    for column, value in change.cols.items():
        if column == "text" and type(value) is not str:
            return "text: expected text"
        if column == "n" and type(value) is not int:
            return "n: expected an integer"
    return None


@dataclass
class Adversary:
    rng: random.Random
    hostile_count: int
    honest: list[ThreadWriter] = field(default_factory=list)
    hostile: list[ThreadWriter] = field(default_factory=list)
    parties: dict[bytes, Party] = field(default_factory=dict)  # member -> party
    extra_ops: list[Op] = field(default_factory=list)  # ops no member's replica holds
    attacks: dict[str, int] = field(default_factory=dict)
    invites: dict[bytes, Invite] = field(default_factory=dict)  # hostile member -> its invite
    snapshots: dict[bytes, list[tuple[bytes, int]]] = field(default_factory=dict)
    removed: set[bytes] = field(default_factory=set)

    @classmethod
    def run(cls, seed: int, *, honest: int, hostile: int, steps: int) -> Adversary:
        sim = cls(rng=random.Random(seed), hostile_count=hostile)
        owner = sim._party("owner")
        sim.honest.append(
            ThreadWriter.create(
                master_secret=owner.master, device_key=owner.device, name="adversary"
            )
        )
        sim.parties[sim.honest[0].member] = owner
        for n in range(honest - 1):
            sim.honest.append(sim._join(f"honest{n}", role=sim.rng.choice(("admin", "writer"))))
        for n in range(hostile):
            writer = sim._join(f"hostile{n}", role="writer")
            sim.hostile.append(writer)
            sim.snapshots[writer.member] = sim._deps_of(writer)
        for _ in range(steps):
            sim.step()
        for writer in sim.everyone:
            sim._sync(writer)
        return sim

    # -- people ---------------------------------------------------------------------------------

    def _party(self, name: str) -> Party:
        return Party(
            name,
            master=self.rng.randbytes(32),
            device=nacl.signing.SigningKey(self.rng.randbytes(32)),
        )

    def _join(self, name: str, role: str) -> ThreadWriter:
        party = self._party(name)
        owner = self.honest[0]
        invite = owner.invite_create(role=role, expiry=now_ms() + 3_600_000, inviter="adv")
        owner.admit(redemption_request(invite, master_secret=party.master, device_key=party.device))
        joined = ThreadWriter.for_member(
            Replica.for_members(owner.thread, rules=note_rules),
            master_secret=party.master,
            device_key=party.device,
        )
        for op in owner.replica.admitted:
            joined.replica.ingest(op.raw)
        self.parties[joined.member] = party
        for writer in self.honest[1:]:
            self._deliver(owner, writer)
        return joined

    @property
    def thread(self) -> bytes:
        return self.honest[0].thread

    @property
    def everyone(self) -> list[ThreadWriter]:
        return [*self.honest, *self.hostile]

    def honest_keys(self) -> list:
        return [self.parties[w.member].member_key(self.thread) for w in self.honest]

    def replica(self) -> Replica:
        """A fresh honest replica: every honest member's keys, the app rule."""
        return Replica.for_members(self.thread, self.honest_keys(), rules=note_rules)

    def all_ops(self) -> list[Op]:
        ops: dict[bytes, Op] = {}
        for writer in self.everyone:
            ops.update(writer.replica.by_hash)
        for op in self.extra_ops:
            ops.setdefault(op.hash, op)
        return list(ops.values())

    def honest_written(self) -> list[Op]:
        """The ops honest members wrote and their own replicas accepted."""
        out = []
        for writer in self.honest:
            for op in writer.replica.admitted:
                decision = writer.replica.decision(op.hash)
                if op.device == writer.device and decision and decision.status == "accepted":
                    out.append(op)
        return out

    # -- steps ----------------------------------------------------------------------------------

    def step(self) -> None:
        rng = self.rng
        roll = rng.random()
        try:
            if roll < 0.35:
                self._honest_write(rng.choice(self.honest))
            elif roll < 0.55:
                source, target = rng.choice(self.everyone), rng.choice(self.everyone)
                self._deliver(source, target)
            elif roll < 0.60:
                rng.choice(self.honest[1:] or self.honest).rotate()
            elif roll < 0.64:
                self._remove_hostile()
            else:
                attacker = rng.choice(self.hostile) if self.hostile else None
                if attacker is not None:
                    attack = rng.choice(ATTACKS)
                    getattr(self, f"_{attack}")(attacker)
                    self.attacks[attack] = self.attacks.get(attack, 0) + 1
        except WriteError:
            pass  # the member's own replica refused: a node would not send it

    def _deliver(self, source: ThreadWriter, target: ThreadWriter) -> None:
        ops = list(source.replica.by_hash.values())
        self.rng.shuffle(ops)
        for op in ops:
            target.replica.ingest(op.raw)

    def _sync(self, target: ThreadWriter) -> None:
        for source in self.everyone:
            self._deliver(source, target)

    def _honest_write(self, writer: ThreadWriter) -> None:
        rng = self.rng
        name = f"n{rng.randrange(6)}"
        if rng.random() < 0.15:
            change = p.RowChange("notes", rid(writer, name), p.DELETE, {})
        else:
            change = p.RowChange(
                "notes", rid(writer, name), p.UPSERT, {"text": f"t{rng.randrange(99)}", "n": 1}
            )
        writer.write_data([change])

    def _remove_hostile(self) -> None:
        owner = self.honest[0]
        targets = [w for w in self.hostile if owner.replica.control.state.role_of(w.member)]
        if targets:
            victim = self.rng.choice(targets)
            owner.remove_member(victim.member)
            self.removed.add(victim.member)

    def _deps_of(self, writer: ThreadWriter) -> list[tuple[bytes, int]]:
        return [(d, s) for d, s in writer.replica.heads.items() if d != writer.device]

    def _keep(self, writer: ThreadWriter, op: Op) -> None:
        """A forged op the attacker keeps in its own chain and offers to whoever syncs."""
        result = writer.replica.ingest_op(op)
        if result.status in ("unknown", "held", "pending", "dropped"):
            writer.replica.discard(op)
            self.extra_ops.append(op)

    # -- attacks --------------------------------------------------------------------------------

    def _omitted_deps(self, hostile: ThreadWriter) -> None:
        """Rewrite or delete an honest member's row, citing a past without its insert."""
        victim = self.rng.choice(self.honest)
        pk = rid(victim, f"n{self.rng.randrange(6)}")
        change = (
            p.RowChange("notes", pk, p.DELETE, {})
            if self.rng.random() < 0.3
            else p.RowChange("notes", pk, p.UPSERT, {"text": "defaced", "n": 0})
        )
        deps = self.snapshots.get(hostile.member, [])
        own = hostile.replica.heads.get(hostile.device, 0)
        prev_deps = hostile.replica.slots[(hostile.device, own)].deps if own else ()
        if any(dict(deps).get(d, 0) < s for d, s in prev_deps):
            deps = self._deps_of(hostile)  # deps may not shrink along its own chain
        self._keep(hostile, forge(hostile, kind="data", payload=p.data_doc([change]), deps=deps))
        self.snapshots[hostile.member] = self._deps_of(hostile)

    def _junk_key(self, hostile: ThreadWriter) -> None:
        for _ in range(self.rng.randint(1, 5)):
            key = nacl.signing.SigningKey(self.rng.randbytes(32))
            self.extra_ops.append(
                op_seal(
                    key,
                    thread=self.thread,
                    seq=1,
                    prev=None,
                    deps=self._deps_of(hostile),
                    hlc=Stamp(now_ms(), 0),
                    epoch=1,
                    kind=self.rng.choice(("data", "control")),
                    seal=lambda aad: self.rng.randbytes(60),
                )
            )

    def _future_stamp(self, hostile: ThreadWriter) -> None:
        change = p.RowChange("notes", rid(hostile, "late"), p.UPSERT, {"text": "win", "n": 9})
        ahead = Stamp(now_ms() + 24 * 3600 * 1000, 0)
        self._keep(hostile, forge(hostile, kind="data", payload=p.data_doc([change]), hlc=ahead))

    def _rotation(self, hostile: ThreadWriter, *, split: bool) -> None:
        control = hostile.replica.control
        members = [m for m, s in control.state.members.items() if s.active]
        if split:
            sealed_to = members
        else:
            sealed_to = [m for m in members if m == hostile.member or self.rng.random() < 0.5]
        epoch = max(e.epoch for e in control.timeline.keys_events) + 1
        secret, fake = self.rng.randbytes(32), self.rng.randbytes(32)
        cheated = self.rng.choice([m for m in members if m != hostile.member] or members)
        seals = {
            m: crypto.seal(
                m, codec.encode({"secret": fake if split and m == cheated else secret, "old": []})
            )
            for m in sealed_to
        }
        check = keys.EpochKeys.from_secret(self.thread, epoch, secret).check(self.thread)
        payload = {"epoch": epoch, "check": check, "seal": seals}
        self._keep(hostile, forge(hostile, kind=KIND_KEYS, payload=payload, epoch=epoch, key=b""))

    def _split_keys(self, hostile: ThreadWriter) -> None:
        self._rotation(hostile, split=True)

    def _partial_keys(self, hostile: ThreadWriter) -> None:
        self._rotation(hostile, split=False)

    def _equivocate(self, hostile: ThreadWriter) -> None:
        """Two different ops at one place: one stays in the attacker's chain, the other goes to
        an honest member directly."""
        change = p.RowChange("notes", rid(hostile, "eq"), p.UPSERT, {"text": "one", "n": 1})
        other = p.RowChange("notes", rid(hostile, "eq"), p.UPSERT, {"text": "two", "n": 2})
        first = forge(hostile, kind="data", payload=p.data_doc([change]))
        twin = forge(
            hostile,
            kind="data",
            payload=p.data_doc([other]),
            seq=first.seq,
            prev=first.prev,
            deps=list(first.deps),
        )
        self._keep(hostile, first)
        self.rng.choice(self.honest).replica.ingest(twin.raw)
        self.extra_ops.append(twin)

    def _stale_invite(self, hostile: ThreadWriter) -> None:
        """Make an invite while a member; once removed, redeem it for a sock puppet, citing the
        past of the invite (without the removal)."""
        invite = self.invites.get(hostile.member)
        if invite is None:
            self.invites[hostile.member] = hostile.invite_create(
                role="reader", expiry=now_ms() + 3_600_000, inviter="adv"
            )
            self.snapshots[hostile.member] = self._deps_of(hostile)
            return
        puppet = self._party("puppet")
        request = redemption_request(invite, master_secret=puppet.master, device_key=puppet.device)
        action = p.RedeemInvite(
            invite=request.invite,
            member=request.member,
            device=request.device,
            device_cert=request.device_cert,
            proof=request.proof,
            device_proof=request.device_proof,
        )
        own = hostile.replica.heads.get(hostile.device, 0)
        prev_deps = hostile.replica.slots[(hostile.device, own)].deps if own else ()
        deps = self.snapshots.get(hostile.member, [])
        if any(dict(deps).get(d, 0) < s for d, s in prev_deps):
            deps = self._deps_of(hostile)
        try:
            op = forge(hostile, kind="control", payload=p.control_doc(action), deps=deps)
        except WriteError:
            return
        self._keep(hostile, op)

    def _wrong_type(self, hostile: ThreadWriter) -> None:
        change = p.RowChange("notes", rid(hostile, "odd"), p.UPSERT, {"text": b"\xff", "n": "x"})
        self._keep(hostile, forge(hostile, kind="data", payload=p.data_doc([change])))
