"""Random thread histories: several members, each with its own replica, acting and syncing at
random, so their ops are concurrent in every way the network allows.

Members follow the honest writer's rules except one: a member acts on whatever its own replica
knows, so a member that was removed (or demoted) but has not heard of it yet keeps writing. Those
ops are exactly the backdating case, and replicas must refuse them all the same way.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import nacl.signing

from apps.core.thread import payloads as p
from apps.core.thread.appspec import AppSpec, Closing
from apps.core.thread.op import Op
from apps.core.thread.ordered_data import validators_register
from apps.core.thread.replica import Replica
from apps.core.thread.writer import ThreadWriter, WriteError, redemption_request
from tests.core.thread.conftest import Party, now_ms, rid

ROLES = ("admin", "writer", "reader")
# A second app that members enable and disable while others write to it.
# Its items are ordered: one claimer per item, judged in the thread's order; a close row closes
# a list, refusing every item row of it its closer had not seen.
TASKS = AppSpec(
    app="tasks",
    tables=frozenset({"tasks_item", "tasks_close"}),
    rules={
        role: {
            "tasks_item": {"insert": "any", "update": "any"},
            "tasks_close": {"insert": "any"},
        }
        for role in ("owner", *ROLES)
    },
    ordered=frozenset({"tasks_item", "tasks_close"}),
    closes={"tasks_close": Closing(target="tasks_item", scope="list")},
)


def claim_rule(view, change, author) -> str | None:
    """One claimer per item, and only for oneself."""
    if change.action != p.UPSERT or "claimed_by" not in change.cols:
        return None
    claimer = change.cols["claimed_by"]
    if claimer != author.member.hex():
        return "a member claims items only for themself"
    current = view.get(change.table, change.pk)
    held = current.get("claimed_by") if current else None
    if held and held != claimer:
        return "the item is already claimed"
    return None


validators_register("tasks", lambda: {"tasks_item": claim_rule})


@dataclass
class Simulation:
    rng: random.Random
    max_members: int
    parties: list[Party] = field(default_factory=list)
    writers: list[ThreadWriter] = field(default_factory=list)
    rows: list[str] = field(default_factory=list)  # ids of rows written so far
    tasks: list[str] = field(default_factory=list)  # ids of the tasks app's items

    @classmethod
    def run(cls, seed: int, *, members: int, steps: int) -> Simulation:
        sim = cls(rng=random.Random(seed), max_members=members)
        owner = sim._party("p0")
        sim.parties.append(owner)
        sim.writers.append(
            ThreadWriter.create(master_secret=owner.master, device_key=owner.device, name="sim")
        )
        for _ in range(steps):
            sim.step()
        return sim

    @property
    def thread(self) -> bytes:
        return self.writers[0].thread

    def all_ops(self) -> list[Op]:
        """Every op any member ever made or held (a set: no duplicates)."""
        ops: dict[bytes, Op] = {}
        for writer in self.writers:
            ops.update(writer.replica.by_hash)
        return sorted(ops.values(), key=_place)

    def auditor(self) -> Replica:
        return Replica.for_members(
            self.thread, [party.member_key(self.thread) for party in self.parties]
        )

    # -- actions --------------------------------------------------------------------------------

    def step(self) -> None:
        rng = self.rng
        roll = rng.random()
        active = [w for w in self.writers if w.replica.control.state.role_of(w.member)]
        # Mostly members that think they are members; sometimes anyone (a removed member that
        # keeps writing is the backdating case).
        writer = rng.choice(active if active and rng.random() < 0.85 else self.writers)
        try:
            if roll < 0.30:
                self._write(writer)
            elif roll < 0.45:
                self._sync(writer, rng.choice(self.writers))
            elif roll < 0.55 and self._active(writer) < self.max_members:
                self._invite(writer)
            elif roll < 0.65:
                self._set_role(writer)
            elif roll < 0.70:
                self._remove(writer)
            elif roll < 0.74:
                writer.rotate()
            elif roll < 0.78:
                writer.control(
                    p.SetAddresses(addrs=(f"/ip4/10.0.0.{rng.randrange(250)}/tcp/4001",))
                )
            elif roll < 0.82:
                self._toggle_app(writer)
            elif roll < 0.90:
                self._conflict()
            else:
                self._gossip()
        except WriteError:
            pass  # the member's own replica refused: a real node would not send it either

    def _conflict(self) -> None:
        """Two members act on the same target without hearing of each other."""
        rng = self.rng
        first, second = rng.choice(self.writers), rng.choice(self.writers)
        targets = self._others(first)
        if not targets:
            return
        target = rng.choice(targets)
        for writer in (first, second):
            try:
                if rng.random() < 0.7:
                    writer.set_role(target, rng.choice(ROLES))
                else:
                    writer.remove_member(target)
            except WriteError:
                pass

    def _toggle_app(self, writer: ThreadWriter) -> None:
        """Enable or disable the tasks app, as this member's replica sees it: concurrent
        toggles and writes that did not see them are the cases to decide alike."""
        if "tasks" in writer.replica.control.state.apps:
            writer.control(p.DisableApp("tasks"))
        else:
            writer.control(p.EnableApp(TASKS))

    def _write(self, writer: ThreadWriter) -> None:
        rng = self.rng
        changes = []
        if rng.random() < 0.3:
            # A row of the second app, whether or not this member saw it enabled: a new item,
            # a claim of anyone's item (concurrent claims race), or a list closed.
            roll = rng.random()
            if self.tasks and roll < 0.5:
                cols = {"claimed_by": writer.member.hex()}
                changes.append(p.RowChange("tasks_item", rng.choice(self.tasks), p.UPSERT, cols))
            elif roll < 0.6:
                close = rid(writer, f"close{len(self.tasks)}")
                cols = {"scope": f"l{rng.randrange(3)}"}
                changes.append(p.RowChange("tasks_close", close, p.UPSERT, cols))
            else:
                pk = rid(writer, f"task{len(self.tasks)}")
                self.tasks.append(pk)
                cols = {"text": "t", "list": f"l{rng.randrange(3)}"}
                changes.append(p.RowChange("tasks_item", pk, p.UPSERT, cols))
        for _ in range(rng.randint(1, 3)):
            if self.rows and rng.random() < 0.5:
                # Anyone's row: only its owner (or a role that changes any row) may.
                pk = rng.choice(self.rows)
                if rng.random() < 0.2:
                    changes.append(p.RowChange("notes", pk, p.DELETE, {}))
                    continue
            else:
                pk = rid(writer, f"r{len(self.rows)}")
                self.rows.append(pk)
            changes.append(
                p.RowChange(
                    "notes",
                    pk,
                    p.UPSERT,
                    {"text": f"t{rng.randrange(1000)}", "n": rng.randrange(9)},
                )
            )
        writer.write_data(changes)

    def _sync(self, source: ThreadWriter, target: ThreadWriter) -> None:
        # Sorted before the shuffle: a replica's own order of ops can follow set iteration, which
        # changes with PYTHONHASHSEED, and the same seed must give the same history every run.
        ops = sorted(source.replica.by_hash.values(), key=_place)
        self.rng.shuffle(ops)
        for op in ops:
            target.replica.ingest(op.raw)

    def _gossip(self) -> None:
        for _ in range(len(self.writers)):
            self._sync(self.rng.choice(self.writers), self.rng.choice(self.writers))

    def _invite(self, writer: ThreadWriter) -> None:
        party = self._party(f"p{len(self.parties)}")
        role = self.rng.choice(ROLES)
        invite = writer.invite_create(role=role, expiry=now_ms() + 3_600_000, inviter="sim")
        writer.admit(
            redemption_request(invite, master_secret=party.master, device_key=party.device)
        )
        replica = Replica.for_members(self.thread)
        joined = ThreadWriter.for_member(
            replica, master_secret=party.master, device_key=party.device
        )
        self._sync(writer, joined)
        self.parties.append(party)
        self.writers.append(joined)

    def _party(self, name: str) -> Party:
        """Keys from the simulation's generator: the same seed, the same people."""
        return Party(
            name,
            master=self.rng.randbytes(32),
            device=nacl.signing.SigningKey(self.rng.randbytes(32)),
        )

    def _active(self, writer: ThreadWriter) -> int:
        return sum(s.active for s in writer.replica.control.state.members.values())

    def _others(self, writer: ThreadWriter) -> list[bytes]:
        state = writer.replica.control.state
        return sorted(m for m, s in state.members.items() if s.active and m != writer.member)

    def _set_role(self, writer: ThreadWriter) -> None:
        others = self._others(writer)
        if others:
            writer.set_role(self.rng.choice(others), self.rng.choice(ROLES))

    def _remove(self, writer: ThreadWriter) -> None:
        others = self._others(writer)
        if others:
            writer.remove_member(self.rng.choice(others))


def _place(op: Op) -> tuple[bytes, int]:
    """An order of ops that does not depend on their hashes: sealed keys are random bytes (the
    sealed box's own ephemeral key), so hashes differ from run to run; device and seq do not."""
    return (op.device, op.seq)
