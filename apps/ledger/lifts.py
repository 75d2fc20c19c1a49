"""Lifts (ADR 21): credit cleared around a cycle of tallies where each party owes the next, the
same amount on every tally, so debts cancel and nobody ends worse off.

The lift travels through the tallies themselves, as rows both parties of each tally hold; no
other protocol, and each node answers only from its own party's tallies and lift settings:

1. **Seek.** The originator (and referee) writes a ``seek`` message into a tally where it owes
   (``first``), naming the amount, the tally it must come back by (``target``: one where it is
   owed), the referee's key and the deadline.
2. **Reserve.** The creditor there, if its settings allow and the debtor owes enough beyond what
   other lifts hold, writes a ``reserve`` chit: from then on that much of the balance is held
   (payments cannot eat it, other lifts cannot take it; ``rules.next_state``). The debtor's node
   acknowledges it (``ack``): an op that follows the reservation, so every op of the debtor is
   ordered before or after it for good, and the reservation's place is final.
3. **Forward.** Once acknowledged, the creditor carries the seek on into a tally where it owes
   (the target, if it is a party of it), and so on, until the seek comes back to the
   originator by the target tally, where the originator reserves in turn.
4. **Decide.** When its own reservation is acknowledged, every reservation on the route is final
   and the referee signs *commit* (before the deadline) and writes a ``lift`` chit into its
   tallies; each node copies a decision it sees into its other tallies that hold the lift, so
   it travels the route. A ``fail`` message travels back instead when a node cannot carry the
   lift; the referee then signs *void*, whose ``release`` chits travel the same way.
5. **Time out.** At the deadline the referee voids a lift still seeking. A reservation no
   decision reached is released by either side once its op is stamped ``GRACE_MS`` after the
   deadline: a lost referee never locks credit for good.

What stays possible: a party that is offline from the commit until after the deadline can find
that its neighbour released instead of applying the commit (the neighbour gains, it loses). The
referee commits only before the deadline, and the decision is applied by whichever of the two
parties sees it first, so this needs the one party offline for the whole window.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings as django_settings
from django.utils import timezone

from apps.core.models import Thread
from apps.core.thread import keys
from apps.core.thread.rowid import member_tag, row_tag
from apps.core.threads.context import thread_context
from apps.core.threads.services import ThreadServiceError
from apps.ledger import rules, selectors, services
from apps.ledger.amounts import MAX_AMOUNT, format_amount
from apps.ledger.models import Chit, Lift, LiftMessage, LiftSettings

logger = logging.getLogger(__name__)

SEEK, ACK, FAIL = "seek", "ack", "fail"
MAX_HOPS = 8
MAX_PENDING = 4  # lifts held at once in one tally
_HEX = set("0123456789abcdef")


class LiftError(ValueError):
    """A lift that cannot start; the message is plain words."""


# -- keys and small reads ----------------------------------------------------------------------


def _referee_key(lift: str) -> Any:
    """The referee's key of a lift this node started: from its master secret and the lift, so
    nothing needs keeping."""
    from apps.core.threads.database import NodeKeys

    secret = NodeKeys.of_this_node().master_secret
    if secret is None:
        raise LiftError("this node cannot sign: its master secret is locked (unlock it first)")
    seed = hashlib.blake2b(b"sereus-lift-referee/" + bytes.fromhex(lift), digest_size=32)
    return keys.member_key(secret, seed.digest())


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _mine(thread: Thread, pk: Any) -> bool:
    """Whether this node's party wrote the row (its id carries the author's tag)."""
    key = pk.hex if isinstance(pk, uuid.UUID) else str(pk)
    return row_tag(key) == member_tag(bytes.fromhex(thread.member_id))


def _hex(value: Any, size: int) -> bool:
    return type(value) is str and len(value) == size and set(value) <= _HEX


def settings() -> LiftSettings:
    found = LiftSettings.objects.order_by("pk").first()
    return found if found is not None else LiftSettings(enabled=True, most=None)


def settings_save(*, enabled: bool, most: int | None) -> LiftSettings:
    if most is not None and not 0 < most <= MAX_AMOUNT:
        raise LiftError("the most a lift may clear is more than zero")
    row, _ = LiftSettings.objects.update_or_create(
        pk=1, defaults={"enabled": enabled, "most": most}
    )
    return row


def _tallies() -> dict[str, Thread]:
    return {t.id: t for t in selectors.tallies() if t.state == Thread.State.ACTIVE}


def _messages(thread: Thread, lift: str | None = None) -> list[LiftMessage]:
    with thread_context(thread.thread):
        rows = LiftMessage.objects.all() if lift is None else LiftMessage.objects.filter(lift=lift)
        return list(rows)


def _lift_chits(thread: Thread, lift: str | None = None) -> list[Chit]:
    with thread_context(thread.thread):
        rows = Chit.objects.exclude(lift=None)
        return list(rows if lift is None else rows.filter(lift=lift))


def _say(thread: Thread, lift: str, kind: str, body: dict[str, Any]) -> None:
    def write() -> None:
        LiftMessage.objects.create(lift=lift, kind=kind, body=json.dumps(body, sort_keys=True))

    services._write(thread, write)


# -- starting one --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ends:
    first: Thread  # this party owes here
    last: Thread  # this party is owed here


def _ends(amount: int, route: list[str] | None) -> Ends:
    tallies = _tallies()
    states = {i: selectors.tally(t) for i, t in tallies.items()}
    owing = [i for i, s in states.items() if s and s.state == "open" and -s.balance >= amount]
    owed = [i for i, s in states.items() if s and s.state == "open" and s.balance >= amount]
    if route:
        if len(route) != 2 or route[0] not in tallies or route[1] not in tallies:
            raise LiftError("a route names two of your tallies: where you owe, where you are owed")
        if route[0] not in owing or route[1] not in owed:
            raise LiftError(
                f"you must owe at least {format_amount(amount)} in the first tally and be "
                "owed as much in the second"
            )
        owing, owed = [route[0]], [route[1]]
    pairs = [(a, b) for a in owing for b in owed if states[a].unit == states[b].unit and a != b]  # type: ignore[union-attr]
    if not pairs:
        raise LiftError(
            f"no lift of {format_amount(amount)} is possible: you need a tally where you owe "
            "that much and one in the same unit where you are owed as much"
        )
    first, last = max(pairs, key=lambda p: min(-states[p[0]].balance, states[p[1]].balance))
    return Ends(tallies[first], tallies[last])


def lift_start(*, amount: int, route: list[str] | None = None) -> Lift:
    """Start a lift of ``amount`` (milli-units): this node is its referee."""
    if not 0 < amount <= MAX_AMOUNT:
        raise LiftError("a lift clears more than zero")
    ends = _ends(amount, route)
    unit = selectors.tally(ends.first).unit  # type: ignore[union-attr]
    lift = uuid.uuid4().hex
    deadline = _now_ms() + int(django_settings.SEREUS.lift_seconds * 1000)
    referee = bytes(_referee_key(lift).verify_key).hex()
    made = Lift.objects.create(
        id=lift, amount=amount, unit=unit.code, first=ends.first.id, last=ends.last.id,
        deadline=deadline,
    )  # fmt: skip
    body = {
        "amount": amount, "unit": unit.code, "target": ends.last.id, "referee": referee,
        "deadline": deadline, "route": [ends.first.id], "hops": 1,
    }  # fmt: skip
    _say(ends.first, lift, SEEK, body)
    _at(deadline, ends.first)
    return made


def _at(deadline_ms: int, thread: Thread) -> None:
    """Look at this tally again just after a deadline (and its grace) has passed."""
    from apps.ledger.duties import worker

    delay = max(0.0, (deadline_ms + rules.GRACE_MS - _now_ms()) / 1000) + 0.5
    timer = threading.Timer(delay, worker.wake, args=(thread.thread,))
    timer.daemon = True
    timer.start()


# -- the duty: what this node does in a tally when its rows change -------------------------------


_finished: set[str] = set()  # lifts decided in every tally of mine that held them
_answered: set[str] = set()  # the other side's seeks and fails this node has dealt with (ids)
MAX_BODY = 4096  # a lift message's JSON; a longer one is not read
MAX_NEW = 8  # the other side's new seeks and fails dealt with in one run (a flood waits)


def handle(thread: Thread) -> None:
    state = selectors.tally(thread)
    if state is None or state.state == "proposed":
        return
    chits = _lift_chits(thread)
    messages = [m for m in _messages(thread) if m.lift not in _finished]
    reserves = {c.lift.hex: c for c in chits if c.kind == rules.RESERVE}
    decided = {c.lift.hex for c in chits if c.kind in (rules.LIFT, rules.RELEASE)}
    pending = {lift: c for lift, c in reserves.items() if lift not in decided}
    acked = {m.lift for m in messages if m.kind == ACK and not _mine(thread, m.pk)}
    for lift, chit in pending.items():
        if not _mine(thread, chit.pk) and not any(
            m.kind == ACK and m.lift == lift and _mine(thread, m.pk) for m in messages
        ):
            _say(thread, lift, ACK, {})  # the other side's reservation: its place is final
    new = [
        m
        for m in messages
        if m.kind in (SEEK, FAIL) and m.pk.hex not in _answered and not _mine(thread, m.pk)
    ]
    for message in new[:MAX_NEW]:
        if message.kind == SEEK:
            _seek_arrived(thread, state, message, reserves, messages, len(pending))
        else:
            _fail_arrived(thread, message)
        _answered.add(message.pk.hex)
    if len(new) > MAX_NEW:
        from apps.ledger.duties import worker

        worker.wake(thread.thread)  # the rest in the next run
    for lift, chit in pending.items():
        if _mine(thread, chit.pk) and lift in acked:
            _reserved(thread, lift, chit)
    # Decisions travel: one seen here goes to my other tallies holding the lift, and one seen
    # elsewhere comes here.
    for chit in chits:
        if chit.kind in (rules.LIFT, rules.RELEASE) and chit.sig and chit.lift.hex not in _finished:
            _relay(chit.lift.hex, chit.kind, bytes(chit.sig))
    for lift, chit in pending.items():
        known = _decision(lift)
        if known is not None:
            _relay(lift, *known)
        else:
            _expire(thread, lift, chit)
    _referee_deadlines()


def _decision(lift: str) -> tuple[str, bytes] | None:
    """A referee's decision of the lift that any tally of mine holds."""
    for thread in _tallies().values():
        for chit in _lift_chits(thread, lift):
            if chit.kind in (rules.LIFT, rules.RELEASE) and chit.sig:
                return chit.kind, bytes(chit.sig)
    return None


