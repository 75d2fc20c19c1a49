"""An ingest pauses the cyclic collector and leaves it as it found it."""

from __future__ import annotations

import gc

import nacl.signing
import nacl.utils
import pytest

from apps.core.thread import payloads as p
from apps.core.thread.gcpause import gc_paused
from apps.core.thread.replica import Replica, Verified
from apps.core.thread.writer import ThreadWriter


def test_the_collector_is_paused_during_a_batch_and_restored_after() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer batch is still running
    assert gc.isenabled()


def test_a_collector_turned_off_elsewhere_stays_off() -> None:
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_an_ingest_restores_the_collector_even_when_it_fails() -> None:
    writer = ThreadWriter.create(
        master_secret=nacl.utils.random(32),
        device_key=nacl.signing.SigningKey.generate(),
        name="gc",
    )
    writer.write_data([p.RowChange("notes", "n1", p.UPSERT, {"text": "x"})])
    replica = Replica.for_members(writer.thread, [writer.member_key])
    replica.ingest_many([op.raw for op in writer.replica.admitted])
    assert gc.isenabled()
    with pytest.raises(AttributeError):
        replica.ingest_many(Verified((object(),)))  # type: ignore[arg-type]
    assert gc.isenabled()
