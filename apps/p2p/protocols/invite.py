"""``/sereus/invite/1.0.0``: redeem an invite link at a member's node (DESIGN §9).

The joining node dials the inviter (the peer id and addresses in the link) and sends ``redeem``:
the thread, the invite's public key, its member and device keys, the device certificate and the
invite key's signature over them (the proof that it holds the link). The admitting node checks
that the device key is the one the connection authenticated, then redeems the invite through
the thread services, which check it before writing anything (revoked, used, expired, role not
allowed to this admitter: each its own error code). It answers ``admitted`` and streams the log
the newcomer may have, in causal order, ending with ``done``; or ``err`` with the reason.

- **Nothing for strangers**: an unknown thread, a thread this node is not active in, an unknown
  invite and a proof that does not verify all get the same ``err unknown`` with the same words
  (``redemption.NOT_HERE``): without the invite secret nobody learns whether this node is in a
  thread.
- **Idempotent**: a newcomer that was admitted already (same invite, member and device) is
  answered ``admitted`` and sent the log again, with nothing written: a joiner whose answer was
  lost redeems again until it has it. On the joining side, a failure after ``redeem`` was sent
  is reported as ``interrupted`` (the admission may have been committed): the thread services
  keep the thread joining and ``apps.p2p.joins`` tries again.

Test-only fault injection (never set it on a real node): ``SEREUS_TEST_DROP_INVITE_LOGS=<n>``
makes this node, as the admitting side, break off the first ``n`` redemptions it admits right
after answering ``admitted``, before the log, as a lost reply would. Read once, at import.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import trio
from libp2p.abc import INetStream
from libp2p.peer.id import ID

from apps.core.models import Thread
from apps.core.thread.invite import Invite
from apps.core.thread.replica import Verified
from apps.core.thread.writer import RedemptionRequest
from apps.core.threads import services
from apps.core.threads.database import ThreadDatabaseError
from apps.core.threads.joining import INTERRUPTED
from apps.core.threads.redemption import NOT_HERE
from apps.p2p import frames, threads_io
from apps.p2p.bridge import unwrap
from apps.p2p.host import device_of
from apps.p2p.protocols import INVITE_PROTOCOL
from apps.p2p.protocols.flights import LIMITS, receive_ops, send_ops
from apps.p2p.wire import PeerFault, PeerRefused

if TYPE_CHECKING:
    from apps.p2p.node import SereusNode

logger = logging.getLogger(__name__)

PROTOCOL = INVITE_PROTOCOL
REDEEM_TIMEOUT = 60.0  # to be admitted (the log itself may take longer: frames have their own)
_log_drops = int(os.environ.get("SEREUS_TEST_DROP_INVITE_LOGS", "0") or 0)


def _admit(thread: bytes, request: RedemptionRequest) -> None:
    row = Thread.objects.filter(pk=thread.hex()).first()
    if row is None:
        raise services.ThreadServiceError("unknown", NOT_HERE)
    try:
        services.invite_admit(thread=row, request=request)
    except ThreadDatabaseError as exc:  # a damaged thread is no thread, to a stranger
        raise services.ThreadServiceError("unknown", NOT_HERE) from exc


def _drop_log() -> bool:
    """The test-only fault: whether to break off this redemption before its log."""
    global _log_drops
    if _log_drops <= 0:
        return False
    _log_drops -= 1
    logger.warning("SEREUS_TEST_DROP_INVITE_LOGS: breaking off a redemption before its log")
    return True


async def respond(node: SereusNode, stream: INetStream, device: bytes) -> None:
    channel = node.channel(stream, device)
    try:
        with trio.fail_after(REDEEM_TIMEOUT):
            frame = await channel.read_first()
            if not isinstance(frame, frames.Redeem):
                raise PeerFault(f"an invite session starts with redeem, not {type(frame).__name__}")
            if frame.device != device:
                await channel.refuse(
                    "forbidden", "the device being admitted must be the one that is connected"
                )
                return
            request = RedemptionRequest(
                invite=frame.invite,
                member=frame.member,
                device=frame.device,
                device_cert=frame.cert,
                proof=frame.proof,
                device_proof=frame.device_proof,
            )
            try:
                await node.db(_admit, frame.thread, request)
            except services.ThreadServiceError as exc:
                code = exc.code if exc.code in frames.ERROR_CODES else "forbidden"
                await channel.refuse(code, str(exc))
                return
            await channel.send(frames.Admitted())
        if _drop_log():
            await channel.reset()
            return
        # The newcomer's keys first (they wait there for their past): with them it reads the
        # log as it comes, instead of holding every op until its own admission arrives last.
        sealed = await node.db(threads_io.keys_sealed_to, frame.thread, frame.member)
        if sealed:
            await channel.send(frames.Ops(sealed))
        # The newcomer's log: all of it its new access allows, as a sync flight would send it.
        grant, removal, log = await node.db(threads_io.opening, frame.thread, device, {}, **LIMITS)
        if log is not None:
            await send_ops(node, channel, frame.thread, grant, removal, log)
            await channel.send(frames.Done(log.mine))
    finally:
        await channel.close()


def _error(code: str, message: str) -> services.ThreadServiceError:
    return services.ThreadServiceError(code, message)


def _redeem_error(exc: BaseException) -> services.ThreadServiceError:
    """What to tell the person redeeming, whatever went wrong on the way."""
    match exc:
        case services.ThreadServiceError():
            return exc
        case PeerRefused():
            return _error(exc.code, exc.detail)
        case PeerFault():
            return _error("unreachable", f"the inviter's node broke the protocol: {exc}")
        case trio.TooSlowError():
            return _error("unreachable", "the inviter's node stopped answering")
        case _:
            return _error("unreachable", f"the connection to the inviter broke ({exc!r})")


async def redeem(node: SereusNode, invite: Invite, request: RedemptionRequest) -> None:
    """The joining side: reach the inviter, be admitted, receive the log (``join_receive``).

    The inviter's addresses in the link are dialed under the same rule as members' addresses
    (``addresses``): the link may come from anyone."""
    try:
        inviter = ID.from_base58(invite.inviter)
    except Exception as exc:  # a damaged link
        raise _error("malformed", "the inviter's peer id in the link is not valid") from exc
    inviter_device = device_of(inviter)
    if inviter_device is None:
        raise _error("malformed", "the inviter's peer id in the link is not a device key")
    if inviter_device == node.device:
        raise _error("conflict", "this invite was made by this node")
    if not node.connected(inviter_device) and not await node.dial_addrs(
        inviter, list(invite.addrs)
    ):
        raise _error(
            "unreachable",
            "cannot reach the inviter's node at the addresses in the link: is it online?",
        )
    try:
        stream = await node.open_stream(inviter_device, PROTOCOL)
    except Exception as exc:  # connected, but no stream: same for the user
        raise _error("unreachable", f"the inviter's node did not answer ({exc!r})") from exc
    channel = node.channel(stream, inviter_device)
    try:
        await channel.send(
            frames.Redeem(
                thread=invite.thread,
                invite=request.invite,
                member=request.member,
                device=request.device,
                cert=request.device_cert,
                proof=request.proof,
                device_proof=request.device_proof,
            )
        )
        with trio.fail_after(REDEEM_TIMEOUT):
            answer = await channel.read()
        if not isinstance(answer, frames.Admitted):
            raise PeerFault(f"expected admitted, got {type(answer).__name__}")

        async def apply(checked: Verified) -> None:
            await node.db(services.join_receive, invite=invite, raws=checked)

        frame, _count = await receive_ops(node, channel, apply)
        if not isinstance(frame, frames.Done):
            raise PeerFault(f"unexpected {type(frame).__name__} frame in the log")
        node.vv_seen(invite.thread, inviter_device, frame.vv)
    except Exception as error:
        failure = _redeem_error(unwrap(error))
        if failure.code == "unreachable":
            # Not a refusal, and the redeem may have reached the inviter (even a write that
            # failed may have): the inviter may have committed the admission, its answer lost.
            node.joins.poke()
            raise _error(INTERRUPTED, f"the inviter's answer was lost ({failure})") from error
        raise failure from error
    finally:
        await channel.close()
