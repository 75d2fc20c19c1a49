"""The medical record (issue 16), each figure beside a floor measured in the same run, on two
real nodes (``runnode`` processes on 127.0.0.1: the patient's and a provider's):

- writes: 1 000 blood-pressure Observations (100 with ``--quick``) POSTed one after another to
  the patient's ``/api/v1/threads/{record}/fhir/Observation/`` on a kept-alive connection, p50
  per write; alternating with each, a message POSTed to a conversation on the same node (the
  ratio); and the FHIR check alone (``fhir.resource_check`` on the same resources, in this
  process): its share of a write. 5 of each are written first to warm up.
- import: one Bundle of 5 000 resources of mixed types (500 with ``--quick``;
  ``tests.medical.samples.bundle``) POSTed to ``/api/v1/threads/{record}/fhir/`` in a new
  record, as a file (multipart, field ``bundle``: the API takes JSON bodies up to 2.5 MiB, and
  this one is 3.9 MB): resources stored per second; floor: the FHIR check of the same resources
  alone.
- export: ``GET /api/v1/threads/{record}/fhir/$export`` of that record: seconds.
- join: the provider redeems an invite (a grant reading everything) to that record: seconds
  from the redeem's POST until the provider's API shows every imported resource (the sum of
  the searchset totals of every type, polled). Floor: the import on the patient's node.
"""

from __future__ import annotations

import http.client
import json
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.report import figure
from bench.request_path import KeptAlive
from bench.stats import percentiles
from tests.medical import samples
from tests.support.api import wait_for
from tests.support.attachments import multipart
from tests.support.p2p import Peer

WARM = 5  # samples of each kind thrown away first
IMPORT_TIMEOUT = 1_800.0  # seconds for one Bundle's POST on a loaded machine


def _types() -> list[str]:
    from apps.medical.fhir import TYPES

    return list(TYPES)


def _reading(i: int) -> dict[str, Any]:
    day, minute = 1 + i % 28, i % 60
    when = f"2026-{1 + (i // 28) % 12:02d}-{day:02d}T08:{minute:02d}:00Z"
    return samples.observation_bp(100 + i % 70, 60 + i % 40, when=when)


def _record(peer: Peer, name: str) -> str:
    assert peer.api is not None
    return peer.api.post("/api/v1/threads/", {"name": name, "app": "medical"})["id"]


def _check_alone(resources: list[tuple[str, dict[str, Any]]]) -> list[float]:
    """Seconds of ``fhir.resource_check`` for each resource, in this process."""
    from apps.medical.fhir import resource_check

    took = []
    for kind, resource in resources:
        began = time.perf_counter()
        resource_check(kind, resource)
        took.append(time.perf_counter() - began)
    return took


def _writes(patient: Peer, count: int) -> dict[str, Any]:
    """Observation writes beside message writes on the patient's node (``__doc__``)."""
    assert patient.api is not None
    assert patient.token
    record = _record(patient, "Bench record")
    chat = patient.api.post("/api/v1/threads/", {"name": "Bench chat", "app": "messaging"})["id"]
    observations = f"/api/v1/threads/{record}/fhir/Observation/"
    messages = f"/api/v1/threads/{chat}/messages/"
    on = KeptAlive(patient.process.url, patient.token)
    took: dict[str, list[float]] = {"observation": [], "message": []}
    try:
        for i in range(WARM + count):
            reading = _reading(i)
            began = time.perf_counter()
            on.request("POST", observations, reading)
            wrote = time.perf_counter() - began
            began = time.perf_counter()
            on.request("POST", messages, {"text": f"Blood pressure {i} noted"})
            sent = time.perf_counter() - began
            if i >= WARM:
                took["observation"].append(wrote)
                took["message"].append(sent)
    finally:
        on.close()
    alone = _check_alone([("Observation", _reading(i)) for i in range(WARM + count)])[WARM:]
    write, message, check = (
        percentiles(took["observation"]),
        percentiles(took["message"]),
        percentiles(alone),
    )
    ratio = write["p50_ms"] / message["p50_ms"]
    share = check["p50_ms"] / write["p50_ms"]
    return {
        "writes": count,
        "observation_post": write,
        "message_post": message,
        "fhir_check_alone": check,
        "ratio_p50": round(ratio, 2),
        "check_share_p50": round(share, 3),
        "figures": [
            figure(
                f"Observation POST through the API ({count} one after another), p50",
                write["p50_ms"],
                "ms",
                higher=False,
                floor=f"a message POST on the same node, alternating: p50 {message['p50_ms']} "
                f"ms; the FHIR check alone: p50 {check['p50_ms']} ms",
            ),
            figure("Observation POST / message POST, p50", round(ratio, 2), "x", higher=False),
            figure(
                "FHIR check alone / Observation POST, p50", round(share * 100, 1), "%", higher=False
            ),
        ],
    }


