"""``/sereus/invite/1.0.0``: redeem an invite link at a member's node (DESIGN §9).

The joining node dials the inviter (the peer id and addresses in the link) and sends ``redeem``:
the thread, the invite's public key, its member and device keys, the device certificate and the
invite key's signature over them (the proof that it holds the link). The admitting node checks
that the device key is the one the connection authenticated, then redeems the invite through
the thread services, which validate it like any op (unknown, revoked, used, expired, role not
allowed to this admitter: each its own error code). It answers ``admitted`` and streams the log
the newcomer may have, in causal order, ending with ``done``; or ``err`` with the reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio
from libp2p.abc import INetStream
from libp2p.peer.id import ID

from apps.core.models import Thread
from apps.core.thread.invite import Invite
from apps.core.thread.replica import Verified
from apps.core.thread.writer import RedemptionRequest
from apps.core.threads import services
from apps.p2p import frames, threads_io
from apps.p2p.bridge import unwrap
from apps.p2p.host import device_of
from apps.p2p.protocols import INVITE_PROTOCOL
from apps.p2p.protocols.sync import LIMITS, receive_ops, send_ops
from apps.p2p.wire import PeerFault, PeerRefused

if TYPE_CHECKING:
    from apps.p2p.node import SereusNode

PROTOCOL = INVITE_PROTOCOL
REDEEM_TIMEOUT = 60.0  # to be admitted (the log itself may take longer: frames have their own)
NOT_HERE = "this node knows no such invite"


def _admit(thread: bytes, request: RedemptionRequest) -> list[bytes]:
    row = Thread.objects.filter(pk=thread.hex(), state=Thread.State.ACTIVE).first()
    if row is None:
        raise services.ThreadServiceError("unknown", NOT_HERE)
    return services.invite_admit(thread=row, request=request)


async def respond(node: SereusNode, stream: INetStream, device: bytes) -> None:
    channel = node.channel(stream, device)
    try:
        with trio.fail_after(REDEEM_TIMEOUT):
            frame = await channel.read()
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
            )
            try:
                await node.db(_admit, frame.thread, request)
            except services.ThreadServiceError as exc:
                code = exc.code if exc.code in frames.ERROR_CODES else "forbidden"
                await channel.refuse(code, str(exc))
                return
            await channel.send(frames.Admitted())
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
    """The joining side: reach the inviter, be admitted, receive the log (``join_receive``)."""
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
        raise _redeem_error(unwrap(error)) from error
    finally:
        await channel.close()
