"""Identity (issue 19: achievements and witness standing), with floors measured in the same run:

- an attestation written on node A's API, seen on node B's API: two real nodes (``runnode``
  processes on 127.0.0.1) in a club with identity on and k = 1, so one attestation verifies a
  claim. B claims N achievements first (B is their subject; A may not be); then for each sample A
  attests one claim, and B's claim endpoint is polled back to back on a kept-alive connection
  until it shows the claim verified. A sample runs from A's POST to that answer, so it includes
  one GET on B: the floor printed beside it is the p50 of B's GETs in the same run (and A's POST
  alone). p50/p99 over N attestations. The baseline, alternated with them in the same thread:
  a message sent on A's API until B's messages list shows it.
- witness standing (``standing.standing``) over a thread database with 10 000 claims and 50 000
  attestations by 200 members (5 witnesses per claim, one in ten disputing; 500 attestations
  retracted; 100 claims challenged, half of them overturned by an outcome; flag_after 5). Its
  answer must equal each witness's count made from the generated rows in plain Python. The
  state of one claim, and of all 10 000 (``standing.claim_states``), are reported beside it.
  The rows are put into a thread database made for the bench by direct SQL (the node's capture
  triggers quiet), not through ops: only what the standing reads is there, and the endorsements are
  placeholders of a real one's length, which the standing never reads (the rules checked them
  when the rows came). Floor: the plain aggregate ``SELECT witness, count(*) ... GROUP BY``
  over the same attestation rows (the witness is the row tag in each id), best of 5 each; the
  ratio is printed.
"""

from __future__ import annotations

import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.report import figure
from bench.request_path import KeptAlive
from bench.stats import ms, percentiles
from tests.support.api import wait_for
from tests.support.p2p import Peer

KIND = "sport"
CLAIMS, ATTESTATIONS, MEMBERS = 10_000, 50_000, 200
RETRACTED, CHALLENGED = 500, 100
FLAG_AFTER = 5  # in force in the big club: some witnesses flagged, most not
JWS_LENGTH = 700  # about the length of a real endorsement (compact JWS of an OB 3.0 credential)


# -- (a) an attestation between two nodes -------------------------------------------------------


def _join(peer: Peer, link: str) -> str:
    assert peer.api is not None
    thread = peer.redeem(link)["id"]
    wait_for(
        lambda: peer.api.get(f"/api/v1/threads/{thread}/")["state"] == "active",  # type: ignore[union-attr]
        timeout=90,
        what="B to join",
    )
    return thread


def _claim_state(read: KeptAlive, path: str) -> str | None:
    try:
        return read.request("GET", path)["state"]
    except AssertionError as exc:  # 404 until the claim reaches the node
        if "HTTP 404" in str(exc):
            return None
        raise


def _message(write: KeptAlive, read: KeptAlive, messages_path: str, n: int) -> float:
    """The baseline, in the same thread: a message POSTed on A until B's list shows it."""
    started = time.perf_counter()
    sent = write.request("POST", messages_path, {"text": f"message {n}"})["id"]
    while not any(m["id"] == sent for m in read.request("GET", messages_path)):
        if time.perf_counter() - started > 30:
            raise AssertionError(f"message {sent} not on B after 30 s")
    return time.perf_counter() - started