def _import(peer: Peer, record: str, bundle: dict[str, Any]) -> dict[str, Any]:
    """POST ``bundle`` as a file to the record's ``fhir/`` address; the import's report."""
    assert peer.token
    body, content_type = multipart([], [("bundle", "bundle.json", json.dumps(bundle).encode())])
    parts = urlsplit(peer.process.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=IMPORT_TIMEOUT)
    try:
        headers = {"Authorization": f"Token {peer.token}", "Content-Type": content_type}
        connection.request("POST", f"/api/v1/threads/{record}/fhir/", body=body, headers=headers)
        response = connection.getresponse()
        raw = response.read()
    finally:
        connection.close()
    if response.status != 200:
        raise AssertionError(f"the import: HTTP {response.status}: {raw[:300]!r}")
    return json.loads(raw)


def _totals(peer: Peer, record: str, types: list[str]) -> int:
    """How many resources ``peer``'s API shows in the record (every type's searchset total)."""
    assert peer.api is not None
    return sum(
        peer.api.get(f"/api/v1/threads/{record}/fhir/{kind}/?_count=1")["total"] for kind in types
    )


def _import_export_join(patient: Peer, provider: Peer, count: int) -> dict[str, Any]:
    """A Bundle of ``count`` resources imported, the record exported, a provider joining it."""
    assert patient.api is not None
    assert provider.api is not None
    types = _types()
    record = _record(patient, "Bench imported record")
    bundle = samples.bundle(count, seed=16)
    before = _totals(patient, record, types)  # the record's own Patient, if it makes one

    began = time.perf_counter()
    report = _import(patient, record, bundle)
    imported_s = time.perf_counter() - began
    imported = len(report["imported"])
    if report.get("refused"):
        print(f"   refused on import: {report['refused'][:3]}", flush=True)
    held = _totals(patient, record, types)
    assert held - before == imported, (held, before, imported)
    rate = imported / imported_s
    check = _check_alone([(e["resource"]["resourceType"], e["resource"]) for e in bundle["entry"]])
    check_rate = len(check) / sum(check)

    began = time.perf_counter()
    exported = patient.api.request(
        "GET", f"/api/v1/threads/{record}/fhir/$export", timeout=IMPORT_TIMEOUT
    )
    export_s = time.perf_counter() - began
    assert len(exported["entry"]) >= imported, len(exported["entry"])

    body = {
        "role": "provider",
        "expires_in": 3600,
        "uses": 1,
        "grant": {"label": "Bench clinic", "read": types, "write": ["Observation"]},
    }
    link = patient.api.post(f"/api/v1/threads/{record}/invites/", body)["link"]
    began = time.perf_counter()
    provider.redeem(link)

    def shown() -> bool:
        try:
            return _totals(provider, record, types) == held
        except AssertionError:  # not joined yet: 404s, or a 409 while joining
            return False

    wait_for(shown, timeout=IMPORT_TIMEOUT, interval=0.2, what="the record on the provider")
    join_s = time.perf_counter() - began
    return {
        "resources": count,
        "imported": imported,
        "refused": len(report.get("refused", [])),
        "import_s": round(imported_s, 2),
        "import_per_s": round(rate, 1),
        "fhir_check_alone_per_s": round(check_rate, 1),
        "export_s": round(export_s, 2),
        "export_entries": len(exported["entry"]),
        "join_s": round(join_s, 2),
        "figures": [
            figure(
                f"Import of a {count}-resource Bundle through the API",
                round(rate, 1),
                "resources/s",
                floor=f"the FHIR check alone on the same resources: {check_rate:,.0f}/s; "
                f"the POST took {imported_s:.1f} s",
            ),
            figure(
                f"Export of that record ({imported} resources) as a Bundle",
                round(export_s, 2),
                "s",
                higher=False,
            ),
            figure(
                f"A provider joins a record of {held} resources: redeem -> its API shows them all",
                round(join_s, 2),
                "s",
                higher=False,
                floor=f"the import of the same on the patient's node: {imported_s:.1f} s",
            ),
        ],
    }


def run(*, quick: bool = False) -> dict[str, Any]:
    result: dict[str, Any] = {}
    took: dict[str, float] = {}  # wall seconds of each part, set-up included
    result["wall_s"] = took
    folder = tempfile.mkdtemp(prefix="sereus-bench-medical-")
    peers = [Peer(Path(folder) / name) for name in ("patient", "provider")]
    try:
        with ThreadPoolExecutor(len(peers)) as pool:
            for future in [pool.submit(p.start) for p in peers]:
                future.result()
        began = time.perf_counter()
        result["writes"] = _writes(peers[0], 100 if quick else 1_000)
        took["writes"] = round(time.perf_counter() - began, 1)
        began = time.perf_counter()
        result["bundle"] = _import_export_join(*peers, 500 if quick else 5_000)
        took["bundle"] = round(time.perf_counter() - began, 1)
    finally:
        for peer in peers:
            if peer.process.proc is not None and peer.process.proc.poll() is None:
                peer.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return result


if __name__ == "__main__":
    sys.exit("run it as: python -m bench medical")
