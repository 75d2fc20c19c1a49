"""The ledger (issue 14), with the floors of the same run:

- chit on A -> balance on B: two real nodes (``runnode`` processes on 127.0.0.1) share a tally
  (limits 100 000 each way) and a conversation. A sample runs from A's payment of 1
  (``POST /api/v1/threads/{id}/chits/``) to the first answer of B's tally
  (``GET /api/v1/threads/{id}/tally/``, polled back to back on a kept-alive connection) that
  counts it (its place in the chain and the balance). Beside it, alternating with it: A's
  message send to the first answer of B's messages list that holds it. p50/p99 over 1 000 of
  each (100 with ``--quick``), after 20 of each to warm up.
- a tally's catch-up: 100 000 payment chits (5 000 with ``--quick``) written in process by the
  two parties' own writers, payers alternating, each on top of the one before (each writer's
  replica takes the other's chit before it writes); then a fresh replica holding both parties'
  member keys (an auditor) ingests every op of the thread in 256-op frames, the tally's rules
  judging each chit. Floor: as many plain data ops of the same shape (two writers alternating,
  one row of the same columns each, in an ordinary table, no rules), ingested the same way.
- a lift around a cycle of 5 tallies: 5 real nodes, node i owes node i+1 (mod 5) in their
  tally. Node 0 starts a lift of 1 (``POST /api/v1/lifts/``); a sample runs from the POST until
  every tally, read on both of its nodes, holds nothing for the lift and shows the balance
  cleared by 1. 20 lifts (5 with ``--quick``), one after another; then as many again with
  node 2 slow: frozen (SIGSTOP) for ``PAUSE_S`` in every ``PAUSE_S + RUN_S`` seconds.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nacl.signing
import nacl.utils

from bench.report import figure
from bench.request_path import KeptAlive
from bench.stats import ms, percentiles
from tests.support.api import wait_for
from tests.support.p2p import Peer

FRAME = 256  # ops per sync frame, as a catch-up takes them
WARM = 20  # samples of each kind thrown away first
RING = 5
DEBT = "100"  # what each node of the ring owes the next before the lifts
LIFT = "1"
LIFT_MILLI = 1_000
PAUSE_S, RUN_S = 0.5, 0.5  # the slow node: frozen this long, then running this long, again


# -- the catch-up, in process -------------------------------------------------------------------


@dataclass
class _Party:
    """A person: a master secret and one device."""

    master: bytes
    device: nacl.signing.SigningKey

    @classmethod
    def new(cls) -> _Party:
        return cls(nacl.utils.random(32), nacl.signing.SigningKey.generate())

    def member_key(self, thread: bytes) -> nacl.signing.SigningKey:
        from apps.core.thread import keys

        return keys.member_key(self.master, thread)


def _pair(app: str | None, role: str) -> tuple[Any, Any, list[_Party]]:
    """A thread its first party owns, the second joined at ``role``: their writers, each
    replica holding everything the other wrote."""
    from apps.core.thread import payloads as p
    from apps.core.thread.policy import policy_template
    from apps.core.thread.replica import Replica
    from apps.core.thread.writer import ThreadWriter, redemption_request

    alice, bob = _Party.new(), _Party.new()
    given: dict[str, Any] = {"app": app, "policy": policy_template(app)} if app else {}
    first = ThreadWriter.create(
        master_secret=alice.master, device_key=alice.device, name="Bench", **given
    )
    if app:
        from apps.ledger.policy import ledger_spec

        first.control(p.EnableApp(ledger_spec()))
    expiry = time.time_ns() // 1_000_000 + 3_600_000
    invite = first.invite_create(role=role, expiry=expiry, inviter="peer")
    first.admit(redemption_request(invite, master_secret=bob.master, device_key=bob.device))
    second = ThreadWriter.for_member(
        Replica.for_members(first.thread), master_secret=bob.master, device_key=bob.device
    )
    _share(first, second)
    return first, second, [alice, bob]


def _share(source: Any, target: Any) -> None:
    for op in source.replica.admitted:
        target.replica.ingest(op.raw)


def _signed_tally() -> tuple[Any, Any, list[_Party], Any]:
    """A tally both parties named themselves in and signed; its first chain state."""
    from apps.core.thread import payloads as p
    from apps.core.thread.countersign import signature_change
    from apps.core.thread.lww import materialize
    from apps.ledger import rules
    from apps.ledger.amounts import unit_data, unit_parse
    from apps.ledger.policy import CONTRACT, PARTNER

    owner, partner, parties = _pair("tally", PARTNER)
    terms = {
        "unit": json.dumps(unit_data(unit_parse("CHIP"))),
        "owner_limit": 1_000_000,
        "partner_limit": 1_000_000,
        "comment": "",
        "parties": owner.member,
    }
    owner.write_data([p.RowChange(CONTRACT, rules.CONTRACT_ID, p.UPSERT, terms)])
    _share(owner, partner)
    both = {"parties": owner.member + partner.member}
    partner.write_data([p.RowChange(CONTRACT, rules.CONTRACT_ID, p.UPSERT, both)])
    _share(partner, owner)
    for writer, party in ((owner, parties[0]), (partner, parties[1])):
        contract = materialize(writer.replica.accepted_data())[CONTRACT][rules.CONTRACT_ID]
        key = party.member_key(writer.thread)
        writer.write_data([signature_change(rules.SPEC, key, rules.CONTRACT_ID, contract)])
        _share(writer, partner if writer is owner else owner)
    contract = materialize(owner.replica.accepted_data())[CONTRACT][rules.CONTRACT_ID]
    return owner, partner, parties, rules.start_state(contract)


def _columns(payer: bytes, before: Any, after: Any) -> dict[str, Any]:
    return {
        "kind": "payment", "payer": payer, "unit": "CHIP", "amount": LIFT_MILLI, "memo": "",
        "reference": "", "invoice": None, "prev": before.pk, "seq": after.seq,
        "balance": after.balance, "owner_limit": after.owner_limit,
        "partner_limit": after.partner_limit, "closing": after.closing, "intent": None,
    }  # fmt: skip


def _chits(count: int) -> tuple[bytes, list[Any], list[bytes]]:
    """A signed tally with ``count`` payments of 1, payers alternating: the thread, its
    parties' member keys and its ops in the order a catch-up sends them."""
    from dataclasses import replace

    from apps.core.thread import payloads as p
    from apps.core.thread.rowid import row_id_new
    from apps.ledger import rules
    from apps.ledger.policy import CHIT

    owner, partner, parties, state = _signed_tally()
    for i in range(count):
        writer, other = (owner, partner) if i % 2 == 0 else (partner, owner)
        after, problem = rules.next_state(state, rules.PAYMENT, LIFT_MILLI, writer is owner)
        assert after is not None, problem
        pk = row_id_new(writer.member).hex
        op = writer.write_data(
            [p.RowChange(CHIT, pk, p.UPSERT, _columns(writer.member, state, after))]
        )
        other.replica.ingest(op.raw)  # the next payer writes on top of this one
        state = replace(after, pk=pk)
    assert owner.replica.accepted_hashes() == partner.replica.accepted_hashes()
    keys = [party.member_key(owner.thread) for party in parties]
    return owner.thread, keys, [op.raw for op in owner.replica.admitted]


