"""The party's control thread: its threads, its devices, the proofs its devices leave.

The only writer of the control thread's rows. The control thread is made on the first cadre
action (a device link, a mirror), never at start-up: a party with one node has no use for it.
Its create op is signed by the party's *genesis* key (``keys.genesis_key``), so its id is the
party's alone and derivable from the phrase; the genesis key then certifies the creating node's
own device and is never used again.

While the control thread exists, every thread of the party has the party's current *standby*
key certified (``certify_standby``): a node restored from the phrase alone acts as it once, to
certify its own device (``apps.cadre.restore``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.cadre import keys as cadre_keys
from apps.cadre.models import DeviceProof, PartyDevice, PartySetting, PartyThread
from apps.cadre.policy import RULES_APP, SHAPE
from apps.core.models import Thread
from apps.core.thread import keys
from apps.core.thread.rowid import row_id_for
from apps.core.thread.writer import ThreadWriter
from apps.core.threads import services as thread_services
from apps.core.threads import signals
from apps.core.threads.context import thread_context
from apps.core.threads.database import NodeKeys
from apps.core.threads.registry import thread_database
from apps.core.threads.services import ThreadServiceError
from apps.core.threads.thread_apps import app_enable

logger = logging.getLogger(__name__)

CONTROL_NAME = "My devices"
T = TypeVar("T")


class CadreError(Exception):
    """A cadre action that cannot be done, in words; ``code`` as the API maps it to a status:
    invalid, forbidden, conflict, unavailable, not_found."""

    def __init__(self, code: str, words: str) -> None:
        super().__init__(words)
        self.code = code
        self.words = words


def _hex(value: bytes) -> str:
    return value.hex()


def node_keys() -> NodeKeys:
    return NodeKeys.of_this_node()


def master_secret() -> bytes:
    secret = node_keys().master_secret
    if secret is None:
        raise CadreError(
            "unavailable", "This node has no usable recovery secret (claim it, or unlock it)."
        )
    return secret


def this_device() -> bytes:
    return bytes(node_keys().device.verify_key)


def control_thread_id_here() -> bytes | None:
    secret = node_keys().master_secret
    return None if secret is None else cadre_keys.control_thread_id(secret)


def control_thread() -> Thread | None:
    thread_id = control_thread_id_here()
    if thread_id is None:
        return None
    return Thread.objects.filter(pk=_hex(thread_id), state=Thread.State.ACTIVE).first()


def party_thread_records() -> list[Thread]:
    """This node's threads that belong in the control thread (every active one but itself)."""
    return list(thread_services.thread_list().filter(state=Thread.State.ACTIVE))


# -- making it ----------------------------------------------------------------------------------


def control_ensure() -> Thread:
    """The control thread, made now if the party has none on this node."""
    found = control_thread()
    if found is not None:
        return found
    secret = master_secret()
    node = node_keys()
    thread_id = cadre_keys.control_thread_id(secret)
    if Thread.objects.filter(pk=_hex(thread_id)).exists():
        raise CadreError("conflict", "This node's device list is damaged or was left.")
    writer = ThreadWriter.create(
        master_secret=secret,
        device_key=cadre_keys.genesis_key(secret),
        name=CONTROL_NAME,
        app=SHAPE,
        nonce=cadre_keys.control_nonce(secret),
    )
    assert writer.thread == thread_id
    writer.certify_device(node.device)
    database = thread_database(thread_id)
    database.ingest(op.raw for op in writer.replica.admitted)
    thread = Thread.objects.create(
        id=_hex(thread_id),
        name=CONTROL_NAME,
        app=SHAPE,
        member_id=_hex(writer.member),
        role="owner",
    )
    thread_services.index_refresh(thread=thread)
    app_enable(thread=thread, app=RULES_APP)
    device_record(device=bytes(node.device.verify_key), kind=PartyDevice.Kind.FULL)
    standby = cadre_keys.standby_key(secret, 0)
    device_record(device=bytes(standby.verify_key), kind=PartyDevice.Kind.STANDBY, standby_index=0)
    certify_standby(thread)
    for other in party_thread_records():
        if other.pk != thread.pk:
            thread_record(other)
            certify_standby(other)
    signals.thread_added.send(sender=Thread, thread=thread_id)
    return thread


# -- its rows -----------------------------------------------------------------------------------


def _member() -> bytes:
    control = control_thread()
    if control is None:
        raise CadreError("unavailable", "This node has no device list yet.")
    return bytes.fromhex(control.member_id)


def _rows(action: Callable[[], T]) -> T:
    """Run ``action`` in one transaction of the control thread (one op)."""
    control = control_thread()
    if control is None:
        raise CadreError("unavailable", "This node has no device list yet.")
    database = thread_database(control.thread)
    with thread_context(control.thread), transaction.atomic(using=database.alias):
        return action()


