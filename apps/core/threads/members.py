"""Thread services for members and devices: a member's role or removal, another device of
this party certified or revoked, and where this device can be reached. ``services``
re-exports these."""

from __future__ import annotations

from apps.core.models import Thread
from apps.core.thread import keys
from apps.core.thread import payloads as p
from apps.core.thread.writer import ThreadWriter
from apps.core.threads.service_base import ThreadServiceError, _database, _key, _write


def member_set_role(*, thread: Thread, member_id: str, role: str) -> None:
    member = _key(member_id, "the member id")
    _write(thread, lambda writer: writer.set_role(member, role))


def member_remove(*, thread: Thread, member_id: str) -> None:
    """Remove a member and start a new key epoch without them."""
    member = _key(member_id, "the member id")
    _write(thread, lambda writer: writer.remove_member(member))


def device_certify(*, thread: Thread, device_id: str, device_proof: str) -> None:
    """Admit another device of this party (e.g. its second node) to act for it in the thread.
    ``device_proof``: that device's signature saying it acts for this member in this thread
    (``keys.device_proof_sign``; the other node prints it with ``manage.py device_proof``), so
    nobody can claim a device key that is not theirs."""
    device = _key(device_id, "the device id")
    try:
        proof = bytes.fromhex(device_proof)
    except ValueError:
        proof = b""
    if len(proof) != 64:
        raise ThreadServiceError("invalid", "the device's proof must be 128 hexadecimal characters")

    def certify(writer: ThreadWriter):
        cert = keys.device_cert_sign(writer.member_key, writer.thread, device)
        return writer.control(
            p.CertifyDevice(
                member=writer.member, device=device, device_cert=cert, device_proof=proof
            )
        )

    _write(thread, certify)


def device_revoke(*, thread: Thread, device_id: str) -> None:
    device = _key(device_id, "the device id")
    _write(thread, lambda writer: writer.revoke_device(device))


def addresses_set(*, thread: Thread, addrs: tuple[str, ...]) -> bool:
    """Record where this device can be reached in the thread (for the other members' nodes);
    False when that is already what the thread says."""
    database = _database(thread)
    with database.lock:
        state = database.replica().control.state
        mine = bytes(database.node.device.verify_key)
        if state.addresses.get(mine, ()) == addrs or state.device_member(mine) is None:
            return False
    _write(thread, lambda writer: writer.control(p.SetAddresses(addrs=addrs)))
    return True
