"""Validation throughput: 50 000 data ops of one thread through the full pipeline (decode, shape,
signature, chain, causal checks, decrypt, payload, authorization), against the floor of the same
run: Ed25519 verification plus XChaCha20-Poly1305 decryption of the same bytes, nothing else.
Target (issue 3): at least 50 % of the floor."""

from __future__ import annotations

import time
from typing import Any

import nacl.bindings
import nacl.signing
import nacl.utils

from apps.core.thread import crypto
from apps.core.thread import payloads as p
from apps.core.thread.op import op_decode
from apps.core.thread.replica import Replica
from apps.core.thread.writer import ThreadWriter

FRAME = 256  # ops per sync frame
ROUNDS = 3


def _best(fn) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def run(*, quick: bool = False) -> dict[str, Any]:
    count = 5_000 if quick else 50_000
    master, device = nacl.utils.random(32), nacl.signing.SigningKey.generate()
    writer = ThreadWriter.create(master_secret=master, device_key=device, name="bench")
    started = time.perf_counter()
    for i in range(count):
        writer.write_data(
            [p.RowChange("notes", f"n{i}", p.UPSERT, {"text": "a note of modest size", "n": i})]
        )
    print(f"   wrote {count} ops in {time.perf_counter() - started:.1f} s", flush=True)
    raws = [op.raw for op in writer.replica.admitted]

    # The floor: only the two cryptographic operations, on inputs prepared beforehand.
    data_key = writer._usable_epoch()[1].data
    prepared = []
    for raw in raws:
        op = op_decode(raw)
        if op.kind == "data":
            signed = op.sig + crypto.signing_input("op", op.thread, op.signed_bytes())
            prepared.append((signed, op.device, op.body, op.header_bytes()))

    def floor() -> None:
        for signed, public, body, aad in prepared:
            nacl.bindings.crypto_sign_open(signed, public)
            nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
                body[24:], aad, body[:24], data_key
            )

    def pipeline_frames() -> None:
        replica = Replica.for_members(writer.thread, [writer.member_key])
        for i in range(0, len(raws), FRAME):
            replica.ingest_many(raws[i : i + FRAME])
        assert len(replica.accepted_hashes()) == len(raws)

    def pipeline_single() -> None:
        replica = Replica.for_members(writer.thread, [writer.member_key])
        for raw in raws:
            replica.ingest(raw)
        assert len(replica.accepted_hashes()) == len(raws)

    floor_s = _best(floor)
    frames_s = _best(pipeline_frames)
    single_s = _best(pipeline_single)
    result = {
        "ops": len(prepared),
        "floor_ops_per_s": round(len(prepared) / floor_s),
        "pipeline_frames_ops_per_s": round(len(raws) / frames_s),
        "pipeline_single_ops_per_s": round(len(raws) / single_s),
        "ratio_frames": round(floor_s / frames_s * len(raws) / len(prepared), 3),
        "ratio_single": round(floor_s / single_s * len(raws) / len(prepared), 3),
    }
    print(
        f"   floor (verify + decrypt):     {result['floor_ops_per_s']:>8} ops/s\n"
        f"   pipeline, {FRAME}-op frames:   {result['pipeline_frames_ops_per_s']:>8} ops/s"
        f"  = {result['ratio_frames']:.0%} of the floor (target >= 50%)\n"
        f"   pipeline, one op at a time:  {result['pipeline_single_ops_per_s']:>8} ops/s"
        f"  = {result['ratio_single']:.0%} of the floor"
    )
    return result
