"""The state a thread's control ops build: members, roles, devices, epochs, invites, policy.

``ThreadState`` is mutated only by the resolver's fold, in the deterministic control order, and
exported as a ``Snapshot`` (plain, comparable values) for callers and for convergence tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from apps.core.thread.appspec import AppSpec
from apps.core.thread.policy import Policy, default_policy

OpId = tuple[bytes, int]
# "redeemed": a single-use invite was used; "used up": a multi-use invite reached its cap.
InviteStatus = Literal["open", "revoked", "redeemed", "used up"]


@dataclass
class MemberState:
    role: str
    active: bool = True
    devices: set[bytes] = field(default_factory=set)


@dataclass
class DeviceState:
    member: bytes
    active: bool = True
    certified_by: bytes = b""  # hash of the op that certified it (a revocation names it)


@dataclass
class InviteState:
    role: str
    expiry: int
    creator: bytes  # member
    status: InviteStatus = "open"
    uses: int | None = 1  # how many redemptions it admits; None: no cap
    label: str = ""
    used: int = 0  # accepted redemptions
    redeemers: set[bytes] = field(default_factory=set)  # the members it admitted

    @property
    def redeemed_by(self) -> bytes | None:
        """The member a single-use invite admitted."""
        return next(iter(self.redeemers), None) if self.uses == 1 else None

    def redeem(self, member: bytes) -> None:
        """Count an accepted redemption; the invite is spent when it reaches its cap."""
        self.used += 1
        self.redeemers.add(member)
        if self.uses is not None and self.used >= self.uses:
            self.status = "redeemed" if self.uses == 1 else "used up"


@dataclass
class ThreadState:
    thread: bytes
    created: bool = False
    name: str = ""
    app: str = ""
    policy: Policy = field(default_factory=default_policy)
    owner: bytes | None = None
    members: dict[bytes, MemberState] = field(default_factory=dict)
    devices: dict[bytes, DeviceState] = field(default_factory=dict)
    invites: dict[bytes, InviteState] = field(default_factory=dict)
    # epoch number -> keys op hash -> check value (concurrent rotations can share a number)
    epochs: dict[int, dict[bytes, bytes]] = field(default_factory=dict)
    addresses: dict[bytes, tuple[str, ...]] = field(default_factory=dict)
    # Row tag -> member, for every member ever admitted: row ids name their owner by tag.
    tags: dict[bytes, bytes] = field(default_factory=dict)
    # The policy of the create op or the last set_policy; ``policy`` is it composed with the
    # enabled apps (appspec.compose).
    base_policy: Policy = field(default_factory=default_policy)
    # Enabled apps in enable order, the creating app first (its rules are the base policy's,
    # so it has no spec), and every table an app ever declared -> that app.
    apps: dict[str, AppSpec | None] = field(default_factory=dict)
    app_tables: dict[str, str] = field(default_factory=dict)
    # Member -> the name it gave itself (set_name, the newest in control order); kept after the
    # member leaves, for what it wrote.
    names: dict[bytes, str] = field(default_factory=dict)

    def device_member(self, device: bytes) -> bytes | None:
        """The active member an active device acts for, if any."""
        dev = self.devices.get(device)
        if dev is None or not dev.active:
            return None
        member = self.members.get(dev.member)
        return dev.member if member is not None and member.active else None

    def role_of(self, member: bytes | None) -> str | None:
        state = self.members.get(member) if member is not None else None
        return state.role if state is not None and state.active else None

    def snapshot(self) -> Snapshot:
        return Snapshot(
            created=self.created,
            name=self.name,
            app=self.app,
            owner=self.owner,
            policy=repr(self.policy.to_doc()),
            members=tuple(sorted((m, s.role) for m, s in self.members.items() if s.active)),
            devices=tuple(sorted((d, s.member) for d, s in self.devices.items() if s.active)),
            invites=tuple(
                sorted(
                    (i, s.role, s.status, s.used, tuple(sorted(s.redeemers)))
                    for i, s in self.invites.items()
                )
            ),
            epochs=tuple(sorted((n, h) for n, by_op in self.epochs.items() for h in by_op)),
            addresses=tuple(sorted(self.addresses.items())),
            apps=tuple(
                (app, repr(spec.to_doc()) if spec is not None else "")
                for app, spec in self.apps.items()
            ),
            names=tuple(sorted(self.names.items())),
        )


@dataclass(frozen=True)
class Snapshot:
    """A thread's resolved state as plain sorted tuples: equal snapshots, equal threads."""

    created: bool
    name: str
    app: str
    owner: bytes | None
    policy: str
    members: tuple[tuple[bytes, str], ...]
    devices: tuple[tuple[bytes, bytes], ...]
    # (invite, role, status, accepted redemptions, the members it admitted)
    invites: tuple[tuple[bytes, str, str, int, tuple[bytes, ...]], ...]
    epochs: tuple[tuple[int, bytes], ...]
    addresses: tuple[tuple[bytes, tuple[str, ...]], ...]
    apps: tuple[tuple[str, str], ...] = ()  # enabled apps in enable order, with their specs
    names: tuple[tuple[bytes, str], ...] = ()  # member -> the name it gave itself

    @property
    def roles(self) -> dict[bytes, str]:
        return dict(self.members)

    @property
    def current_epoch(self) -> int:
        return max((n for n, _ in self.epochs), default=0)
