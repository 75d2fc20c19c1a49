"""Audits: a holder that has its shares proves it round after round; a share it lost is
MISSING, a wrong or replayed answer CORRUPT and the holder FAILING in words; a holder that does
not answer is UNREACHABLE, not dialed again every round, and counts as gone only after three
checks; the answers of a share used up are emptied for repair to refresh."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from apps.storage import audit, client, engine, held, hold, keys, space
from apps.storage.models import Chunk, Holder, Share
from tests.storage.test_deposit import bob  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)

HOUR = 3600 * 1000


@pytest.fixture(autouse=True)
def _fresh():
    audit.forget()
    yield
    audit.forget()


def _rows(model, **filters) -> list:
    return list(model.objects.using(space.using(space.storage_thread())).filter(**filters))


def _me() -> Holder:
    space.storage_ensure()
    hold.holders_refresh()
    return _rows(Holder, kind=Holder.Kind.DEVICE)[0]


def _place(holder: Holder, count: int, *, audits: int = 0) -> list[Share]:
    """``count`` one-share chunks kept by ``holder``, with their expected answers."""
    thread = space.storage_thread()
    key = keys.audit_key(space.master_secret())
    datas = [os.urandom(2000) for _ in range(count)]
    client.put(client.target_of(holder), datas)

    def write() -> list[Share]:
        made = []
        for data in datas:
            digest = keys.share_digest(data)
            chunk = Chunk.objects.create(
                key=os.urandom(32).hex(), size=1000, packed=2000, k=1, n=1, state="placed"
            )
            start = audit.block_start(audits)
            answers = engine.audit_answers(
                data, digest, audit=key, start=start, rounds=engine.AUDIT_ROUNDS
            )
            made.append(
                Share.objects.create(
                    chunk=chunk.pk,
                    index=0,
                    holder=holder.pk,
                    digest=digest.hex(),
                    size=len(data),
                    state="placed",
                    answers=answers,
                    audits=audits,
                )
            )
        return made

    return space.write(thread, write)


def _share(share: Share) -> Share:
    return _rows(Share, pk=share.pk)[0]


def _holder(holder: Holder) -> Holder:
    return _rows(Holder, pk=holder.pk)[0]


def test_a_holder_with_its_shares_proves_it_round_after_round(node) -> None:
    me = _me()
    shares = _place(me, 3)
    now = audit.clock_ms()
    done = audit.audit_step(now_ms=now)
    assert done == {"holders": 1, "verified": 3, "missing": 0, "corrupt": 0, "unreachable": 0}
    assert [(_share(s).audits, _share(s).verified_ms) for s in shares] == [(1, now)] * 3
    row = _holder(me)
    assert (row.state, row.verified_ms, row.seen_ms, row.problem) == ("active", now, now, "")
    assert row.used == held.held_usage(held.own_party())["used"] > 0
    # Not due again within the check interval; due after it, with the next round's nonces.
    assert audit.audit_step(now_ms=now + 1000)["holders"] == 0
    later = now + audit.check_ms() + 1
    assert audit.audit_step(now_ms=later)["verified"] == 3
    assert {_share(s).audits for s in shares} == {2}


def test_a_share_the_holder_lost_is_missing_and_said_so(node) -> None:
    me = _me()
    lost, kept = _place(me, 2)
    held.held_release(held.own_party(), [bytes.fromhex(lost.digest)])
    done = audit.audit_step(force=True)
    assert (done["verified"], done["missing"]) == (1, 1)
    assert _share(lost).state == "missing"
    assert _share(kept).state == "placed"
    row = _holder(me)
    assert row.state == "active"  # came back empty is not lying: repair makes it again
    assert "no longer had 1 share on" in row.problem


def test_a_wrong_answer_marks_the_share_corrupt_and_the_holder_failing(bob) -> None:  # noqa: F811
    friend = _rows(Holder, kind=Holder.Kind.PEER)[0]
    good, bad = _place(friend, 2)

    def lie(op: str, answer: dict) -> dict:
        if op == "audit":
            answer["answers"][1] = bytes(32)
        return answer

    bob.tamper = lie
    now = audit.clock_ms()
    done = audit.audit_step(now_ms=now, force=True)
    assert (done["verified"], done["corrupt"]) == (1, 1)
    assert _share(good).state == "placed"
    assert _share(bad).state == "corrupt"
    row = _holder(friend)
    assert row.state == "failing"
    assert row.problem.startswith(
        f"Bob's node answered wrongly for 1 share on {audit.day_words(now)}"
    )


def test_a_holder_answering_nonsense_fails_in_words_and_its_shares_are_remade(
    bob,  # noqa: F811
) -> None:
    friend = _rows(Holder, kind=Holder.Kind.PEER)[0]
    shares = _place(friend, 2)

    def nonsense(op: str, answer: dict) -> dict:
        if op == "audit":
            answer["answers"] = [b"short", 7]
        return answer

    bob.tamper = nonsense
    done = audit.audit_step(force=True)
    assert done["missing"] == 2
    assert {_share(s).state for s in shares} == {"missing"}
    row = _holder(friend)
    assert row.state == "failing"
    assert row.problem.startswith("Bob's node answered something this node cannot read.")
    assert "Traceback" not in row.problem


def test_an_answer_replayed_from_an_earlier_round_fails(bob) -> None:  # noqa: F811
    friend = _rows(Holder, kind=Holder.Kind.PEER)[0]
    (share,) = _place(friend, 1)
    seen: list[bytes] = []

    def replay(op: str, answer: dict) -> dict:
        if op == "audit":
            if seen:
                answer["answers"] = [seen[0]]  # it kept an old answer, not the share
            else:
                seen.append(answer["answers"][0])
        return answer

    bob.tamper = replay
    assert audit.audit_step(force=True)["verified"] == 1
    assert audit.audit_step(force=True)["corrupt"] == 1
    assert _share(share).state == "corrupt"


def test_a_holder_that_does_not_answer_is_unreachable_and_gone_only_after_three_checks(
    bob,  # noqa: F811
) -> None:
    friend = _rows(Holder, kind=Holder.Kind.PEER)[0]
    (share,) = _place(friend, 1)
    now = audit.clock_ms()
    assert audit.audit_step(now_ms=now)["verified"] == 1
    bob.online = False
    later = now + audit.check_ms() + 1
    assert audit.audit_step(now_ms=later)["unreachable"] == 1
    row = _holder(friend)
    assert row.state == "unreachable"
    assert row.seen_ms == now
    assert f"has not answered since {audit.day_words(now)}" in row.problem
    assert _share(share).state == "placed"  # asleep is not lost
    assert audit.audit_step(now_ms=later + 30_000)["holders"] == 0  # not dialed every round
    assert not audit.holder_gone(row, now=later)
    assert audit.holder_gone(row, now=now + audit.AWAY_CHECKS * audit.check_ms() + 1)
    # Back: active again, its problem cleared.
    bob.online = True
    assert audit.audit_step(now_ms=later + audit.check_ms() + 1)["verified"] == 1
    row = _holder(friend)
    assert (row.state, row.problem) == ("active", "")


def test_answers_used_up_are_emptied_for_repair_to_refresh(node) -> None:
    me = _me()
    (share,) = _place(me, 1, audits=engine.AUDIT_ROUNDS * 2 - 1)
    assert audit.audit_step(force=True)["verified"] == 1
    row = _share(share)
    assert (row.audits, bytes(row.answers)) == (engine.AUDIT_ROUNDS * 2, b"")
    # Nothing left to ask: it is not audited until refreshed.
    assert audit.audit_step(force=True)["verified"] == 0


def test_a_share_whose_chunk_was_pruned_is_not_audited(node) -> None:
    me = _me()
    gone, _kept = _place(me, 2)
    thread = space.storage_thread()
    space.write(thread, lambda: Chunk.objects.filter(pk=gone.chunk).delete())
    assert audit.audit_step(force=True)["verified"] == 1
    assert _share(gone).audits == 0


def test_the_check_interval_is_the_setting(node, settings) -> None:
    settings.SEREUS = replace(settings.SEREUS, storage_check_seconds=60)
    assert audit.check_ms() == 60_000


# -- the worker that runs the checks ---------------------------------------------------------


def test_the_worker_runs_every_step_in_order_one_failing_alone(node, monkeypatch) -> None:
    from apps.storage import worker

    ran: list[str] = []

    def step(name: str, fail: bool = False):
        def run() -> None:
            ran.append(name)
            if fail:
                raise RuntimeError("a step failed")

        return run

    paths = (*worker.STEPS, worker.PRUNE)
    names = [p.rpartition(":")[2] for p in paths]
    monkeypatch.setattr(
        worker,
        "_resolved",
        {p: step(n, fail=n == "deposit_step") for p, n in zip(paths, names, strict=True)},
    )
    worker.forget()
    worker.run_steps()
    assert ran == names  # the first round prunes too
    ran.clear()
    worker.run_steps()
    assert ran == names[:-1]  # retention at most hourly
    ran.clear()
    worker.run_steps(prune=True)
    assert ran == names


def test_ops_in_the_storage_thread_wake_the_worker_and_others_do_not(node) -> None:
    from apps.core.threads import services as thread_services
    from apps.storage import worker

    storage = space.storage_ensure()
    chat = thread_services.thread_create(name="Chat")
    worker.forget()
    worker._wake.clear()
    worker.on_ops_written(chat.thread)  # the first call learns the ids (and may wake once)
    worker._wake.clear()
    worker.on_ops_written(chat.thread)
    assert not worker._wake.is_set()
    worker.on_ops_written(storage.thread)
    assert worker._wake.is_set()
    worker._wake.clear()
    worker.forget()