def _seek_body(body: Any, state: selectors.TallyState) -> str | None:
    if not isinstance(body, str) or len(body) > MAX_BODY:
        return "the request to carry the lift is malformed"
    try:
        data = json.loads(body)
    except ValueError:
        return "the request to carry the lift is malformed"
    if not isinstance(data, dict):
        return "the request to carry the lift is malformed"
    amount, route = data.get("amount"), data.get("route")
    if type(amount) is not int or not 0 < amount <= MAX_AMOUNT:
        return "the lift's amount is not valid"
    if data.get("unit") != state.unit.code:
        return f"this tally counts in {state.unit.code}"
    if not (_hex(data.get("target"), 64) and _hex(data.get("referee"), 64)):
        return "the request to carry the lift is malformed"
    if type(data.get("deadline")) is not int or type(data.get("hops")) is not int:
        return "the request to carry the lift is malformed"
    if not isinstance(route, list) or not all(_hex(r, 64) for r in route):
        return "the request to carry the lift is malformed"
    if data["hops"] > MAX_HOPS or len(route) > MAX_HOPS:
        return "the lift has gone round too many tallies"
    return None


def _seek_arrived(
    thread: Thread,
    state: selectors.TallyState,
    message: LiftMessage,
    reserves: dict[str, Chit],
    messages: list[LiftMessage],
    held: int,
) -> None:
    lift = message.lift
    if lift in reserves and _mine(thread, reserves[lift].pk):
        return  # reserved already
    if any(m.kind == FAIL and m.lift == lift and _mine(thread, m.pk) for m in messages):
        return  # said no already
    problem = _seek_body(message.body, state)
    data = json.loads(message.body) if problem is None else {}
    allowed = settings()
    if problem is None:
        if not allowed.enabled:
            problem = "this party does not carry lifts"
        elif allowed.most is not None and data["amount"] > allowed.most:
            problem = f"this party carries lifts of at most {format_amount(allowed.most)}"
        elif data["deadline"] <= _now_ms():
            problem = "the lift's time ran out"
        elif held >= MAX_PENDING:
            problem = "too many lifts at once in this tally"
    if problem is None:
        columns = {
            "lift": uuid.UUID(hex=lift),
            "referee": bytes.fromhex(data["referee"]),
            "deadline": data["deadline"],
        }
        try:
            services._chain_write(thread, rules.RESERVE, data["amount"], lift=columns)
            _at(data["deadline"], thread)
            return
        except ThreadServiceError as exc:
            problem = str(exc)
    _say(thread, lift, FAIL, {"reason": problem[:200]})


