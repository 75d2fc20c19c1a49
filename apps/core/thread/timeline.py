"""What the control fold has accepted so far, for "what did this op's author see?" questions.

``Timeline`` keeps the accepted membership, device, policy and keys events in control order;
``Restrictions`` keeps the restrictions in force (removals and demotions, and what they did not
see), indexed by whom they restrict so that judging an op looks only at its own author's.

Both only grow while a fold runs: asking one of them costs the events of the one member, device
or epoch asked about, never the whole history (a thread of 10 000 role changes is judged op by
op at the same cost as one of 100).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from apps.core.thread.keyring import KeysEvent
from apps.core.thread.op import Op
from apps.core.thread.policy import Policy


def concurrent(a: Op, b: Op) -> bool:
    return not a.in_past(b.device, b.seq) and not b.in_past(a.device, a.seq)


def _past(op: Op, event: Op) -> bool:
    return op.in_past(event.device, event.seq)


@dataclass(frozen=True)
class Restriction:
    """An accepted removal / role change / revocation and the ops it did not see."""

    op: Op
    member: bytes
    device: bytes | None  # None: every device of the member
    role: str | None  # the role those ops must also be allowed under; None: nothing allowed

    def applies(self, other: Op, member: bytes) -> bool:
        if self.device is not None and other.device != self.device:
            return False
        if self.device is None and member != self.member:
            return False
        return other is not self.op and concurrent(other, self.op)

    def applies_to_invite(self, redemption: Op, creator: bytes) -> bool:
        """Whether a redemption of an invite ``creator`` made did not see this restriction of
        the creator (a removed member's invites lose force, concurrent redemptions too)."""
        return self.device is None and creator == self.member and concurrent(redemption, self.op)


class Restrictions:
    """Restrictions in the order they were placed, and by the member or device they name."""

    def __init__(self, placed: Iterable[Restriction] = ()) -> None:
        self.placed: list[Restriction] = []
        self._by_member: dict[bytes, list[Restriction]] = {}
        self._by_device: dict[bytes, list[Restriction]] = {}
        for restriction in placed:
            self.append(restriction)

    def append(self, restriction: Restriction) -> None:
        self.placed.append(restriction)
        if restriction.device is None:
            self._by_member.setdefault(restriction.member, []).append(restriction)
        else:
            self._by_device.setdefault(restriction.device, []).append(restriction)

    def __iter__(self) -> Iterator[Restriction]:
        return iter(self.placed)

    def __len__(self) -> int:
        return len(self.placed)

    def roles(self, op: Op, member: bytes) -> list[str | None]:
        """The roles of every restriction ``op`` (by ``member``) did not see, in the order they
        were placed (a refusal names the first that forbids): it must be allowed under each of
        them as well."""
        found = [
            r for r in self._by_member.get(member, ()) if r.op is not op and concurrent(op, r.op)
        ]
        by_device = [
            r for r in self._by_device.get(op.device, ()) if r.op is not op and concurrent(op, r.op)
        ]
        if found and by_device:  # rare: both kinds concern this op; keep the placed order
            chosen = {id(r) for r in found + by_device}
            return [r.role for r in self.placed if id(r) in chosen]
        return [r.role for r in found or by_device]

    def invite_roles(self, redemption: Op, creator: bytes) -> list[str | None]:
        """The roles of every restriction of an invite's creator the redemption did not see."""
        return [r.role for r in self._by_member.get(creator, ()) if concurrent(redemption, r.op)]


class Timeline:
    """Accepted control events in control order, for "what did this op's author see?" queries."""

    def __init__(self) -> None:
        self.member_events: dict[bytes, list[tuple[Op, str | None]]] = {}
        self.device_events: dict[bytes, list[tuple[Op, bytes | None]]] = {}
        # Member -> every device ever certified for it (whatever became of it since).
        self.member_devices: dict[bytes, set[bytes]] = {}
        self.keys_events: list[KeysEvent] = []
        # The same events by epoch number: an op asks about its own epoch and the newest it saw.
        self._keys_by_epoch: dict[int, list[KeysEvent]] = {}
        self._epochs: list[int] = []  # the keys of ``_keys_by_epoch``, ascending
        self.policy_events: list[tuple[Op, Policy]] = []
        self.genesis: Op | None = None
        # Members that were ever removed: only they can make a keys op unusable.
        self.ever_removed: set[bytes] = set()
        # Invite key -> the op that made it (a member who left comes back only with an
        # invite made since: ``rejoin``).
        self.invites_made: dict[bytes, Op] = {}

    def member(self, op: Op, member: bytes, role: str | None) -> None:
        self.member_events.setdefault(member, []).append((op, role))
        if role is None:
            self.ever_removed.add(member)

    def device(self, op: Op, device: bytes, member: bytes | None) -> None:
        self.device_events.setdefault(device, []).append((op, member))
        if member is not None:
            self.member_devices.setdefault(member, set()).add(device)

    def policy(self, op: Op, policy: Policy) -> None:
        self.policy_events.append((op, policy))

    def keys(self, event: KeysEvent) -> None:
        self.keys_events.append(event)
        if event.epoch not in self._keys_by_epoch:
            bisect.insort(self._epochs, event.epoch)
        self._keys_by_epoch.setdefault(event.epoch, []).append(event)

    def newest_epoch(self) -> int:
        """The highest epoch number of an accepted keys op (0: none yet)."""
        return self._epochs[-1] if self._epochs else 0

    def epoch_events(self, epoch: int) -> list[KeysEvent]:
        """The accepted keys ops of one epoch (several when rotations were concurrent)."""
        return self._keys_by_epoch.get(epoch, [])

    def role_in_past(self, member: bytes, op: Op) -> str | None:
        for event_op, role in reversed(self.member_events.get(member, ())):
            if event_op is op or op.in_past(event_op.device, event_op.seq):
                return role
        return None

    def device_member_in_past(self, device: bytes, op: Op) -> bytes | None:
        for event_op, member in reversed(self.device_events.get(device, ())):
            if event_op is op or op.in_past(event_op.device, event_op.seq):
                return member
        return None

    def members_in_past(self, op: Op) -> set[bytes]:
        """The members active in ``op``'s causal past."""
        return {m for m in self.member_events if self.role_in_past(m, op) is not None}

    def policy_in_past(self, op: Op) -> Policy | None:
        """The policy in force where ``op`` stands: the newest accepted policy in its past (a
        policy change applies from its place on, never to history)."""
        for event_op, policy in reversed(self.policy_events):
            if event_op is op or op.in_past(event_op.device, event_op.seq):
                return policy
        return None

    def epoch_in_past(self, op: Op) -> tuple[int, list[KeysEvent]]:
        """The newest epoch number in ``op``'s causal past, and the keys ops for its own epoch
        that it may use (in its past, sealed to nobody its past shows as removed)."""
        newest = 0
        # Epochs from the highest down: the first one with a keys op in the past is the newest
        # (an op usually sees the newest epoch of all, so this looks at one epoch).
        for epoch in reversed(self._epochs):
            if any(_past(op, event.op) for event in self._keys_by_epoch[epoch]):
                newest = epoch
                break
        candidates = [
            event
            for event in self._keys_by_epoch.get(op.epoch, ())
            if _past(op, event.op)
            and all(self.role_in_past(m, op) is not None for m in event.sealed & self.ever_removed)
        ]
        return newest, candidates
