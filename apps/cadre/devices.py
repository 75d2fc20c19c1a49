"""Removing a device of the party (issue 17 §2).

Removal revokes the device's certificate in every party thread this node holds where it is
certified (the core's ``RevokeDevice``, which starts a key epoch without it, so it reads nothing
written from then on), and marks it removed in the control thread: no node of the party serves it
anything new, and a mirror stops being sent rosters and ops.

What removal does not do: a *full* device held the party's master secret, so whoever holds it
can still derive the member keys and certify a new device of theirs. A lost or stolen full device
should be followed by moving to a new identity (a new master secret, rejoining each thread) —
not built here.
"""

from __future__ import annotations

import logging

from apps.cadre import control
from apps.cadre.control import CadreError
from apps.cadre.models import PartyDevice
from apps.core.models import Thread
from apps.core.threads import services as thread_services
from apps.core.threads.services import ThreadServiceError

logger = logging.getLogger(__name__)

NOT_YOURS = "No device of yours has that id."


def _device_id(device: str) -> bytes:
    try:
        value = bytes.fromhex(device.strip()) if isinstance(device, str) else b""
    except ValueError:
        value = b""
    if len(value) != 32:
        raise CadreError("invalid", "A device id is 64 hexadecimal characters.")
    return value


def holding_threads() -> list[Thread]:
    """The party's threads this node holds: the control thread first."""
    found = control.control_thread()
    if found is None:
        return []
    return [found, *(t for t in control.party_thread_records() if t.pk != found.pk)]


def device_remove(*, device: str) -> None:
    """Remove ``device`` (hex) from the party: revoked in every thread here, marked removed.

    Refused for this node's own device ("from another of your devices": a node cannot lock
    itself out) and for the standby (recovery) key; ``not_found`` for a device the party does
    not list. Removing a removed device again does nothing."""
    key = _device_id(device)
    if key == control.this_device():
        raise CadreError("forbidden", "Remove this device from another of your devices.")
    if control.control_thread() is None:
        raise CadreError("not_found", NOT_YOURS)
    row = next((d for d in control.party_devices(include_gone=True) if d.device == key.hex()), None)
    if row is None:
        raise CadreError("not_found", NOT_YOURS)
    if row.kind == PartyDevice.Kind.STANDBY:
        raise CadreError(
            "forbidden",
            "The recovery key cannot be removed; it is what lets your recovery phrase restore "
            "your threads on a new node.",
        )
    if row.state == PartyDevice.State.REMOVED:
        return
    for thread in holding_threads():
        if not control.certified(thread, key):
            continue
        try:
            thread_services.device_revoke(thread=thread, device_id=key.hex())
        except ThreadServiceError as exc:
            raise CadreError(exc.code, f"{thread.name}: {exc}") from exc
    control.device_record(
        device=key,
        kind=row.kind,
        label=row.label,
        peer_id=row.peer_id,
        addrs=row.addrs,
        standby_index=row.standby_index,
        state=PartyDevice.State.REMOVED,
    )
    # The party's mirrors learn it now, not at the worker's next round: until their roster
    # changes they would pass the removed device what is written from now on.
    from apps.cadre import mirror_client

    try:
        mirror_client.rosters_step(urgent=True)
    except Exception:  # a mirror away is told at the worker's next round
        logger.info("telling the mirrors of a removal failed", exc_info=True)
