"""Steps 1 and 3a of the validation pipeline (shape, size, signature) for a batch of ops, ahead
of a replica's ingest: pure, no replica needed, so a catch-up checks the next frame (in helper
processes, ``signatures``) while the current one is applied. ``Replica.ingest_many`` takes the
``Verified`` result and skips those checks."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice

from apps.core.thread import ahead, crypto, signatures
from apps.core.thread.batch import IngestResult
from apps.core.thread.op import Op, OpShapeError, op_decode, op_verify

# Frames being checked ahead of the one being ingested (``verified_ahead``).
IN_FLIGHT = 2


@dataclass(frozen=True)
class Verified:
    """Ops decoded and signature-checked ahead of ingestion (``verified``), so that the costly
    part of step 2 can run in another thread while earlier ops are being applied."""

    items: tuple[Op | IngestResult, ...]


def verified(raws: Iterable[bytes]) -> Verified:
    """Steps 1 and 3a for a batch: shape, size and signature. Pure; no replica needed. A large
    batch is decoded and checked in helper processes (``signatures``): the caller's thread only
    waits, and takes the decoded ops from them."""
    raws = list(raws)
    found = signatures.decoded(raws, _keys_of(raws))
    if found is not None:
        return Verified(
            tuple(
                item if isinstance(item, Op) else IngestResult("malformed", item) for item in found
            )
        )
    items: list[Op | IngestResult] = []
    for raw in raws:
        try:
            op = op_decode(raw)
            op_verify(op)
        except OpShapeError as exc:
            items.append(IngestResult("malformed", str(exc)))
        except crypto.CryptoError as exc:
            items.append(IngestResult("malformed", str(exc)))
        else:
            items.append(op)
    return Verified(tuple(items))


def _keys_of(raws: list[bytes]) -> signatures.ThreadKeys | None:
    """The data keys this process holds for the batch's thread, for the helper to open bodies
    with (``ahead``); None for a batch too small for the helper, or of a thread with none."""
    if len(raws) < signatures.MIN_BATCH or not ahead.OPEN_AHEAD:
        return None
    try:
        thread = op_decode(raws[0]).thread
    except OpShapeError:
        return None
    keys = ahead.keys_for(thread)
    return (thread, keys) if keys else None


def verified_ahead(frames: Iterable[list[bytes]]) -> Iterator[Verified]:
    """``verified`` of each frame, the next ones checked (in other threads, which wait for the
    helper processes) while the caller ingests the current one: how a catch-up keeps both cores
    busy. ``IN_FLIGHT`` frames are submitted ahead, so the helpers start the next frame while the
    caller still takes the answers of the one before (decodes its ops, keeps its payloads), and
    one helper done with its part of a frame does not wait for the other."""
    pending = iter(frames)
    with ThreadPoolExecutor(IN_FLIGHT, thread_name_prefix="verified-ahead") as pool:
        queued: deque[Future[Verified]] = deque(
            pool.submit(verified, frame) for frame in islice(pending, IN_FLIGHT)
        )
        while queued:
            checked = queued.popleft().result()
            following = next(pending, None)
            if following is not None:
                queued.append(pool.submit(verified, following))
            yield checked
