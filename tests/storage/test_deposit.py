"""Deposits: the party's control and storage threads go to each friend holder, control thread
first, in order, only what the friend lacks; the friend's mirror store then answers the party
(its "threads" and "page" for a party proof), so a node restored from the phrase finds them; a
friend that does not answer costs nothing and gets the rest later.

The friend's node runs in this process: the holder protocol's transport hands each request to
the real handler (``serve.serve``) as the friend's device, with the owner's party held there as
a joined holding leaves it (``hold_for``)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import nacl.signing
import pytest

from apps.cadre import keys as cadre_keys
from apps.cadre import mirror_serve, mirror_store
from apps.cadre import wire as cadre_wire
from apps.cadre.control import control_thread
from apps.core.identity import peer_id_from_public_key
from apps.core.threads.registry import thread_database
from apps.p2p import client as p2p_client
from apps.p2p.app_protocols import AppRefused, AppRequestError
from apps.storage import deposit, held, serve, space
from apps.storage.models import DepositMark, Holder, Retention
from tests.storage.support import hold_for, now_ms

pytestmark = pytest.mark.django_db(transaction=True)


def _log(thread) -> list[bytes]:
    rows = (
        thread_database(thread.thread)
        .raw()
        .execute("SELECT raw FROM sereus_ops WHERE place = 'log' ORDER BY n")
    )
    return [bytes(raw) for (raw,) in rows]


_SERVING = threading.Lock()


class Friend:
    """Bob's node, in this process: its device key, and whether it answers."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.key = nacl.signing.SigningKey.generate()
        self.device = bytes(self.key.verify_key)
        self.peer_id = peer_id_from_public_key(self.device)
        self.online = True
        self.requests = 0
        # A hostile node: changes its answers (op, decoded answer) -> answer.
        self.tamper: Callable[[str, dict], dict] | None = None
        self.monkeypatch = monkeypatch
        monkeypatch.setattr(p2p_client, "app_request", self.app_request)
        monkeypatch.setattr(mirror_store, "_notify", lambda thread: None)
        monkeypatch.setattr(mirror_serve, "_own_device", lambda: self.device)

    def app_request(
        self, peer_id: str, addrs: list[str], protocol: str, payload: bytes, *, timeout: float
    ) -> bytes:
        assert peer_id == self.peer_id
        if not self.online:
            raise AppRequestError("unreachable", "No connection to that node.")
        self.requests += 1
        asker = space.device_key()
        # One at a time: a patch made from two threads at once is left behind for later tests.
        with _SERVING, pytest.MonkeyPatch.context() as mp:
            # Bob's node: its own device, and a party of its own (not the owner's).
            mp.setattr(serve, "_own_device", lambda: self.device)
            mp.setattr(held, "own_party_id", lambda: None)
            try:
                answer = serve.serve(asker, payload)
            except AppRefused as exc:
                raise AppRequestError("refused", str(exc)) from None
        if self.tamper is not None:
            op = cadre_wire.decode(payload, max_size=8 << 20)["op"]
            answer = cadre_wire.encode(self.tamper(op, cadre_wire.decode(answer, max_size=8 << 20)))
        return answer

    def ask_log(self, doc: dict[str, Any], asker: bytes) -> dict[str, Any]:
        return cadre_wire.decode(
            mirror_serve.serve_log(asker, cadre_wire.encode(doc)), max_size=8 << 20
        )


@pytest.fixture
def bob(node, monkeypatch) -> Friend:
    """The party (this node) with its storage thread and Bob's node as an active holder."""
    friend = Friend(monkeypatch)
    thread = space.storage_ensure()
    space.write(thread, lambda: Retention.objects.create(keep_last=5))
    space.write(
        thread,
        lambda: Holder.objects.create(
            kind=Holder.Kind.PEER,
            device=friend.device.hex(),
            peer_id=friend.peer_id,
            addrs=["/ip4/127.0.0.1/tcp/9"],
            label="Bob",
            quota=1 << 30,
        ),
    )
    hold_for(space.master_secret(), label="Alice")  # on Bob's node: it holds for Alice
    mirror_store.forget()
    yield friend
    mirror_store.forget()