def _upsert(model: Any, seed: bytes, fields: dict[str, Any]) -> Any:
    pk = row_id_for(_member(), seed)

    def write() -> Any:
        row = model.objects.filter(pk=pk).first()
        if row is None:
            return model.objects.create(pk=pk, **fields)
        changed = [name for name, value in fields.items() if getattr(row, name) != value]
        for name in changed:
            setattr(row, name, fields[name])
        if changed:
            row.save(update_fields=changed)
        return row

    try:
        return _rows(write)
    except IntegrityError:  # another writer of this node made the row meanwhile: update it
        return _rows(write)


def device_record(
    *,
    device: bytes,
    kind: str,
    label: str = "",
    peer_id: str = "",
    addrs: Iterable[str] = (),
    standby_index: int | None = None,
    state: str = PartyDevice.State.ACTIVE,
) -> PartyDevice:
    from apps.core.identity import peer_id_from_public_key

    existing = _in_control(lambda: PartyDevice.objects.filter(device=_hex(device)).first())
    fields: dict[str, Any] = {
        "device": _hex(device),
        "kind": kind,
        "label": label or (existing.label if existing else ""),
        "peer_id": peer_id or peer_id_from_public_key(device),
        "addrs": list(addrs) or (existing.addrs if existing else []),
        "standby_index": standby_index,
        "state": state,
        "added_at": existing.added_at if existing and existing.added_at else timezone.now(),
    }
    return _upsert(PartyDevice, b"device/" + device, fields)


def thread_record(thread: Thread) -> PartyThread:
    fields = {"thread_id": thread.id, "app": thread.app, "name": thread.name, "state": "active"}
    return _upsert(PartyThread, b"thread/" + thread.thread, fields)


def thread_left(thread_id: str) -> None:
    row = _in_control(lambda: PartyThread.objects.filter(thread_id=thread_id).first())
    if row is not None and row.state != PartyThread.State.LEFT:
        _upsert(
            PartyThread,
            b"thread/" + bytes.fromhex(thread_id),
            {"state": PartyThread.State.LEFT},
        )


def proof_record(*, thread_id: bytes, device: bytes, proof: bytes) -> DeviceProof:
    fields = {"thread_id": _hex(thread_id), "device": _hex(device), "proof": _hex(proof)}
    return _upsert(DeviceProof, b"proof/" + thread_id + device, fields)


def setting_set(key: str, value: Any) -> None:
    _upsert(PartySetting, b"setting/" + key.encode(), {"key": key, "value": value})


def setting_get(key: str, default: Any = None) -> Any:
    row = _in_control(lambda: PartySetting.objects.filter(key=key).first())
    return default if row is None else row.value


def _in_control(query: Callable[[], T]) -> T:
    control = control_thread()
    if control is None:
        raise CadreError("unavailable", "This node has no device list yet.")
    with thread_context(control.thread):
        return query()


def party_threads() -> list[PartyThread]:
    if control_thread() is None:
        return []
    return _in_control(lambda: list(PartyThread.objects.filter(state=PartyThread.State.ACTIVE)))


def party_devices(*, include_gone: bool = False) -> list[PartyDevice]:
    if control_thread() is None:
        return []

    def query() -> list[PartyDevice]:
        rows = PartyDevice.objects.all()
        return list(rows if include_gone else rows.filter(state=PartyDevice.State.ACTIVE))

    return _in_control(query)


def standby_current() -> PartyDevice | None:
    found = [d for d in party_devices() if d.kind == PartyDevice.Kind.STANDBY]
    return max(found, key=lambda d: d.standby_index or 0) if found else None


def device_addresses() -> dict[str, list[str]]:
    """Where each device of the party says it listens (its own address op in the control
    thread), or, for a mirror that cannot write there, what the party recorded for it."""
    control = control_thread()
    if control is None:
        return {}
    database = thread_database(control.thread)
    with database.lock:
        published = dict(database.replica().control.state.addresses)
    found = {_hex(device): list(addrs) for device, addrs in published.items()}
    for row in party_devices():
        if row.addrs and not found.get(row.device):
            found[row.device] = list(row.addrs)
    return found


# -- certification -------------------------------------------------------------------------------


def certified(thread: Thread, device: bytes) -> bool:
    database = thread_database(thread.thread)
    with database.lock:
        member = database.replica().control.state.device_member(device)
    return member is not None and _hex(member) == thread.member_id


def certify(thread: Thread, device: bytes, proof: bytes) -> bool:
    """Certify ``device`` for this party in ``thread`` with its own ``proof``; False when it is
    certified already. The core checks the proof (``CertifyDevice``)."""
    if certified(thread, device):
        return False
    try:
        thread_services.device_certify(
            thread=thread, device_id=_hex(device), device_proof=_hex(proof)
        )
    except ThreadServiceError as exc:
        # Another writer of this node (the worker, another process) certified it meanwhile.
        if certified(thread, device):
            return False
        raise CadreError(exc.code, f"{thread.name}: {exc}") from exc
    return True