def _attestations(
    write: KeptAlive, read: KeptAlive, claims_path: str, claims: list[str]
) -> dict[str, list[float]]:
    """One attestation by A per claim, each timed until B shows the claim verified, and in
    turn with each a message sent on A until B lists it (the baseline, alternated so that both
    see the same load); every GET of a claim made on B, and each attestation POST on A alone."""
    found: dict[str, list[float]] = {"samples": [], "reads": [], "posts": [], "messages": []}
    messages_path = claims_path.removesuffix("claims/") + "messages/"
    for n, claim in enumerate(claims):
        path = f"{claims_path}{claim}/"
        started = time.perf_counter()
        write.request("POST", path + "attestations/", {"verdict": "witnessed", "note": ""})
        found["posts"].append(time.perf_counter() - started)
        while True:
            asked = time.perf_counter()
            state = _claim_state(read, path)
            found["reads"].append(time.perf_counter() - asked)
            if state == "verified":
                break
            if time.perf_counter() - started > 30:
                raise AssertionError(f"claim {claim} not verified on B after 30 s: {state}")
        found["samples"].append(time.perf_counter() - started)
        found["messages"].append(_message(write, read, messages_path, n))
    return found


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
        thread = a.api.post("/api/v1/threads/", {"name": "Bench club", "app": "messaging"})["id"]
        _join(b, a.invite(thread))
        for app in ("voting", "identity"):
            a.api.post(f"/api/v1/threads/{thread}/apps/", {"app": app})
        settings = {"witnesses": 1, "flag_after": 2, "kinds": [{"slug": KIND, "label": "Sport"}]}
        a.api.request("PUT", f"/api/v1/threads/{thread}/identity/settings/", settings)
        claims_path = f"/api/v1/threads/{thread}/claims/"
        wait_for(
            lambda: b.api.get(f"/api/v1/threads/{thread}/identity/settings/")["witnesses"] == 1,
            timeout=30,
            what="the settings on B",
        )
        warm = 20
        made = [
            b.api.post(claims_path, {"kind": KIND, "title": f"Race {i}"})["id"]
            for i in range(warm + count)
        ]
        last = made[-1]
        wait_for(
            lambda: any(c["id"] == last for c in a.api.get(claims_path)),
            timeout=120,
            what="B's claims on A",
        )
        on_a, on_b = KeptAlive(a.process.url, a.token), KeptAlive(b.process.url, b.token)
        try:
            _attestations(on_a, on_b, claims_path, made[:warm])  # sessions, caches
            timed = _attestations(on_a, on_b, claims_path, made[warm:])
        finally:
            on_a.close()
            on_b.close()
    finally:
        for peer in (a, b):
            if peer.process.proc is not None and peer.process.proc.poll() is None:
                peer.stop()
    found, message = percentiles(timed["samples"]), percentiles(timed["messages"])
    read_p50 = ms(statistics.median(timed["reads"]))
    post_p50 = ms(statistics.median(timed["posts"]))
    ratio = round(found["p50_ms"] / message["p50_ms"], 2)
    return {
        "attestations": count,
        "attested_on_a_verified_on_b": found,
        "message_on_a_listed_on_b": message,
        "attestation_over_message_p50": ratio,
        "get_on_b_p50_ms": read_p50,
        "post_on_a_p50_ms": post_p50,
        "gets_on_b_per_sample": round(len(timed["reads"]) / count, 1),
        "figures": [
            figure(
                "attestation on A's API -> claim verified on B's API, p50",
                found["p50_ms"],
                "ms",
                higher=False,
                floor=f"message on A -> listed on B, same thread, alternated: p50 "
                f"{message['p50_ms']} ms; one GET of the claim on B p50 {read_p50} ms; "
                f"A's POST alone p50 {post_p50} ms",
            ),
            figure(
                "attestation on A's API -> claim verified on B's API, p99",
                found["p99_ms"],
                "ms",
                higher=False,
                floor=f"message p99 {message['p99_ms']} ms",
            ),
            figure("attestation -> verified / message -> listed, p50", ratio, "x", higher=False),
        ],
    }


# -- (b) witness standing over a big thread -------------------------------------------------------