def _plain(count: int) -> tuple[bytes, list[Any], list[bytes]]:
    """As many plain data ops, same writers' pattern and row columns, no rules."""
    from apps.core.thread import payloads as p
    from apps.core.thread.rowid import row_id_new
    from apps.ledger import rules

    first, second, parties = _pair(None, "writer")
    state = rules.State(rules.CONTRACT_ID, 0, 0, 1_000_000, 1_000_000, False)
    for i in range(count):
        writer, other = (first, second) if i % 2 == 0 else (second, first)
        pk = row_id_new(writer.member).hex
        cols = _columns(writer.member, state, state)
        op = writer.write_data([p.RowChange("notes", pk, p.UPSERT, cols)])
        other.replica.ingest(op.raw)
        state = rules.State(pk, i + 1, 0, 1_000_000, 1_000_000, False)
    keys = [party.member_key(first.thread) for party in parties]
    return first.thread, keys, [op.raw for op in first.replica.admitted]


def _ingest_s(thread: bytes, keys: list[Any], raws: list[bytes], rounds: int) -> float:
    """Best seconds of a fresh replica holding ``keys`` ingesting ``raws`` in frames."""
    from apps.core.thread.replica import Replica

    best = float("inf")
    for _ in range(rounds):
        replica = Replica.for_members(thread, keys)
        started = time.perf_counter()
        for i in range(0, len(raws), FRAME):
            replica.ingest_many(raws[i : i + FRAME])
        best = min(best, time.perf_counter() - started)
        assert len(replica.accepted_hashes()) == len(raws), "every op is accepted"
    return best


