"""Large batches have their signatures checked in a helper process: the verdicts are exactly
those of checking in the calling thread (a forged or malformed op among good ones is refused,
and only it)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import nacl.signing
import nacl.utils

from apps.core.thread import payloads as p
from apps.core.thread import signatures
from apps.core.thread.replica import IngestResult, verified, verified_ahead
from apps.core.thread.writer import ThreadWriter


def _raws(count: int) -> list[bytes]:
    writer = ThreadWriter.create(
        master_secret=nacl.utils.random(32),
        device_key=nacl.signing.SigningKey.generate(),
        name="signatures",
    )
    for i in range(count):
        writer.write_data([p.RowChange("notes", f"n{i}", p.UPSERT, {"text": f"note {i}"})])
    return [op.raw for op in writer.replica.admitted]


def _in_thread(raws: list[bytes]) -> list[str | None]:
    return signatures.problems(raws)


def test_a_large_batch_is_checked_in_the_helper_with_the_same_verdicts() -> None:
    raws = _raws(signatures.MIN_BATCH + 10)
    forged = bytearray(raws[5])
    forged[-40] ^= 1  # inside the signed bytes: the signature no longer matches
    raws[5] = bytes(forged)
    raws[7] = b"\xa1\x61v\x01"  # not an op at all
    assert signatures.submit(raws) is not None  # large enough for the helper
    found = signatures.check(raws)
    assert found == _in_thread(raws)
    assert [i for i, problem in enumerate(found) if problem is not None] == [5, 7]

    checked = verified(raws)
    assert [type(item) for item in checked.items].count(IngestResult) == 2
    assert checked.items[5].status == "malformed"
    assert checked.items[7].status == "malformed"
    assert [item.raw for item in checked.items if not isinstance(item, IngestResult)] == [
        raw for i, raw in enumerate(raws) if i not in (5, 7)
    ]


def test_a_small_batch_stays_in_the_calling_thread() -> None:
    raws = _raws(3)
    assert signatures.check(raws) is None
    assert all(not isinstance(item, IngestResult) for item in verified(raws).items)


def test_the_helper_ends_when_its_parent_is_killed(tmp_path) -> None:
    """A node killed with kill -9 leaves no helper process behind."""
    raws = _raws(signatures.WORKERS * signatures.MIN_BATCH)
    (tmp_path / "raws").write_bytes(b"".join(len(r).to_bytes(4, "big") + r for r in raws))
    code = f"""
import sys
from pathlib import Path
from apps.core.thread import signatures
blob = Path({str(tmp_path / "raws")!r}).read_bytes()
raws, at = [], 0
while at < len(blob):
    size = int.from_bytes(blob[at : at + 4], "big")
    raws.append(blob[at + 4 : at + 4 + size])
    at += 4 + size
assert signatures.check(raws) == [None] * len(raws)
print(*signatures._pool._processes, flush=True)
sys.stdin.read()
"""
    parent = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[3],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        helpers = [int(pid) for pid in parent.stdout.readline().split()]
        assert helpers
        assert all(_alive(helper) for helper in helpers)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 10 * signatures.PARENT_POLL_S
    while any(_alive(helper) for helper in helpers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(helper) for helper in helpers)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_frames_checked_ahead_come_in_order_with_the_same_verdicts() -> None:
    raws = _raws(2 * signatures.MIN_BATCH)
    raws[3] = raws[3][:-1] + bytes([raws[3][-1] ^ 1])
    frames = [raws[:5], raws[5 : 5 + signatures.MIN_BATCH], raws[5 + signatures.MIN_BATCH :]]
    got = [_seen(checked.items) for checked in verified_ahead(frames)]
    assert got == [_seen(verified(frame).items) for frame in frames]
    assert got[0][3] == ("malformed", "bad op signature")
    assert list(verified_ahead([])) == []


def _seen(items) -> list:
    return [
        (item.status, item.reason) if isinstance(item, IngestResult) else item.raw for item in items
    ]


def test_the_helpers_cpu_time_is_counted() -> None:
    """Benchmarks add the helpers' CPU to the applying process's: it grows as they check."""
    raws = _raws(signatures.WORKERS * signatures.MIN_BATCH)
    assert signatures.check(raws) is not None
    before = signatures.helpers_cpu_s()
    if not Path("/proc/self/stat").exists():  # not Linux: nothing to count with
        assert before is None
        return
    assert before is not None
    for _ in range(20):
        assert signatures.check(raws) == [None] * len(raws)
    after = signatures.helpers_cpu_s()
    assert after is not None
    assert after > before
