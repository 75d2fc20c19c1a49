"""Ops a hostile member's modified node could send, forged from a stopped node's data with
``manage.py shell -c "from tests.integration.hostile_ops import ...; ..."`` (the node's own
settings), for the hostile-sync integration tests; and junk any key can sign, made in the test
process."""

from __future__ import annotations

import os
import time

import nacl.signing

from apps.core.thread import payloads as p
from apps.core.thread.hlc import Stamp
from apps.core.thread.op import Op, op_seal


def equivocating_ops(thread_hex: str) -> None:
    """Print two different ops this node's device signed at one place (its next seq), as hex,
    one per line: an equivocation. Neither is written here. They set the device's addresses
    (a control op any member device may write, the same in every version of the app schema),
    to closed ports on this machine."""
    from apps.core.threads.registry import thread_database
    from tests.core.thread.conftest import forge

    database = thread_database(bytes.fromhex(thread_hex))
    with database.lock:
        writer = database.writer()
        ops = [
            forge(writer, kind="control", payload=p.control_doc(p.SetAddresses(addrs=(addr,))))
            for addr in ("/ip4/127.0.0.1/tcp/9", "/ip4/127.0.0.1/tcp/10")
        ]
    assert ops[0].id == ops[1].id
    print("\n".join(op.raw.hex() for op in ops))


def forks_print(thread_hex: str) -> None:
    """Print the forks this node's replica of the thread records: ``<device hex> <seq>``."""
    from apps.core.threads.registry import thread_database

    database = thread_database(bytes.fromhex(thread_hex))
    with database.lock:
        forks = database.replica().forks
    print("\n".join(f"{device.hex()} {seq}" for device, seq in sorted(forks.items())))


def junk_ops(thread: bytes, deps: dict[bytes, int], count: int) -> list[Op]:
    """``count`` ops of ``thread``, each signed by a throw-away key (a device nobody certified)
    and depending on ``deps``: validly signed, cheap to make, of no member."""
    stamp = Stamp(time.time_ns() // 1_000_000, 0)
    return [
        op_seal(
            nacl.signing.SigningKey.generate(),
            thread=thread,
            seq=1,
            prev=None,
            deps=deps.items(),
            hlc=stamp,
            epoch=0,
            kind="data",
            seal=lambda _aad: os.urandom(48),
        )
        for _ in range(count)
    ]


def future_op(thread_hex: str) -> None:
    """Print, as hex, an op this node's device signs stamped a day ahead of now (its next seq;
    not written here): a member trying to win every last-writer-wins conflict, or to drag
    every node's clock past the range peers can decode."""
    from apps.core.threads.registry import thread_database
    from tests.core.thread.conftest import forge

    database = thread_database(bytes.fromhex(thread_hex))
    with database.lock:
        writer = database.writer()
        ahead = Stamp(time.time_ns() // 1_000_000 + 24 * 3600 * 1000, 0)
        op = forge(
            writer,
            kind="control",
            payload=p.control_doc(p.SetAddresses(addrs=("/ip4/127.0.0.1/tcp/11",))),
            hlc=ahead,
        )
    print(op.raw.hex())