def _catch_up(count: int, rounds: int) -> dict[str, Any]:
    began = time.perf_counter()
    tally = _chits(count)
    written = time.perf_counter() - began
    print(f"   wrote {count} chits in {written:.0f} s", flush=True)
    plain = _plain(count)
    chits_s = _ingest_s(*tally, rounds)
    plain_s = _ingest_s(*plain, rounds)
    chits_rate, plain_rate = len(tally[2]) / chits_s, len(plain[2]) / plain_s
    ratio = chits_rate / plain_rate
    return {
        "chits": count,
        "ops": len(tally[2]),
        "write_s": round(written, 1),
        "chits_ops_per_s": round(chits_rate),
        "plain_ops_per_s": round(plain_rate),
        "ratio": round(ratio, 3),
        "figures": [
            figure(
                f"tally catch-up, {count} chits, {FRAME}-op frames, rules judging",
                round(chits_rate),
                "ops/s",
                floor=f"plain data ops of the same shape {round(plain_rate)} ops/s",
            ),
            figure("tally catch-up / plain data ops", round(ratio * 100, 1), "% of floor"),
        ],
    }


# -- the nodes ------------------------------------------------------------------------------------


def _tally(api: Any, thread: str) -> dict[str, Any] | None:
    try:
        return api.get(f"/api/v1/threads/{thread}/tally/")
    except AssertionError:  # not there yet
        return None


def _open_tally(owner: Peer, partner: Peer, limit: str) -> str:
    assert owner.api is not None
    assert partner.api is not None
    proposed = owner.api.post(
        "/api/v1/tallies/",
        {"name": "Bench", "unit": "CHIP", "my_limit": limit, "partner_limit": limit},
    )
    thread = proposed["thread"]
    partner.redeem(proposed["invite"])
    wait_for(lambda: _tally(partner.api, thread), timeout=90, what="the contract on the partner")
    partner.api.post(f"/api/v1/threads/{thread}/tally/sign/")
    for api in (owner.api, partner.api):
        wait_for(
            lambda a=api: (t := _tally(a, thread)) and t["state"] == "open",
            timeout=60,
            what="the tally open on both nodes",
        )
    return thread


def _until(read: KeptAlive, path: str, done: Any, began: float, what: str) -> float:
    """Poll ``path`` back to back until ``done(answer)``; seconds since ``began``."""
    while True:
        if done(read.request("GET", path)):
            return time.perf_counter() - began
        if time.perf_counter() - began > 60:
            raise AssertionError(f"{what}: not seen after 60 s")