def _rows(
    rng: random.Random,
    *,
    claims_n: int = CLAIMS,
    attestations_n: int = ATTESTATIONS,
    members_n: int = MEMBERS,
    retracted_n: int = RETRACTED,
    challenged_n: int = CHALLENGED,
    flag_after: int = FLAG_AFTER,
) -> dict[str, list[tuple]]:
    """The rows of a busy club, as the node's tables hold them (the tests seed smaller ones)."""
    from apps.core.thread.rowid import member_tag, row_id_new
    from apps.identity import formats

    members = [rng.randbytes(32) for _ in range(members_n)]
    jws = "e" * JWS_LENGTH
    claims, attestations = [], []
    subjects: dict[str, bytes] = {}
    witnessed: dict[str, list[str]] = {}  # claim -> its witnessed attestations
    per_claim = attestations_n // claims_n
    for n in range(claims_n):
        subject = rng.choice(members)
        claim = row_id_new(subject).hex
        subjects[claim] = subject
        claims.append((claim, KIND, f"Race {n}", "", "2026-10-04", "Berlin", "[]", 0))
        for witness in rng.sample([m for m in members if m != subject], per_claim):
            verdict = "disputed" if rng.random() < 0.1 else "witnessed"
            pk = formats.attestation_id(witness, claim)
            attestations.append((pk, claim, "d" * 64, verdict, "", jws))
            if verdict == "witnessed":
                witnessed.setdefault(claim, []).append(pk)
    by_tag = {member_tag(m).hex(): m for m in members}
    retractions = []
    for pk, *_ in rng.sample(attestations, retracted_n):
        author = by_tag[pk[20:]]  # the witness: the row tag in the attestation's id
        retractions.append((formats.retraction_id(author, pk), pk, ""))
    challenges, outcomes = [], []
    for n, claim in enumerate(rng.sample(sorted(witnessed), challenged_n)):
        challenger = rng.choice([m for m in members if m != subjects[claim]])
        challenge = row_id_new(challenger).hex
        challenges.append(
            (challenge, claim, None, subjects[claim].hex(), "Again", "", "poll", "[]", None)
        )
        winner = "challenger" if n % 2 == 0 else "defendant"
        outcomes.append((formats.outcome_id(challenger, challenge), challenge, winner))
    tags = [(member_tag(m).hex(), m) for m in members]
    settings = [(row_id_new(members[0]).hex, 1, 2, flag_after)]
    return {
        "sereus_members": tags,
        "identity_setting": settings,
        "identity_claim": claims,
        "identity_attestation": attestations,
        "identity_retraction": retractions,
        "identity_challenge": challenges,
        "identity_outcome": outcomes,
    }


_COLUMNS = {
    "sereus_members": "tag, member",
    "identity_setting": "id, seq, witnesses, flag_after",
    "identity_claim": "id, kind, title, description, event_date, place, evidence, withdrawn",
    "identity_attestation": "id, claim, digest, verdict, note, jws",
    "identity_retraction": "id, attestation, reason",
    "identity_challenge": "id, claim, against, defendant, feat, deadline, mode, judges, poll",
    "identity_outcome": "id, challenge, winner",
}


def _fill(path: Path, rows: dict[str, list[tuple]]) -> None:
    """Direct SQL into the thread's file, the capture triggers kept quiet (as when the node
    applies other members' ops): no ops, no pending changes."""
    db = sqlite3.connect(str(path), isolation_level=None)
    db.create_function("sereus_capture", 0, lambda: 0)
    db.create_function("sereus_row", -1, lambda *values: None)
    db.execute("BEGIN")
    for table, values in rows.items():
        columns = _COLUMNS[table]
        marks = ", ".join("?" * len(columns.split(", ")))
        # The table and column names are this module's constants, never input.
        sql = f"INSERT INTO {table} ({columns}) VALUES ({marks})"  # noqa: S608
        db.executemany(sql, values)
    db.execute("COMMIT")
    db.close()


def _expected(rows: dict[str, list[tuple]]) -> dict[str, tuple[int, int, int, bool]]:
    """Each witness's (attested, retracted, overturned, flagged), counted from the generated
    rows in plain Python: the standing the bench times must give exactly this. Every challenge
    here names a claim (none challenges back), so each one its challenger won is in effect."""
    member = {tag: m.hex() for tag, m in rows["sereus_members"]}
    won = {
        c
        for c, winner in ((o[1], o[2]) for o in rows["identity_outcome"])
        if winner == "challenger"
    }
    overturned = {c[1] for c in rows["identity_challenge"] if c[0] in won}
    retracted = {r[1] for r in rows["identity_retraction"]}
    counts: dict[str, list[int]] = {}
    strikes: dict[str, set[str]] = {}
    for pk, claim, _digest, verdict, *_ in rows["identity_attestation"]:
        witness = member[pk[20:]]
        row = counts.setdefault(witness, [0, 0, 0])
        row[0] += 1
        if pk in retracted:
            row[1] += 1
            strikes.setdefault(witness, set()).add(pk)
        if verdict == "witnessed" and claim in overturned:
            row[2] += 1
            strikes.setdefault(witness, set()).add(pk)
    return {w: (a, r, o, len(strikes.get(w, ())) >= FLAG_AFTER) for w, (a, r, o) in counts.items()}


