"""What the mirror tests share (no tests here): a thread's real ops (written by this node), forged
ones, and the mirror's rows for a party."""

from __future__ import annotations

import nacl.signing
import nacl.utils

from apps.cadre import keys as cadre_keys
from apps.cadre.models import MirrorParty, MirrorThread
from apps.core.models import Thread
from apps.core.thread.hlc import Stamp
from apps.core.thread.op import Op, op_decode, op_sign
from apps.core.threads import services
from apps.core.threads.registry import thread_database


def log_of(thread: Thread) -> list[bytes]:
    """The thread's log here, in log order."""
    database = thread_database(thread.thread)
    rows = database.raw().execute("SELECT raw FROM sereus_ops WHERE place = 'log' ORDER BY n")
    return [bytes(raw) for (raw,) in rows]


def busy_thread(name: str = "Chat", *, renames: int = 3) -> tuple[Thread, nacl.signing.SigningKey]:
    """A thread of this node with ops of two devices: this node's, and a second device of the
    same member (certified here) that wrote after it, so their ops depend on each other."""
    thread = services.thread_create(name=name)
    database = thread_database(thread.thread)
    other = nacl.signing.SigningKey.generate()
    database.write(lambda writer: writer.certify_device(other))
    for n in range(renames):
        database.write(lambda writer, n=n: writer.set_name(f"{name} {n}"))
        database.write(lambda writer, n=n: writer.set_name(f"{name} by B {n}"), device_key=other)
    return thread, other


def forged(
    key: nacl.signing.SigningKey,
    thread: bytes,
    seq: int,
    prev: bytes | None,
    *,
    body: bytes = b"sealed",
    deps: tuple[tuple[bytes, int], ...] = (),
) -> Op:
    return op_sign(
        key,
        body=body,
        thread=thread,
        seq=seq,
        prev=prev,
        deps=deps,
        hlc=Stamp(1_700_000_000_000 + seq, 0),
        epoch=0,
        kind="data",
    )


def party_secret() -> bytes:
    return nacl.utils.random(32)


def mirror_rows(
    master: bytes,
    threads: list[Thread],
    roster: list[bytes] = (),
) -> MirrorParty:
    """The mirror keeps ``threads`` for the party of ``master`` (the first is its control
    thread), with ``roster`` allowed to fetch them."""
    party = MirrorParty.objects.create(party=cadre_keys.party_id(master).hex())
    for index, thread in enumerate(threads):
        MirrorThread.objects.create(
            thread_id=thread.id,
            party=party,
            member=thread.member_id,
            control=index == 0,
            roster=[{"device": d.hex(), "addrs": ["/ip4/127.0.0.1/tcp/1"]} for d in roster],
        )
    return party


def decoded(raws: list[bytes]) -> list[Op]:
    return [op_decode(raw) for raw in raws]
