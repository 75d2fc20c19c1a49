"""Row ids that name their owner: who may change a row is decided by its id, not its history.

A replicated row's primary key is a UUID (RFC 9562 version 8, custom layout) whose last six
bytes are the **row tag** of the member who made it: the first six bytes of
BLAKE2b-256(member key). The first six bytes are the time in milliseconds (ids sort by time, as
UUIDv7 do, which keeps index inserts local), the rest random.

Why: "own rows" must be decided once for the whole op set. Deciding ownership by the row's first
insert in an op's causal past let a member forge an "insert" of another member's row by leaving
the victim's insert out of its deps (issue 9). A tag in the id is fixed the moment the id
exists: a member can insert only ids that carry its own tag, owns exactly those, and every
replica decides so from the id and the op's author alone, without the row's history (so a
member admitted without history decides like everyone else). Row tags are unique among a
thread's members (an admission whose tag collides is refused), so a tag names one member.

Ids that are not version-8 UUIDs (text or integer keys an app chooses) belong to nobody: only
roles allowed to change any row may write them.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
import time
import uuid

TAG_SIZE = 6
_PERSON = b"sereus-rowtag"
_VERSION = 8
_lock = threading.Lock()
_last = (0, 0)  # (millis, counter) of the last id made by this process


@functools.lru_cache(maxsize=4096)
def member_tag(member: bytes) -> bytes:
    """The row tag of a member key (32 bytes). Cached: every row id made and every ownership
    check asks it of the same few keys."""
    return hashlib.blake2b(member, digest_size=32, person=_PERSON).digest()[:TAG_SIZE]


def _stamp() -> tuple[int, int]:
    """(millis, 26-bit counter), strictly increasing within this process: ids made here never
    collide, however fast they are made. The counter starts at a random point each millisecond
    so that two processes of one member (web and tasks) rarely meet."""
    global _last
    with _lock:
        millis = time.time_ns() // 1_000_000
        last_millis, last_counter = _last
        if millis > last_millis:
            counter = int.from_bytes(os.urandom(4), "big") >> 7  # 25 bits: room to count up
        elif last_counter < (1 << 26) - 1:
            millis, counter = last_millis, last_counter + 1
        else:
            millis, counter = last_millis + 1, 0
        _last = (millis, counter)
        return millis, counter


def _assemble(head: bytes, tag: bytes) -> uuid.UUID:
    """16 bytes from the first ten of ``head`` and the tag, with version 8 and the RFC variant
    written into their fixed bits."""
    raw = bytearray(head[:10] + tag)
    raw[6] = (raw[6] & 0x0F) | (_VERSION << 4)
    raw[8] = (raw[8] & 0x3F) | 0x80
    return uuid.UUID(bytes=bytes(raw))


def row_id_new(member: bytes) -> uuid.UUID:
    """A new row id owned by ``member``."""
    millis, counter = _stamp()
    # counter: 4 bits in byte 6, 8 in byte 7, 6 in byte 8, 8 in byte 9.
    head = (
        millis.to_bytes(6, "big")
        + bytes([(counter >> 22) & 0x0F, (counter >> 14) & 0xFF, (counter >> 8) & 0x3F])
        + bytes([counter & 0xFF])
    )
    return _assemble(head, member_tag(member))


def row_id_for(member: bytes, seed: bytes) -> uuid.UUID:
    """A deterministic row id owned by ``member``: the same seed always gives the same id (one
    row per member and seed, e.g. a ballot per voter and poll, or an id a client chose)."""
    head = hashlib.blake2b(seed, digest_size=16, person=b"sereus-rowseed").digest()
    return _assemble(head, member_tag(member))


def row_tag(pk: object) -> bytes | None:
    """The owner tag an id carries, or None for an id that names no owner.

    A UUID key reaches a thread op as Django stores it in SQLite: 32 lowercase hexadecimal
    digits. The version digit must say 8 and the variant bits must be set."""
    if type(pk) is str:
        if len(pk) != 32 or pk[12] != "8" or pk[16] not in "89ab":
            return None
        try:
            return bytes.fromhex(pk[20:])
        except ValueError:
            return None
    if type(pk) is bytes and len(pk) == 16:
        if pk[6] >> 4 != _VERSION or pk[8] >> 6 != 0b10:
            return None
        return pk[10:]
    return None


def is_owned_by(pk: object, member: bytes) -> bool:
    tag = row_tag(pk)
    return tag is not None and tag == member_tag(member)