def _best(action: Callable[[], object], repeat: int) -> float:
    """The fastest of ``repeat`` runs, in seconds (the machine is shared: the others waited)."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


PLAIN = "SELECT substr(id, 21) AS witness, count(*) FROM identity_attestation GROUP BY witness"


def _standing(folder: Path, repeat: int) -> dict[str, Any]:
    import nacl.signing
    import nacl.utils
    from django.db import connections

    from apps.core.thread.rowid import member_tag
    from apps.core.thread.writer import ThreadWriter
    from apps.core.threads.database import NodeKeys, ThreadDatabase
    from apps.identity import standing

    keys = NodeKeys(nacl.signing.SigningKey.generate(), nacl.utils.random(32))
    writer = ThreadWriter.create(
        master_secret=keys.master_secret, device_key=keys.device, name="Bench club"
    )
    path = folder / "club.sqlite3"
    database = ThreadDatabase(
        writer.thread, path=path, alias=f"thread_{writer.thread.hex()}_bench", node=keys
    )
    database.open()  # the real thread file: the template, every app's tables and triggers
    database.wrapper.close()
    began = time.perf_counter()
    rows = _rows(random.Random(2026))
    _fill(path, rows)
    filled = time.perf_counter() - began
    alias = database.alias
    found = standing.standing(alias)
    expected = _expected(rows)
    got = {
        m: (w.attested, len(w.retracted), len(w.overturned), w.flagged) for m, w in found.items()
    }
    assert got == expected, "the standing differs from the rows' own count"
    flagged = sum(1 for w in found.values() if w.flagged)
    took = _best(lambda: standing.standing(alias), repeat)
    # One witness's page computes that witness's standing only: the same answer for them.
    busiest = max(found.values(), key=lambda w: (w.attested, w.member)).member
    tags = [member_tag(bytes.fromhex(busiest)).hex()]
    assert standing.standing(alias, tags=tags) == {busiest: found[busiest]}
    one_witness = _best(lambda: standing.standing(alias, tags=tags), repeat)

    def plain() -> list:
        with connections[alias].cursor() as cursor:
            cursor.execute(PLAIN)
            return cursor.fetchall()

    states = _best(lambda: standing.claim_states(alias), 1)
    one = rows["identity_claim"][len(rows["identity_claim"]) // 2][0]
    one_state = _best(lambda: standing.claim_states(alias, [one]), repeat)
    counted = plain()
    floor = _best(plain, repeat)
    assert sum(c for _, c in counted) == ATTESTATIONS
    connections[alias].close()
    ratio = took / floor
    return {
        "claims": len(rows["identity_claim"]),
        "attestations": len(rows["identity_attestation"]),
        "members": MEMBERS,
        "retracted": RETRACTED,
        "challenged": CHALLENGED,
        "witnesses_listed": len(found),
        "flagged": flagged,
        "fill_s": round(filled, 1),
        "filled_by": "direct SQL into a thread database made for the bench (no ops)",
        "standing_s": round(took, 4),
        "plain_aggregate_s": round(floor, 4),
        "ratio": round(ratio, 1),
        "one_witness_standing_s": round(one_witness, 4),
        "claim_states_all_s": round(states, 4),
        "claim_state_one_s": round(one_state, 4),
        "figures": [
            figure(
                f"witness standing over {CLAIMS} claims and {ATTESTATIONS} attestations "
                "(rows filled by direct SQL)",
                round(took, 3),
                "s",
                higher=False,
                floor=f"plain GROUP BY count of the same attestations {floor * 1000:.1f} ms "
                f"({ratio:.1f}x)",
            ),
            figure(
                "one witness's standing in that thread (what the witness's page computes)",
                ms(one_witness),
                "ms",
                higher=False,
                floor=f"every witness's standing {took * 1000:.0f} ms",
            ),
            figure(
                "one claim's state in that thread (what each read of a claim computes)",
                ms(one_state),
                "ms",
                higher=False,
                floor=f"all {CLAIMS} claims' states at once {states:.2f} s",
            ),
        ],
    }


def run(*, quick: bool = False) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="sereus-bench-identity-"))
    try:
        result: dict[str, Any] = {"standing": _standing(folder, repeat=3 if quick else 5)}
        result["between_nodes"] = _between_nodes(folder, 50 if quick else 300)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return result


if __name__ == "__main__":
    sys.exit("run it as: python -m bench identity")