def _payments(a: Peer, b: Peer, count: int) -> dict[str, Any]:
    assert a.api is not None
    assert a.token
    assert b.token
    tally = _open_tally(a, b, "100000")
    chat = a.api.post("/api/v1/threads/", {"name": "Bench chat", "app": "messaging"})["id"]
    b.redeem(a.invite(chat))
    wait_for(
        lambda: b.api.get(f"/api/v1/threads/{chat}/")["state"] == "active",  # type: ignore[union-attr]
        timeout=90,
        what="the join",
    )
    chits, messages = f"/api/v1/threads/{tally}/chits/", f"/api/v1/threads/{chat}/messages/"
    on_b = f"/api/v1/threads/{tally}/tally/"
    on_a, read = KeptAlive(a.process.url, a.token), KeptAlive(b.process.url, b.token)
    samples: dict[str, list[float]] = {"chit": [], "message": []}
    try:
        for i in range(WARM + count):
            began = time.perf_counter()
            made = on_a.request("POST", chits, {"kind": "payment", "amount": "1"})
            seq, owed = made["seq"], -made["balance"]  # B's balance is A's negated

            def counted(t: dict, seq: int = seq, owed: int = owed) -> bool:
                return t["chits"] >= seq and t["balance"] == owed

            took = _until(read, on_b, counted, began, "the payment on B")
            began = time.perf_counter()
            sent = on_a.request("POST", messages, {"text": f"message {i}"})["id"]
            seen = _until(
                read, messages, lambda m, s=sent: any(x["id"] == s for x in m), began, "a message"
            )
            if i >= WARM:
                samples["chit"].append(took)
                samples["message"].append(seen)
    finally:
        on_a.close()
        read.close()
    chit, message = percentiles(samples["chit"]), percentiles(samples["message"])
    ratio = chit["p50_ms"] / message["p50_ms"]
    floor = f"message send -> listed on B, same run: p50 {message['p50_ms']} ms"
    return {
        "samples": count,
        "chit_to_balance": chit,
        "message_to_list": message,
        "ratio_p50": round(ratio, 2),
        "figures": [
            figure(
                "payment on A's API -> balance on B's API, p50",
                chit["p50_ms"],
                "ms",
                higher=False,
                floor=floor,
            ),
            figure(
                "payment on A's API -> balance on B's API, p99",
                chit["p99_ms"],
                "ms",
                higher=False,
                floor=f"message p99 {message['p99_ms']} ms",
            ),
            figure("payment -> balance / message -> list, p50", round(ratio, 2), "x", higher=False),
        ],
    }


@contextmanager
def _slowed(peer: Peer) -> Iterator[None]:
    """Freeze ``peer``'s process for ``PAUSE_S`` in every ``PAUSE_S + RUN_S`` seconds."""
    assert peer.process.proc is not None
    pid, stop = peer.process.proc.pid, threading.Event()

    def pauses() -> None:
        while not stop.is_set():
            os.kill(pid, signal.SIGSTOP)
            try:
                stop.wait(PAUSE_S)
            finally:
                os.kill(pid, signal.SIGCONT)
            stop.wait(RUN_S)

    worker = threading.Thread(target=pauses, daemon=True)
    worker.start()
    try:
        yield
    finally:
        stop.set()
        worker.join()
        os.kill(pid, signal.SIGCONT)


def _lift_round(reads: list[KeptAlive], ring: list[str], owed: int) -> float:
    """One lift of 1 started by node 0: seconds from its POST until every tally, on both of
    its nodes, holds nothing and shows the debt ``owed`` less 1."""
    began = time.perf_counter()
    made = reads[0].request(
        "POST", "/api/v1/lifts/", {"amount": LIFT, "route": [ring[0], ring[-1]]}
    )
    left = owed - LIFT_MILLI
    took = 0.0
    for i, thread in enumerate(ring):  # node i owes node i + 1 in ring[i]
        for node, balance in ((i, -left), ((i + 1) % RING, left)):

            def cleared(t: dict, balance: int = balance) -> bool:
                return t["held"] == 0 and t["balance"] == balance

            path = f"/api/v1/threads/{thread}/tally/"
            took = _until(reads[node], path, cleared, began, "the lift on every tally")
    state = reads[0].request("GET", f"/api/v1/lifts/{made['id']}/")
    assert state["state"] == "committed", state
    return took


