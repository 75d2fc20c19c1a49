"""Voting (polls in threads), with floors measured in the same run:

- a ballot cast on node A's API, counted on node B's API: two real nodes (``runnode`` processes on
  127.0.0.1), both members of a conversation with voting enabled and a ranked poll of 4 options
  opened by A. Only A votes, and re-votes for each sample with a new first choice, so B's live
  result (its winner) says whether B counted A's latest ballot; B's turnout stays at 1, since
  a re-vote replaces the ballot. A sample runs from A's PUT to the first answer of B's poll
  endpoint (polled back to back on a kept-alive connection, as soon as A answered) that shows
  the new winner: so it includes one GET of B's poll (its p50 is printed) and measures the
  latency of a changed ballot, not of a first one. p50/p99 over 500 ballots. Floor: the same PUT
  and GET on A alone (the HTTP and database cost with no network in between).
- tally of 10 000 ranked ballots over 10 options (``apps.voting.tally.tally``, in process):
  seeded random rankings of 1 to 10 options, nearly all distinct (the worst case for grouping
  identical rankings). Baseline: counting the same ballots' first preferences in a plain loop,
  the least any count of them does. Also reported: ``results.poll_result`` over the same
  ballots as rows (reading each one's JSON, hashing the counted ballots, the tally), which every
  read of a closed poll on a node computes.
- a secret approval poll, 1 000 ballots of 5 options, 2 of 3 trustees: ``crypto.ballot_check``
  (the rule every replica applies to each ballot) in ballots/s, against the bare floor: the raw
  pysodium scalar multiplications one check makes (counted by calling through counters), timed
  in the same run. And the final decryption: ``crypto.aggregate`` of the 1 000 ballots, 2 of the
  3 trustees' ``partial_make`` each checked with ``partial_check``, and ``crypto.result``
  (opening the trustees' shares is set-up, outside the clock).
"""

from __future__ import annotations

import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nacl.signing
import pysodium

from apps.voting import crypto, results
from apps.voting.shape import ballot_context, ballot_json, poll_context, poll_shape
from apps.voting.tally import tally
from bench.report import figure
from bench.request_path import KeptAlive
from bench.stats import ms, percentiles
from tests.support.api import wait_for
from tests.support.p2p import Peer

OPTIONS = ["Saturday", "Sunday", "Monday", "Tuesday"]
TALLY_BALLOTS, TALLY_OPTIONS = 10_000, 10
TALLY_TARGET = 1000  # ms: "well under 1 s" for 10 000 ranked ballots of 10 options
SECRET_BALLOTS, SECRET_OPTIONS, THRESHOLD, TRUSTEES = 1_000, 5, 2, 3


# -- (a) a ballot between two nodes -----------------------------------------------------------


def _ranking(first: int) -> list[int]:
    """A full ranking with ``first`` on top (the rest in order after it)."""
    return [(first + k) % len(OPTIONS) for k in range(len(OPTIONS))]


def _casts(
    put: KeptAlive, read: KeptAlive, ballot: str, poll: str, count: int, start: int
) -> tuple[list[float], list[float]]:
    """``count`` re-votes through ``put``, each timed until ``read`` shows it as the winner;
    returns the samples and the duration of every read made."""
    samples, reads = [], []
    for i in range(start, start + count):
        first = i % len(OPTIONS)
        started = time.perf_counter()
        put.request("PUT", ballot, {"ranking": _ranking(first)})
        while True:
            asked = time.perf_counter()
            view = read.request("GET", poll)
            reads.append(time.perf_counter() - asked)
            if view["result"] and view["result"]["winner"] == first:
                break
            if time.perf_counter() - started > 30:
                raise AssertionError(f"ballot {i} not counted after 30 s: {view['result']}")
        samples.append(time.perf_counter() - started)
    return samples, reads


