"""The control actions an op can carry, as typed values (``Control`` is any of them).
``payloads`` reads them from an op's body and writes them back (``control_parse``,
``control_doc``) and names them too: callers use ``payloads.<Action>``."""

from __future__ import annotations

from dataclasses import dataclass

from apps.core.thread.appspec import AppSpec
from apps.core.thread.policy import Policy


@dataclass(frozen=True)
class Create:
    nonce: bytes
    policy: Policy
    owner: bytes
    device_cert: bytes
    name: str
    app: str


@dataclass(frozen=True)
class AddMember:
    member: bytes
    role: str
    device: bytes
    device_cert: bytes
    device_proof: bytes  # the device's own signature (keys.device_proof_sign)


@dataclass(frozen=True)
class RedeemInvite:
    invite: bytes
    member: bytes
    device: bytes
    device_cert: bytes
    proof: bytes
    device_proof: bytes


@dataclass(frozen=True)
class RemoveMember:
    member: bytes


@dataclass(frozen=True)
class Leave:
    pass


@dataclass(frozen=True)
class SetRole:
    member: bytes
    role: str


@dataclass(frozen=True)
class TransferOwner:
    member: bytes


@dataclass(frozen=True)
class CertifyDevice:
    member: bytes
    device: bytes
    device_cert: bytes
    device_proof: bytes


@dataclass(frozen=True)
class RevokeDevice:
    device: bytes
    # The member's own signature when a member revokes one of its devices; None when a manager
    # revokes a lower-ranked member's device.
    member_sig: bytes | None


@dataclass(frozen=True)
class CreateInvite:
    invite: bytes
    role: str
    expiry: int
    # How many redemptions the invite admits (None: no cap). Both are left out of the document
    # when they have their default, so a single-use invite is written as it always was.
    uses: int | None = 1
    label: str = ""  # a note the members see ("shop followers"); the link does not carry it


@dataclass(frozen=True)
class RevokeInvite:
    invite: bytes


@dataclass(frozen=True)
class SetAddresses:
    addrs: tuple[str, ...]


@dataclass(frozen=True)
class SetPolicy:
    policy: Policy


@dataclass(frozen=True)
class SetMeta:
    name: str


@dataclass(frozen=True)
class SetName:
    """The name a member gives itself in the thread (ADR 16); ``member`` must be its author."""

    member: bytes
    name: str


@dataclass(frozen=True)
class EnableApp:
    spec: AppSpec  # what the app adds to the policy: carried in the op, never read locally


@dataclass(frozen=True)
class DisableApp:
    app: str


Control = (
    Create
    | AddMember
    | RedeemInvite
    | RemoveMember
    | Leave
    | SetRole
    | TransferOwner
    | CertifyDevice
    | RevokeDevice
    | CreateInvite
    | RevokeInvite
    | SetAddresses
    | SetPolicy
    | SetMeta
    | SetName
    | EnableApp
    | DisableApp
)
