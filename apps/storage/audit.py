"""Audits: each holder proves, now and then, that it still has the shares it was given, without
the owner keeping a copy (ADR 25).

A share's row carries the expected answers of its next ``engine.AUDIT_ROUNDS`` audit rounds
(``Share.answers``), made while its bytes were at hand; ``Share.audits`` counts the rounds used.
Round ``r`` asks the holder for ``keys.audit_answer(audit_nonce(audit_key, digest, r), share)``:
the nonce is unknown to the holder until asked, so only a holder with the share's bytes can
answer, and a round is never asked twice (an answer it saw cannot be replayed).

The answers of a block cover rounds ``start .. start + AUDIT_ROUNDS - 1`` with ``start`` the
multiple of ``AUDIT_ROUNDS`` at or below ``audits``; when the last round of a block is used,
the answers are emptied in the same op: an empty ``answers`` on a placed share means "used up,
to refresh" (``repair.repair_step`` fetches the share and makes the next block).

``audit_step`` checks every holder once per ``settings.SEREUS.storage_check_seconds``: up to
``PER_HOLDER`` placed shares there (the longest unverified first, and a few at random), and
its usage. One op per holder per round records what it found: shares verified, MISSING or
CORRUPT; the holder ACTIVE, FAILING (answered wrongly) or UNREACHABLE (no answer). A holder
that stays unreachable for ``AWAY_CHECKS`` checks in a row counts as gone (``holder_gone``):
repair then places its shares elsewhere. A laptop asleep for an hour is not a loss.
"""

from __future__ import annotations

import datetime
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from apps.storage import engine, keys, space
from apps.storage.models import Chunk, Holder, Share

logger = logging.getLogger(__name__)

PER_HOLDER = 64  # shares asked of one holder per check
RANDOM_SHARE = 8  # of which picked at random (the rest: the longest unverified)
AWAY_CHECKS = 3  # checks in a row without an answer before a holder's shares are moved
AUDITED = (Holder.State.ACTIVE, Holder.State.UNREACHABLE, Holder.State.FAILING)

# When this node last tried each holder (its pk): a holder that does not answer is not dialed
# again every worker round. In memory: after a restart a holder is simply tried once more.
_tried: dict[str, int] = {}


def clock_ms() -> int:
    return time.time_ns() // 1_000_000


def check_ms() -> int:
    return int(settings.SEREUS.storage_check_seconds) * 1000


def holder_gone(holder: Holder, *, now: int | None = None) -> bool:
    """Whether ``holder``'s shares count as lost: it left, or it has not answered for
    ``AWAY_CHECKS`` checks."""
    if holder.state == Holder.State.LEFT:
        return True
    if holder.state != Holder.State.UNREACHABLE:
        return False
    now = clock_ms() if now is None else now
    return (holder.seen_ms or 0) < now - AWAY_CHECKS * check_ms()


def block_start(audits: int) -> int:
    """The first round the current answers of a share with ``audits`` rounds used cover."""
    return audits - audits % engine.AUDIT_ROUNDS


def day_words(ms: int) -> str:
    day = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    return f"{day.day} {day:%b}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


# -- choosing ---------------------------------------------------------------------------------


def _due(holder: Holder, now: int, force: bool) -> bool:
    if force:
        return True
    last = max(holder.verified_ms or 0, holder.seen_ms or 0, _tried.get(str(holder.pk), 0))
    return now - last >= check_ms()


def shares_to_check(alias: str, holder: Holder) -> list[Share]:
    """Placed shares on ``holder`` with answers left: the longest unverified first (never
    verified before any), and a few at random so that none waits forever behind others."""
    chunks = Chunk.objects.using(alias).values("pk")
    rows = Share.objects.using(alias).filter(
        holder=holder.pk, state=Share.State.PLACED, chunk__in=chunks
    )
    rows = rows.exclude(answers=b"")
    oldest = list(rows.order_by("verified_ms", "id")[: PER_HOLDER - RANDOM_SHARE])
    seen = {s.pk for s in oldest}
    extra = [s for s in rows.exclude(pk__in=seen).order_by("?")[:RANDOM_SHARE]]
    return oldest + extra


# -- checking ---------------------------------------------------------------------------------


@dataclass
class Found:
    """What one holder's check found (written in one op)."""

    answered: bool = False
    used: int | None = None
    verified: list[Share] = field(default_factory=list)
    missing: list[Share] = field(default_factory=list)
    corrupt: list[Share] = field(default_factory=list)
    problem: str = ""  # a refusal, in the holder's words