def certify_standby(thread: Thread) -> bool:
    standby = standby_current()
    if standby is None or standby.standby_index is None:
        return False
    key = cadre_keys.standby_key(master_secret(), standby.standby_index)
    proof = keys.device_proof_sign(key, thread.thread, bytes.fromhex(thread.member_id))
    return certify(thread, bytes(key.verify_key), proof)


def thread_added(thread_id: bytes) -> None:
    """A thread this node created, joined or adopted: listed in the control thread, with the
    standby key certified and every device that left a proof for it."""
    control = control_thread()
    if control is None or control.thread == thread_id:
        return
    thread = Thread.objects.filter(pk=_hex(thread_id), state=Thread.State.ACTIVE).first()
    if thread is None:
        return
    thread_record(thread)
    certify_standby(thread)
    _certify_proofs(thread)


def _certify_proofs(thread: Thread) -> None:
    active = {d.device for d in party_devices() if d.kind != PartyDevice.Kind.STANDBY}
    proofs = _in_control(lambda: list(DeviceProof.objects.filter(thread_id=thread.id)))
    for row in proofs:
        if row.device not in active:
            continue
        try:
            certify(thread, bytes.fromhex(row.device), bytes.fromhex(row.proof))
        except (CadreError, ValueError) as exc:
            logger.info("certifying a device in %s failed: %s", thread.id[:12], exc)


def proofs_step() -> None:
    """Worker step: leave this device's proof for party threads it is not in yet; certify the
    devices that left theirs where this node can; keep the standby certified everywhere."""
    control = control_thread()
    if control is None:
        return
    secret = master_secret()
    me = node_keys().device
    mine = {t.id: t for t in party_thread_records()}
    have = _in_control(
        lambda: set(
            DeviceProof.objects.filter(device=_hex(bytes(me.verify_key))).values_list(
                "thread_id", flat=True
            )
        )
    )
    removed = [
        bytes.fromhex(d.device)
        for d in party_devices(include_gone=True)
        if d.state == PartyDevice.State.REMOVED
    ]
    for row in party_threads():
        local = mine.get(row.thread_id)
        if local is not None:
            certify_standby(local)
            _certify_proofs(local)
            _revoke_removed(local, removed)
            continue
        if row.thread_id in have:
            continue
        thread_id = bytes.fromhex(row.thread_id)
        member = bytes(keys.member_key(secret, thread_id).verify_key)
        proof = keys.device_proof_sign(me, thread_id, member)
        proof_record(thread_id=thread_id, device=bytes(me.verify_key), proof=proof)


def _revoke_removed(thread: Thread, removed: list[bytes]) -> None:
    """A device another device of the party removed is revoked here too, in a thread that
    device did not hold (a thread this node joined while it was away)."""
    for device in removed:
        if certified(thread, device):
            try:
                thread_services.device_revoke(thread=thread, device_id=_hex(device))
            except ThreadServiceError as exc:
                logger.info("revoking a removed device in %s failed: %s", thread.id[:12], exc)


def adopt_step() -> None:
    """Worker step: take in the party threads this node lacks, from a device of the party."""
    control = control_thread()
    if control is None:
        return
    local = set(Thread.objects.values_list("id", flat=True))
    missing = [row for row in party_threads() if row.thread_id not in local]
    if not missing:
        return
    from apps.cadre import logs

    me = _hex(this_device())
    peers = [
        (d.peer_id, d.device)
        for d in party_devices()
        if d.device != me and d.kind in (PartyDevice.Kind.FULL, PartyDevice.Kind.MIRROR)
    ]
    where = device_addresses()
    for row in missing:
        thread_id = bytes.fromhex(row.thread_id)
        for peer_id, device in peers:
            addrs = where.get(device, [])
            if not addrs:
                continue
            try:
                raws = logs.fetch_log(thread=thread_id, peer=peer_id, addrs=addrs)
                thread_services.thread_adopt(thread=thread_id, raws=raws)
            except Exception as exc:  # not certified there yet, or that device is away
                logger.debug("adopting %s from %s: %s", row.thread_id[:12], peer_id[:12], exc)
                continue
            break


# -- settings that follow the person -------------------------------------------------------------

FOLLOWING = ("display_name",)  # node settings every device of the party shares
_seen: dict[str, Any] = {}  # the control thread's value of each, as this process last saw it


def _local_setting(key: str) -> Any:
    from apps.core.threads import naming

    return naming.display_name() if key == "display_name" else None


def _apply_setting(key: str, value: Any) -> None:
    from apps.core.threads import naming

    if key == "display_name" and isinstance(value, str) and value:
        naming.display_name_set(name=value)


def settings_step() -> None:
    """Worker step: a setting changed on this device goes into the control thread; one changed
    on another device (the control thread's value moved since last seen) is taken here."""
    if control_thread() is None:
        return
    for key in FOLLOWING:
        shared, local = setting_get(key), _local_setting(key)
        if shared == local:
            _seen[key] = shared
        elif (key in _seen and shared != _seen[key]) or (not local and shared):
            _apply_setting(key, shared)
            _seen[key] = shared
        elif local:
            setting_set(key, local)
            _seen[key] = local