def _proof(purpose: str, asker: bytes, friend: Friend) -> dict:
    return cadre_keys.party_proof_sign(
        space.master_secret(),
        purpose=purpose,
        requester=asker,
        responder=friend.device,
        at_ms=now_ms(),
    )


def test_a_friend_gets_both_threads_and_answers_the_party_for_them(bob) -> None:
    storage, control = space.storage_thread(), control_thread()
    sent = deposit.deposit_step()
    assert sent == len(_log(storage)) + len(_log(control))

    restored = bytes(nacl.signing.SigningKey.generate().verify_key)  # a node from the phrase
    listed = bob.ask_log({"op": "threads", "proof": _proof("threads", restored, bob)}, restored)
    assert [(t["thread"], t["control"], t["ops"]) for t in listed["threads"]] == [
        (control.thread, True, len(_log(control))),
        (storage.thread, False, len(_log(storage))),
    ]
    page = bob.ask_log(
        {
            "op": "page",
            "thread": storage.thread,
            "after": 0,
            "proof": _proof("page", restored, bob),
        },
        restored,
    )
    assert sorted(page["ops"]) == sorted(_log(storage))
    assert page["done"] is True
    # Another party's proof opens nothing there.
    stranger = cadre_keys.party_proof_sign(
        nacl.signing.SigningKey.generate().encode(),
        purpose="threads",
        requester=restored,
        responder=bob.device,
        at_ms=now_ms(),
    )
    with pytest.raises(AppRefused):
        bob.ask_log({"op": "threads", "proof": stranger}, restored)


def test_only_what_the_friend_lacks_is_sent_again(bob) -> None:
    storage = space.storage_thread()
    deposit.deposit_step()
    asked = bob.requests
    assert deposit.deposit_step() == 0
    assert bob.requests == asked  # nothing new: not even a request
    space.write(storage, lambda: Retention.objects.update(keep_last=7))
    assert deposit.deposit_step() == 1
    assert mirror_store.op_count(storage.thread) == len(_log(storage))


def test_a_friend_away_gets_it_all_when_back(bob) -> None:
    storage = space.storage_thread()
    bob.online = False
    assert deposit.deposit_step() == 0
    assert all(m.position == 0 for m in DepositMark.objects.all())
    bob.online = True
    assert deposit.deposit_step() > 0
    assert mirror_store.op_count(storage.thread) == len(_log(storage))
    marks = {m.thread_id: m.position for m in DepositMark.objects.filter(holder=bob.device.hex())}
    assert marks[storage.id] > 0
    assert marks[control_thread().id] > 0


def test_a_long_log_goes_over_several_rounds(bob, monkeypatch) -> None:
    storage = space.storage_thread()
    for n in range(6):
        space.write(storage, lambda n=n: Retention.objects.update(keep_daily=n))
    monkeypatch.setattr("apps.storage.wire.MAX_DEPOSIT_OPS", 2)
    monkeypatch.setattr(deposit, "BATCHES_PER_STEP", 1)
    rounds = 0
    while deposit.deposit_step():
        rounds += 1
        assert rounds < 50
    assert rounds >= len(_log(storage)) // 2
    assert mirror_store.op_count(storage.thread) == len(_log(storage))


def test_our_own_devices_and_holders_that_left_get_no_deposit(bob) -> None:
    storage = space.storage_thread()
    space.write(storage, lambda: Holder.objects.update(state=Holder.State.LEFT))
    space.write(
        storage,
        lambda: Holder.objects.create(
            kind=Holder.Kind.DEVICE, device=space.device_key().hex(), label="This device"
        ),
    )
    assert deposit.deposit_step() == 0
    assert bob.requests == 0
