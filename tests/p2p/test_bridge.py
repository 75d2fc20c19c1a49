"""The asyncio <-> trio bridge: a trio loop in a thread of its own that other threads (plain or
asyncio) hand coroutines to, and that stops cleanly, failing whatever it did not finish."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time

import pytest
import trio

from apps.p2p.bridge import BridgeStopped, TrioThread

NAME = "test-bridge"


async def serve(task_status=trio.TASK_STATUS_IGNORED) -> None:
    """A main task like the node's: ready at once, then runs until cancelled."""
    task_status.started()
    await trio.sleep_forever()


async def add(a: int, b: int) -> int:
    await trio.sleep(0)
    return a + b


async def where() -> str:
    return threading.current_thread().name


async def fail(message: str) -> None:
    await trio.sleep(0)
    raise ValueError(message)


def leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside ``exc``, through any exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaves(inner)]
    return [exc]


@pytest.fixture
def bridge():
    running = TrioThread(name=NAME)
    running.start(serve)
    yield running
    running.stop(timeout=5)


# -- start -----------------------------------------------------------------------------------------


def test_start_returns_once_main_has_called_started():
    steps: list[str] = []

    async def main(task_status=trio.TASK_STATUS_IGNORED):
        await trio.sleep(0.1)  # getting ready takes a while
        steps.append("ready")
        task_status.started()
        await trio.sleep_forever()

    bridge = TrioThread(name=NAME)
    assert not bridge.running
    bridge.start(main)
    try:
        assert steps == ["ready"]
        assert bridge.running
    finally:
        bridge.stop(timeout=5)
    assert not bridge.running


def test_a_bridge_starts_once(bridge):
    with pytest.raises(RuntimeError, match="runs once"):
        bridge.start(serve)
    assert bridge.running


def test_start_reports_the_failure_of_main_before_started():
    async def main(task_status=trio.TASK_STATUS_IGNORED):
        raise OSError(98, "address already in use")

    bridge = TrioThread(name=NAME)
    with pytest.raises(BaseException) as info:  # noqa: PT011 - the exact type is pinned below
        bridge.start(main, timeout=5)
    (leaf,) = leaves(info.value)
    assert isinstance(leaf, OSError)
    assert leaf.errno == 98
    assert not bridge.running
    assert not bridge._thread.is_alive()
    assert bridge.submit(add, 1, 2).exception(timeout=1).__class__ is BridgeStopped


def test_start_raises_exactly_what_main_raised_before_started():
    async def main(task_status=trio.TASK_STATUS_IGNORED):
        raise OSError(98, "address already in use")

    bridge = TrioThread(name=NAME)
    with pytest.raises(OSError, match="address already in use"):
        bridge.start(main, timeout=5)


def test_start_fails_when_main_returns_without_starting():
    async def main(task_status=trio.TASK_STATUS_IGNORED):
        return None

    bridge = TrioThread(name=NAME)
    with pytest.raises(BaseException) as info:  # noqa: PT011 - trio says what went wrong
        bridge.start(main, timeout=5)
    assert any("started" in str(leaf) for leaf in leaves(info.value))
    assert not bridge.running


def test_start_gives_up_after_its_timeout_when_main_never_starts():
    release = threading.Event()

    async def main(task_status=trio.TASK_STATUS_IGNORED):
        # Hangs before started, as a dial that never answers would; cancellable.
        await trio.to_thread.run_sync(release.wait, abandon_on_cancel=True)

    bridge = TrioThread(name=NAME)
    outcome: dict[str, object] = {}

    def starter() -> None:
        try:
            bridge.start(main, timeout=0.2)
        except BaseException as exc:  # recorded for the assertions below
            outcome["error"] = exc

    thread = threading.Thread(target=starter, daemon=True)
    thread.start()
    thread.join(1.0)
    gave_up_in_time = not thread.is_alive()
    release.set()  # let a stuck main end, whatever happened, so nothing leaks
    thread.join(5)
    bridge._thread.join(5)

    assert gave_up_in_time, "start() was still blocked 0.8 s after its 0.2 s timeout"
    assert isinstance(outcome.get("error"), TimeoutError)
    assert "did not start" in str(outcome["error"])


# -- submit and call_soon --------------------------------------------------------------------------


def test_submit_from_a_plain_thread_returns_the_coroutine_result(bridge):
    future = bridge.submit(add, 2, 3)
    assert isinstance(future, concurrent.futures.Future)
    assert future.result(timeout=5) == 5
    assert bridge.submit(where).result(timeout=5) == NAME, "it ran in the trio thread"


def test_submit_from_many_threads_at_once(bridge):
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = list(pool.map(lambda i: bridge.submit(add, i, 1000), range(200)))
    assert [f.result(timeout=5) for f in futures] == [i + 1000 for i in range(200)]