def _reserved(thread: Thread, lift: str, chit: Chit) -> None:
    """My reservation here is final: carry the lift on, or, back at its start, commit it."""
    mine = Lift.objects.filter(pk=lift).first()
    if mine is not None:
        if mine.last == thread.id and mine.state == Lift.State.SEEKING:
            _decide(mine, rules.LIFT)
        return
    seek = next((m for m in _messages(thread, lift) if m.kind == SEEK), None)
    if seek is None or _seek_body(seek.body, selectors.tally(thread)) is not None:  # type: ignore[arg-type]
        return
    data = json.loads(seek.body)
    tallies = _tallies()
    for other in tallies.values():
        if other.id != thread.id and any(
            m.kind == SEEK and _mine(other, m.pk) for m in _messages(other, lift)
        ):
            return  # carried on already
    target = tallies.get(data["target"])
    candidates = [target] if target is not None else []
    candidates += sorted(
        (t for i, t in tallies.items() if i not in data["route"] and i != thread.id),
        key=lambda t: t.name,
    )
    for other in candidates:
        other_state = selectors.tally(other)
        if (
            other_state is None
            or other_state.state != "open"
            or other_state.unit.code != data["unit"]
            or -other_state.balance < data["amount"]
        ):
            continue
        body = {**data, "route": [*data["route"], other.id], "hops": data["hops"] + 1}
        _say(other, lift, SEEK, body)
        return
    _say(thread, lift, FAIL, {"reason": "no way on from here"})


