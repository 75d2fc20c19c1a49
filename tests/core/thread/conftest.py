"""Helpers for thread-core tests: parties, honest writers, and a forger for hostile ops."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import nacl.signing
import nacl.utils
import pytest

from apps.core.thread import codec, crypto, keys, rowid
from apps.core.thread.hlc import Stamp
from apps.core.thread.op import KIND_KEYS, Op, op_seal
from apps.core.thread.replica import Replica
from apps.core.thread.writer import ThreadWriter, redemption_request


@dataclass
class Party:
    """A person: a master secret and one device."""

    name: str
    master: bytes = field(default_factory=lambda: nacl.utils.random(32))
    device: nacl.signing.SigningKey = field(default_factory=nacl.signing.SigningKey.generate)

    def member_key(self, thread: bytes) -> nacl.signing.SigningKey:
        return keys.member_key(self.master, thread)

    def member(self, thread: bytes) -> bytes:
        return bytes(self.member_key(thread).verify_key)


def rid(owner: ThreadWriter | bytes, name: str) -> str:
    """A row id owned by ``owner`` (a writer, or a member key), as a thread op carries it: the
    same name always gives the same id."""
    member = owner if isinstance(owner, bytes) else owner.member
    return rowid.row_id_for(member, name.encode()).hex


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def sync(source: Replica, target: Replica) -> None:
    """Deliver everything ``source`` holds to ``target`` (admitted ops in causal order)."""
    for op in source.admitted:
        target.ingest(op.raw)


def join(admitter: ThreadWriter, party: Party, role: str = "writer") -> ThreadWriter:
    """Invite ``party`` at ``role``, admit it, and give it its own synced replica and writer."""
    invite = admitter.invite_create(role=role, expiry=now_ms() + 3_600_000, inviter="peer")
    admitter.admit(redemption_request(invite, master_secret=party.master, device_key=party.device))
    replica = Replica.for_members(admitter.thread)
    writer = ThreadWriter.for_member(replica, master_secret=party.master, device_key=party.device)
    sync(admitter.replica, replica)
    return writer


def auditor(thread: bytes, *parties: Party) -> Replica:
    """A fresh replica holding the member keys of all ``parties`` (it can open everything)."""
    return Replica.for_members(thread, [party.member_key(thread) for party in parties])


def forge(
    writer: ThreadWriter,
    *,
    kind: str,
    payload: Any,
    epoch: int | None = None,
    key: bytes | None = None,
    deps: list[tuple[bytes, int]] | None = None,
    seq: int | None = None,
    prev: bytes | str | None = "auto",
    hlc: Stamp | None = None,
    thread: bytes | None = None,
) -> Op:
    """An op signed by ``writer``'s device with any content: what a hostile but certified device
    can send. Defaults follow the writer's replica like an honest op would; nothing is ingested."""
    replica = writer.replica
    thread = thread or writer.thread
    seq = seq or replica.heads.get(writer.device, 0) + 1
    if prev == "auto":
        prev = replica.slots[(writer.device, seq - 1)].hash if seq > 1 else None
    if deps is None:
        deps = [(d, s) for d, s in replica.heads.items() if d != writer.device]
    if hlc is None:
        writer.clock.observe(replica.max_hlc or Stamp(0, 0))
        hlc = writer.clock.tick()
    if epoch is None or key is None:
        usable_epoch, epoch_keys = writer._usable_epoch()
        epoch = usable_epoch if epoch is None else epoch
        key = key or (epoch_keys.data if kind == "data" else epoch_keys.control)
    plain = payload if isinstance(payload, bytes) else codec.encode(payload)
    return op_seal(
        writer.device_key,
        thread=thread,
        seq=seq,
        prev=prev,
        deps=deps,
        hlc=hlc,
        epoch=epoch,
        kind=kind,
        seal=lambda aad: plain if kind == KIND_KEYS else crypto.aead_encrypt(key, plain, aad),
    )


@pytest.fixture
def alice() -> Party:
    return Party("alice")


@pytest.fixture
def bob() -> Party:
    return Party("bob")


@pytest.fixture
def carol() -> Party:
    return Party("carol")