def test_submit_hands_the_coroutine_exception_to_the_caller(bridge):
    future = bridge.submit(fail, "no such peer")
    with pytest.raises(ValueError, match="no such peer"):
        future.result(timeout=5)
    assert bridge.running, "one failed coroutine does not stop the bridge"
    assert bridge.submit(add, 1, 1).result(timeout=5) == 2


def test_submit_before_start_fails_with_bridge_stopped():
    future = TrioThread(name=NAME).submit(add, 1, 2)
    assert isinstance(future.exception(timeout=1), BridgeStopped)


def test_after_stop_submit_fails_and_call_soon_says_false(bridge):
    bridge.stop(timeout=5)
    assert not bridge.running
    future = bridge.submit(add, 1, 2)
    with pytest.raises(BridgeStopped, match="not running"):
        future.result(timeout=1)
    called = threading.Event()
    assert bridge.call_soon(called.set) is False
    assert not called.wait(0.1)


def test_call_soon_runs_the_function_in_the_trio_thread(bridge):
    seen: list[tuple[str, int]] = []
    done = threading.Event()

    def note(value: int) -> None:
        seen.append((threading.current_thread().name, value))
        done.set()

    assert bridge.call_soon(note, 42) is True
    assert done.wait(5)
    assert seen == [(NAME, 42)]


def test_a_failing_call_soon_function_does_not_kill_the_bridge(bridge, caplog):
    caplog.set_level(logging.CRITICAL, logger="apps.p2p.bridge")

    def broken() -> None:
        raise KeyError("gone")

    assert bridge.call_soon(broken)
    time.sleep(0.2)
    assert bridge.running
    assert bridge.submit(add, 1, 1).result(timeout=5) == 2


# -- stop ------------------------------------------------------------------------------------------


def test_stop_cancels_running_coroutines_and_ends_the_thread():
    cleaned_up = threading.Event()

    async def forever() -> None:
        try:
            await trio.sleep_forever()
        finally:
            cleaned_up.set()

    bridge = TrioThread(name=NAME)
    bridge.start(serve)
    future = bridge.submit(forever)
    time.sleep(0.05)
    assert future.running()

    began = time.monotonic()
    bridge.stop(timeout=5)
    assert time.monotonic() - began < 5
    assert not bridge._thread.is_alive()
    assert not bridge.running
    assert cleaned_up.is_set()
    with pytest.raises(BridgeStopped, match="stopped"):
        future.result(timeout=1)


def test_stop_twice_is_harmless(bridge):
    bridge.stop(timeout=5)
    bridge.stop(timeout=5)
    assert not bridge.running


def test_stop_raises_when_the_thread_does_not_end_in_time():
    release = threading.Event()

    async def stubborn(task_status=trio.TASK_STATUS_IGNORED):
        task_status.started()
        # Not cancellable: the thread keeps running until released.
        await trio.to_thread.run_sync(release.wait)

    bridge = TrioThread(name=NAME)
    bridge.start(stubborn)
    try:
        with pytest.raises(TimeoutError, match="did not stop"):
            bridge.stop(timeout=0.2)
    finally:
        release.set()
        bridge._thread.join(5)
    assert not bridge._thread.is_alive()


def test_every_future_resolves_when_submit_races_stop(caplog):
    caplog.set_level(logging.CRITICAL, logger="apps.p2p.bridge")
    for _ in range(60):  # a race: one round in four or so loses it
        bridge = TrioThread(name=NAME)
        bridge.start(serve)
        futures: list[concurrent.futures.Future] = []
        submitting = threading.Event()

        def submit_while_alive(
            target: TrioThread = bridge,
            futures: list = futures,
            submitting: threading.Event = submitting,
        ) -> None:
            submitting.set()
            while target._thread.is_alive() and len(futures) < 100_000:
                futures.append(target.submit(add, 1, 1))
                time.sleep(0)  # a steady stream, not a flood that keeps the nursery open

        submitter = threading.Thread(target=submit_while_alive, daemon=True)
        submitter.start()
        submitting.wait(5)
        time.sleep(0.01)
        bridge.stop(timeout=5)
        submitter.join(5)
        _done, pending = concurrent.futures.wait(futures, timeout=0.3)
        assert not pending, f"{len(pending)} of {len(futures)} futures never resolved"


# -- from asyncio ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_asyncio_awaits_a_submitted_coroutine_without_blocking_its_loop(bridge):
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    ticker = asyncio.ensure_future(tick())

    async def slow_add(a: int, b: int) -> int:
        await trio.sleep(0.2)
        return a + b

    try:
        assert await asyncio.wrap_future(bridge.submit(slow_add, 20, 22)) == 42
    finally:
        ticker.cancel()
    assert ticks >= 5, "the asyncio loop ran while the trio coroutine slept"

    with pytest.raises(ValueError, match="refused"):
        await asyncio.wrap_future(bridge.submit(fail, "refused"))