def _fail_arrived(thread: Thread, message: LiftMessage) -> None:
    lift = message.lift
    mine = Lift.objects.filter(pk=lift, state=Lift.State.SEEKING).first()
    try:
        said = json.loads(message.body) if len(message.body) <= MAX_BODY else {}
        reason = str(said.get("reason", ""))[:200] if isinstance(said, dict) else ""
    except ValueError:
        reason = ""
    if mine is not None:
        _decide(mine, rules.RELEASE, reason or "a party on the way could not carry it")
        return
    # Pass it back to where the lift came from: the tally where I reserved it.
    for other in _tallies().values():
        if other.id == thread.id:
            continue
        for chit in _lift_chits(other, lift):
            if chit.kind == rules.RESERVE and _mine(other, chit.pk):
                if not any(m.kind == FAIL and _mine(other, m.pk) for m in _messages(other, lift)):
                    _say(other, lift, FAIL, {"reason": reason})
                return


def _decide(lift: Lift, kind: str, reason: str = "") -> None:
    """The referee's decision: commit (only before the deadline) or void."""
    if kind == rules.LIFT and _now_ms() >= lift.deadline - 1000:
        kind, reason = rules.RELEASE, "the lift's time ran out"
    decision = "commit" if kind == rules.LIFT else "void"
    sig = _referee_key(lift.id).sign(rules.lift_message(lift.id, decision)).signature
    updated = Lift.objects.filter(pk=lift.pk, state=Lift.State.SEEKING).update(
        state=Lift.State.COMMITTED if kind == rules.LIFT else Lift.State.VOIDED,
        reason=reason,
        decided_at=timezone.now(),
    )
    if updated:
        _relay(lift.id, kind, sig)


def _relay(lift: str, kind: str, sig: bytes) -> None:
    """Apply a decision in every tally of mine that still holds the lift."""
    finished = True
    for thread in _tallies().values():
        chits = _lift_chits(thread, lift)
        reserve = next((c for c in chits if c.kind == rules.RESERVE), None)
        if reserve is None or any(c.kind in (rules.LIFT, rules.RELEASE) for c in chits):
            continue
        state = selectors.tally(thread)
        if state is None:
            continue
        columns = {
            "lift": uuid.UUID(hex=lift),
            "sig": sig,
            "creditor_owner": row_tag(reserve.pk.hex) == member_tag(_owner_of(thread, state)),
        }
        try:
            services._chain_write(thread, kind, reserve.amount, lift=columns)
        except ThreadServiceError:
            finished = False
            logger.warning("ledger: a lift's decision could not be written in a tally yet")
    if finished:
        _finished.add(lift)


def _owner_of(thread: Thread, state: selectors.TallyState) -> bytes:
    me = bytes.fromhex(thread.member_id)
    return me if state.i_am_owner else bytes.fromhex(state.partner or "00" * 32)


def _expire(thread: Thread, lift: str, chit: Chit) -> None:
    """A reservation no decision reached, past its deadline and grace: release it."""
    if _now_ms() <= chit.deadline + rules.GRACE_MS:
        return
    state = selectors.tally(thread)
    if state is None:
        return
    columns = {
        "lift": uuid.UUID(hex=lift),
        "creditor_owner": row_tag(chit.pk.hex) == member_tag(_owner_of(thread, state)),
    }
    try:
        services._chain_write(thread, rules.RELEASE, chit.amount, lift=columns)
    except ThreadServiceError:
        logger.warning("ledger: an expired lift could not be released in a tally yet")


def _referee_deadlines() -> None:
    for lift in Lift.objects.filter(state=Lift.State.SEEKING, deadline__lte=_now_ms()):
        _decide(lift, rules.RELEASE, "the lift's time ran out")