def _ask(holder: Holder, shares: list[Share], audit: bytes) -> Found:
    from apps.storage import client

    found = Found()
    target = client.target_of(holder)
    items = [
        (bytes.fromhex(s.digest), keys.audit_nonce(audit, bytes.fromhex(s.digest), s.audits))
        for s in shares
    ]
    try:
        answers = client.audit(target, items) if items else []
        found.used = int(client.usage(target).get("used", holder.used))
    except client.HolderError as exc:
        if exc.code == "refused":
            # It answered, and said no: it no longer holds for the party (or answers nonsense).
            found.answered = True
            found.problem = exc.words
            found.missing = list(shares)
        elif exc.code == "busy":
            found.answered = True  # there, only busy: no verdict on its shares this time
        return found
    except space.StorageError as exc:
        logger.info("checking %s failed: %s", holder.label or "a holder", exc.words)
        return found
    found.answered = True
    for share, answer in zip(shares, answers, strict=True):
        if answer is None:
            found.missing.append(share)
        elif engine.answer_matches(
            bytes(share.answers), share.audits, block_start(share.audits), answer
        ):
            found.verified.append(share)
        else:
            found.corrupt.append(share)
    return found


def _holder_words(holder: Holder, found: Found, now: int) -> tuple[str, str]:
    """The holder's state and problem after a check, in words a person reads on its page."""
    from apps.storage import client

    name = client.target_of(holder).name or "The holder"
    name = name[:1].upper() + name[1:]
    if not found.answered:
        since = f"since {day_words(holder.seen_ms)}" if holder.seen_ms else "yet"
        return (
            Holder.State.UNREACHABLE,
            f"{name} has not answered {since}: it may be offline. Its shares are made again "
            f"elsewhere if it stays away for {AWAY_CHECKS} checks.",
        )
    if found.corrupt:
        return (
            Holder.State.FAILING,
            f"{name} answered wrongly for {_plural(len(found.corrupt), 'share')} on "
            f"{day_words(now)}: they are being made again on other holders.",
        )
    if found.problem:
        return Holder.State.FAILING, f"{found.problem} Its shares are being made again elsewhere."
    if found.missing:
        return (
            Holder.State.ACTIVE,
            f"{name} no longer had {_plural(len(found.missing), 'share')} on {day_words(now)}: "
            "they are being made again.",
        )
    return Holder.State.ACTIVE, ""


def _record(thread: Any, holder: Holder, found: Found, now: int) -> None:
    state, problem = _holder_words(holder, found, now)

    def write() -> None:
        for share in found.verified:
            audits = share.audits + 1
            update: dict[str, Any] = {"verified_ms": now, "audits": audits}
            if audits % engine.AUDIT_ROUNDS == 0:
                update["answers"] = b""  # the block is used up: repair makes the next
            Share.objects.filter(pk=share.pk).update(**update)
        for share in found.missing:
            Share.objects.filter(pk=share.pk).update(state=Share.State.MISSING)
        for share in found.corrupt:
            Share.objects.filter(pk=share.pk).update(state=Share.State.CORRUPT)
        update = {"state": state, "problem": problem}
        if found.answered:
            update["seen_ms"] = now
        if found.verified or (found.answered and not (found.missing or found.corrupt)):
            update["verified_ms"] = now
        if found.used is not None:
            update["used"] = found.used
        Holder.objects.filter(pk=holder.pk).update(**update)

    space.write(thread, write)


def audit_step(*, now_ms: int | None = None, force: bool = False) -> dict[str, int]:
    """Check the holders that are due (or all, ``force``): how many holders were asked, and
    shares verified, missing, corrupt, and holders that did not answer."""
    totals = {"holders": 0, "verified": 0, "missing": 0, "corrupt": 0, "unreachable": 0}
    thread = space.storage_thread()
    if thread is None:
        return totals
    now = now_ms if now_ms is not None else clock_ms()
    audit = keys.audit_key(space.master_secret())
    alias = space.using(thread)
    holders = Holder.objects.using(alias).filter(state__in=AUDITED).order_by("id")
    for holder in holders:
        if not _due(holder, now, force):
            continue
        _tried[str(holder.pk)] = now
        found = _ask(holder, shares_to_check(alias, holder), audit)
        _record(thread, holder, found, now)
        totals["holders"] += 1
        totals["verified"] += len(found.verified)
        totals["missing"] += len(found.missing)
        totals["corrupt"] += len(found.corrupt)
        totals["unreachable"] += 0 if found.answered else 1
    return totals


def forget() -> None:
    """Tests: a node's data dir changed under this process."""
    _tried.clear()
