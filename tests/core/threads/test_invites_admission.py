"""The admitting node's half of an invite redemption (``services.invite_admit``): checked against
the control state before anything is written, so a refusal costs no write and no reload of the
replica; the same newcomer admitted again without a write; one answer for "no such invite"."""

from __future__ import annotations

import dataclasses
import time
from datetime import timedelta
from pathlib import Path

import pytest

from apps.core.models import Thread
from apps.core.thread import payloads as p
from apps.core.thread.invite import Invite
from apps.core.thread.writer import RedemptionRequest, redemption_request
from apps.core.threads import admitting, services
from apps.core.threads.database import ThreadDatabase
from apps.core.threads.redemption import NOT_HERE
from tests.core.threads.conftest import OtherNode, log_size, other_node, reloads_counted

pytestmark = pytest.mark.django_db(transaction=True)


def invite_of(thread: Thread, role: str = "writer") -> Invite:
    return services.invite_create(thread=thread, role=role, expires_in=timedelta(hours=1)).invite


def request_of(invite: Invite, joiner: OtherNode) -> RedemptionRequest:
    keys = joiner.keys
    assert keys.master_secret is not None
    return redemption_request(invite, master_secret=keys.master_secret, device_key=keys.device)


def refused(thread: Thread, request: RedemptionRequest) -> tuple[str, str]:
    with pytest.raises(services.ThreadServiceError) as failure:
        services.invite_admit(thread=thread, request=request)
    return failure.value.code, str(failure.value)


@pytest.fixture
def joiners(tmp_path: Path, thread: Thread):
    def make(name: str) -> OtherNode:
        return other_node(tmp_path, thread.thread, name)

    return make


def long_log(database: ThreadDatabase, count: int) -> None:
    """``count`` control ops (this device's addresses, over and over) in one transaction: a
    long log quickly, and one whose reload is not cheap (control ops are decided again)."""

    def write(writer) -> None:
        for i in range(count):
            addrs = (f"/ip4/203.0.113.{i % 250}/tcp/{4000 + i}",)
            writer.control(p.SetAddresses(addrs=addrs))

    database.write(write)


def test_a_refused_redemption_against_a_long_thread_writes_and_reloads_nothing(
    thread, tdb, joiners, monkeypatch
):
    long_log(tdb, 10_000)
    invite = invite_of(thread)
    services.invite_admit(thread=thread, request=request_of(invite, joiners("first")))
    late = request_of(invite, joiners("late"))
    tdb.replica()  # the cache is warm, as on a running node
    size = log_size(tdb)
    reloads = reloads_counted(monkeypatch)
    timings = []
    for _ in range(20):
        started = time.perf_counter()
        assert refused(thread, late)[0] == "used"
        tdb.replica()  # what serving the next request needs
        timings.append(time.perf_counter() - started)
    assert reloads == []
    assert log_size(tdb) == size
    timings.sort()
    assert timings[len(timings) // 2] < 0.005, f"median {timings[len(timings) // 2] * 1000:.1f} ms"


def test_the_same_newcomer_redeeming_again_is_admitted_again_without_a_write(thread, tdb, joiners):
    invite = invite_of(thread)
    joiner = joiners("joiner")
    request = request_of(invite, joiner)
    written = services.invite_admit(thread=thread, request=request)
    assert len(written) == 2  # the redeem op and the new key epoch
    size = log_size(tdb)
    assert services.invite_admit(thread=thread, request=request) == []
    assert log_size(tdb) == size
    # Someone else with the same (used) link is refused.
    assert refused(thread, request_of(invite, joiners("other")))[0] == "used"


def test_no_such_invite_is_one_answer_whatever_the_reason(thread, tdb, joiners, tmp_path):
    joiner = joiners("joiner")
    invite = invite_of(thread)
    made_up = Invite(thread.thread, "writer", invite.expiry, b"m" * 32, "peer", (), "x")
    assert refused(thread, request_of(made_up, joiner)) == ("unknown", NOT_HERE)
    # A known invite without its secret (someone saw its public key): the same.
    forged = dataclasses.replace(request_of(invite, joiner), proof=bytes(64))
    assert refused(thread, forged) == ("unknown", NOT_HERE)
    size = log_size(tdb)
    # A thread this node is not active in: the same again.
    Thread.objects.filter(pk=thread.pk).update(state=Thread.State.LEFT)
    thread.refresh_from_db()
    assert refused(thread, request_of(invite, joiner)) == ("unknown", NOT_HERE)
    assert log_size(tdb) == size


def test_each_refusal_has_its_code_and_writes_nothing(thread, tdb, joiners, monkeypatch):
    joiner = joiners("joiner")
    revoked = invite_of(thread)
    services.invite_revoke(thread=thread, invite_id=revoked.public_key.hex())
    expiring = invite_of(thread)
    member = joiners("member")
    services.invite_admit(thread=thread, request=request_of(invite_of(thread), member))
    again = invite_of(thread)
    size = log_size(tdb)
    assert refused(thread, request_of(revoked, joiner))[0] == "revoked"
    assert refused(thread, request_of(again, member)) == ("conflict", "already a member")
    later = time.time_ns() // 1_000_000 + 2 * 3_600_000
    monkeypatch.setattr(admitting, "_now_ms", lambda: later)
    assert refused(thread, request_of(expiring, joiner))[0] == "expired"
    assert log_size(tdb) == size