def _lifts(peers: list[Peer], count: int) -> dict[str, Any]:
    ring = [_open_tally(peers[i], peers[(i + 1) % RING], "1000") for i in range(RING)]
    for i, thread in enumerate(ring):
        api = peers[i].api
        assert api is not None
        api.post(f"/api/v1/threads/{thread}/chits/", {"kind": "payment", "amount": DEBT})
    owed = int(DEBT) * 1000
    for i, thread in enumerate(ring):
        creditor = peers[(i + 1) % RING].api
        wait_for(
            lambda c=creditor, t=thread: (x := _tally(c, t)) and x["balance"] == owed,
            timeout=60,
            what="the debts around the ring",
        )
    reads = [KeptAlive(p.process.url, p.token or "") for p in peers]
    samples: dict[str, list[float]] = {"plain": [], "slow": []}
    probes: dict[str, dict[str, float]] = {}
    try:
        _lift_round(reads, ring, owed)  # warm-up
        owed -= LIFT_MILLI
        for kind in ("plain", "slow"):
            with _slowed(peers[2]) if kind == "slow" else _nothing():
                probes[kind] = _probe(reads[2])
                for _ in range(count):
                    samples[kind].append(_lift_round(reads, ring, owed))
                    owed -= LIFT_MILLI
    finally:
        for read in reads:
            read.close()
    plain, slow = (_p95(samples[k]) for k in ("plain", "slow"))
    slow_text = f"node 2 of {RING} frozen (SIGSTOP) {ms(PAUSE_S):.0f} ms in every "
    slow_text += f"{ms(PAUSE_S + RUN_S):.0f} ms"
    return {
        "lifts": count,
        "plain": plain,
        "slow": slow,
        "slow_means": slow_text,
        "node_2_get": probes,
        "figures": [
            figure(
                f"lift around {RING} tallies, POST -> cleared on every tally (both sides), p50",
                plain["p50_ms"],
                "ms",
                higher=False,
                floor=f"p95 {plain['p95_ms']} ms over {count} lifts",
            ),
            figure(
                f"the same with one node slow ({slow_text}), p50",
                slow["p50_ms"],
                "ms",
                higher=False,
                floor=f"p95 {slow['p95_ms']} ms over {count} lifts; a GET of node 2: p50 "
                f"{probes['slow']['p50_ms']} ms, max {probes['slow']['max_ms']} ms (not slowed: "
                f"max {probes['plain']['max_ms']} ms)",
            ),
        ],
    }


def _probe(read: KeptAlive) -> dict[str, float]:
    """A trivial GET of a node at random moments: shows what "slow" does to its answers."""
    taken = []
    for _ in range(20):
        time.sleep(random.uniform(0, 0.3))
        began = time.perf_counter()
        read.request("GET", "/api/v1/node/")
        taken.append(time.perf_counter() - began)
    return percentiles(taken)


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def _p95(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    found = percentiles(ordered)
    found["p95_ms"] = ms(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))])
    return found


def run(*, quick: bool = False) -> dict[str, Any]:
    result: dict[str, Any] = {}
    took: dict[str, float] = {}  # wall seconds of each part, set-up included
    result["wall_s"] = took
    began = time.perf_counter()
    result["catch_up"] = _catch_up(5_000 if quick else 100_000, 3 if quick else 1)
    took["catch_up"] = round(time.perf_counter() - began, 1)
    folder = tempfile.mkdtemp(prefix="sereus-bench-ledger-")
    peers = [Peer(Path(folder) / f"n{i}") for i in range(RING)]
    try:
        with ThreadPoolExecutor(RING) as pool:
            for future in [pool.submit(p.start) for p in peers]:
                future.result()
        began = time.perf_counter()
        result["payments"] = _payments(peers[0], peers[1], 100 if quick else 1_000)
        took["payments"] = round(time.perf_counter() - began, 1)
        began = time.perf_counter()
        result["lifts"] = _lifts(peers, 5 if quick else 20)
        took["lifts"] = round(time.perf_counter() - began, 1)
    finally:
        for peer in peers:
            if peer.process.proc is not None and peer.process.proc.poll() is None:
                peer.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return result


if __name__ == "__main__":
    sys.exit("run it as: python -m bench ledger")