def _between_nodes(folder: Path, count: int) -> dict[str, Any]:
    a, b = Peer(folder / "a"), Peer(folder / "b")
    with ThreadPoolExecutor(2) as pool:
        for future in [pool.submit(a.start), pool.submit(b.start)]:
            future.result()
    try:
        assert a.api is not None
        assert b.api is not None
        assert a.token is not None
        assert b.token is not None
        thread = a.api.post("/api/v1/threads/", {"name": "Bench poll", "app": "messaging"})["id"]
        b.redeem(a.invite(thread))
        wait_for(
            lambda: b.api.get(f"/api/v1/threads/{thread}/")["state"] == "active",
            timeout=90,
            what="B to join",
        )
        a.api.post(f"/api/v1/threads/{thread}/apps/", {"app": "voting"})
        body = {"question": "Which day?", "options": OPTIONS, "method": "ranked"}
        poll_id = a.api.post(f"/api/v1/threads/{thread}/polls/", body)["id"]
        poll = f"/api/v1/threads/{thread}/polls/{poll_id}/"
        # The list, not the poll: the poll's own URL answers 404 until the poll reaches B.
        listed = f"/api/v1/threads/{thread}/polls/"
        wait_for(
            lambda: any(p["id"] == poll_id and p["can_vote"] for p in b.api.get(listed)),
            timeout=30,
            what="the poll on B",
        )
        on_a, on_b = KeptAlive(a.process.url, a.token), KeptAlive(b.process.url, b.token)
        try:
            _casts(on_a, on_b, poll + "ballot/", poll, 20, 1)  # warm-up: sessions, caches
            samples, reads = _casts(on_a, on_b, poll + "ballot/", poll, count, 21)
            local, _ = _casts(on_a, on_a, poll + "ballot/", poll, max(50, count // 5), 1)
        finally:
            on_a.close()
            on_b.close()
        turnout = b.api.get(poll)["turnout"]
        assert turnout == 1, f"B counts {turnout} ballots of A's one"
    finally:
        for peer in (a, b):
            if peer.process.proc is not None and peer.process.proc.poll() is None:
                peer.stop()
    found = percentiles(samples)
    floor = percentiles(local)
    read_p50 = ms(statistics.median(reads))
    floor_text = (
        f"the same PUT and GET on A alone: p50 {floor['p50_ms']} ms; one GET of B's poll "
        f"p50 {read_p50} ms"
    )
    return {
        "ballots": count,
        "cast_on_a_counted_on_b": found,
        "same_on_a_alone": floor,
        "read_on_b_p50_ms": read_p50,
        "figures": [
            figure(
                "ballot cast on A's API -> counted on B's API, p50",
                found["p50_ms"],
                "ms",
                higher=False,
                floor=floor_text,
            ),
            figure(
                "ballot cast on A's API -> counted on B's API, p99",
                found["p99_ms"],
                "ms",
                higher=False,
                floor=f"A alone p99 {floor['p99_ms']} ms",
            ),
        ],
    }


# -- (b) the tally ----------------------------------------------------------------------------


def _ranked_ballots(count: int, options: int, seed: int = 2026) -> list[dict[str, list[int]]]:
    rng = random.Random(seed)
    ballots = []
    for _ in range(count):
        order = list(range(options))
        rng.shuffle(order)
        ballots.append({"ranking": order[: rng.randint(1, options)]})
    return ballots


def _best(action: Callable[[], object], repeat: int) -> float:
    """The fastest of ``repeat`` runs, in seconds (the machine is shared: the others waited)."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


@dataclass(frozen=True)
class _Row:
    """A ballot as the node reads it from its table."""

    id: uuid.UUID
    choice: str
    sealed: bytes = b""


def _first_preferences(ballots: list[dict[str, list[int]]], options: int) -> list[int]:
    counts = [0] * options
    for ballot in ballots:
        counts[ballot["ranking"][0]] += 1
    return counts


def _tally(repeat: int) -> dict[str, Any]:
    ballots = _ranked_ballots(TALLY_BALLOTS, TALLY_OPTIONS)
    counted = tally("ranked", TALLY_OPTIONS, ballots)
    took = _best(lambda: tally("ranked", TALLY_OPTIONS, ballots), repeat)
    baseline = _best(lambda: _first_preferences(ballots, TALLY_OPTIONS), repeat)
    pk = uuid.uuid4().hex
    shape = poll_shape(
        pk,
        {
            "question": "Which?",
            "options": ballot_json([f"option {i}" for i in range(TALLY_OPTIONS)]),
            "method": "ranked",
            "roles": '["writer"]',
            "electorate": ballot_json(["00" * 32]),  # the tally does not read it
            "quorum": 0,
            "results_visible": True,
            "secret": False,
            "trustees": "[]",
            "threshold": 0,
        },
    )
    rows = [_Row(uuid.uuid4(), ballot_json(b)) for b in ballots]
    whole = _best(lambda: results.poll_result(shape, rows, [], closed=True), repeat)
    assert results.poll_result(shape, rows, [], closed=True).tally == counted
    return {
        "ballots": TALLY_BALLOTS,
        "options": TALLY_OPTIONS,
        "rounds": len(counted.rounds),
        "distinct_rankings": len({tuple(b["ranking"]) for b in ballots}),
        "tally_s": round(took, 4),
        "first_preferences_s": round(baseline, 4),
        "poll_result_s": round(whole, 4),
        "figures": [
            figure(
                f"tally of {TALLY_BALLOTS} ranked ballots over {TALLY_OPTIONS} options",
                ms(took),
                "ms",
                target=TALLY_TARGET,
                higher=False,
                floor=f"first preferences counted in a plain loop {baseline * 1000:.1f} ms "
                f"({took / baseline:.1f}x); {len(counted.rounds)} rounds",
            ),
            figure(
                f"a closed poll's result from {TALLY_BALLOTS} ballot rows (read, hash, tally)",
                ms(whole),
                "ms",
                higher=False,
                floor=f"the tally alone {took * 1000:.1f} ms",
            ),
        ],
    }


# -- (c) secret ballots -----------------------------------------------------------------------

_MULTIPLY = ("crypto_scalarmult_ristretto255", "crypto_scalarmult_ristretto255_base")


@contextmanager
def _counted_multiplications() -> Iterator[dict[str, int]]:
    """Count the calls to pysodium's two scalar multiplications while the block runs (the crypto
    modules look them up on the pysodium module at each call)."""
    counts = dict.fromkeys(_MULTIPLY, 0)
    originals = {name: getattr(pysodium, name) for name in _MULTIPLY}

    def counting(name: str) -> Callable[..., bytes]:
        def call(*args: bytes) -> bytes:
            counts[name] += 1
            return originals[name](*args)

        return call

    for name in _MULTIPLY:
        setattr(pysodium, name, counting(name))
    try:
        yield counts
    finally:
        for name, original in originals.items():
            setattr(pysodium, name, original)


def _multiplication_floor(counts: dict[str, int], samples: int = 2000) -> float:
    """Seconds for the raw multiplications in ``counts``, each kind timed on its own."""
    scalars = [pysodium.crypto_core_ristretto255_scalar_random() for _ in range(samples)]
    point = pysodium.crypto_scalarmult_ristretto255_base(scalars[-1])
    var, base = _MULTIPLY
    started = time.perf_counter()
    for s in scalars:
        pysodium.crypto_scalarmult_ristretto255(s, point)
    per_var = (time.perf_counter() - started) / samples
    started = time.perf_counter()
    for s in scalars:
        pysodium.crypto_scalarmult_ristretto255_base(s)
    per_base = (time.perf_counter() - started) / samples
    return counts[var] * per_var + counts[base] * per_base


def _secret(count: int) -> dict[str, Any]:
    pk = uuid.uuid4().hex
    context = poll_context(pk)
    trustees = [nacl.signing.SigningKey.generate() for _ in range(TRUSTEES)]
    publics = [t.verify_key.encode() for t in trustees]
    dealings = [crypto.dealing_make(context, THRESHOLD, publics) for _ in trustees]
    key = crypto.poll_key(dealings)
    rng = random.Random(7)
    voters = [nacl.signing.SigningKey.generate().verify_key.encode() for _ in range(count)]
    choices = [[rng.randint(0, 1) for _ in range(SECRET_OPTIONS)] for _ in range(count)]
    sealed = [
        crypto.ballot_make(ballot_context(pk, voter), key, chosen, False)
        for voter, chosen in zip(voters, choices, strict=True)
    ]
    with _counted_multiplications() as counts:
        crypto.ballot_check(ballot_context(pk, voters[0]), key, SECRET_OPTIONS, False, sealed[0])
    started = time.perf_counter()
    for voter, ballot in zip(voters, sealed, strict=True):
        crypto.ballot_check(ballot_context(pk, voter), key, SECRET_OPTIONS, False, ballot)
    checks_s = time.perf_counter() - started
    floor_s = _multiplication_floor(counts)
    rate, floor_rate = count / checks_s, 1 / floor_s

    shares = {
        i: crypto.share_open(context, THRESHOLD, publics, dealings, i, trustees[i - 1])
        for i in (1, 2)
    }
    trustee_publics = {i: crypto.trustee_key(dealings, i) for i in shares}
    started = time.perf_counter()
    total = crypto.aggregate(sealed, SECRET_OPTIONS)
    aggregated = time.perf_counter()
    partials = {}
    for index, share in shares.items():
        partials[index] = crypto.partial_make(context, total, share, index)
        crypto.partial_check(context, total, trustee_publics[index], partials[index])
    partial_done = time.perf_counter()
    counted = crypto.result(total, partials, THRESHOLD, count)
    finished = time.perf_counter()
    assert counted == [sum(column) for column in zip(*choices, strict=True)]
    decryption = {
        "aggregate_s": round(aggregated - started, 4),
        "partials_made_and_checked_s": round(partial_done - aggregated, 4),
        "result_s": round(finished - partial_done, 4),
    }
    decrypt_s = finished - started
    multiplications = f"{counts[_MULTIPLY[0]]} + {counts[_MULTIPLY[1]]} base"
    return {
        "ballots": count,
        "options": SECRET_OPTIONS,
        "multiplications_per_check": dict(counts),
        "ballot_check_per_s": round(rate, 1),
        "bare_multiplications_per_s": round(floor_rate, 1),
        "decryption": decryption,
        "figures": [
            figure(
                f"secret ballot check, approval of {SECRET_OPTIONS} options",
                round(rate, 1),
                "ballots/s",
                floor=f"bare scalar multiplications ({multiplications} per ballot) "
                f"{floor_rate:.0f} ballots/s: the check runs at {rate / floor_rate:.0%} of it",
            ),
            figure(
                f"secret poll's decryption, {count} ballots x {SECRET_OPTIONS} options, "
                f"{THRESHOLD} of {TRUSTEES} trustees",
                ms(decrypt_s),
                "ms",
                higher=False,
                floor=f"aggregate {decryption['aggregate_s'] * 1000:.0f} ms, 2 partials made and "
                f"checked {decryption['partials_made_and_checked_s'] * 1000:.0f} ms, result "
                f"{decryption['result_s'] * 1000:.0f} ms",
            ),
        ],
    }


def run(*, quick: bool = False) -> dict[str, Any]:
    result: dict[str, Any] = {
        "tally": _tally(repeat=3 if quick else 5),
        "secret": _secret(200 if quick else SECRET_BALLOTS),
    }
    folder = Path(tempfile.mkdtemp(prefix="sereus-bench-voting-"))
    try:
        result["between_nodes"] = _between_nodes(folder, 100 if quick else 500)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return result


if __name__ == "__main__":
    sys.exit("run it as: python -m bench voting")
