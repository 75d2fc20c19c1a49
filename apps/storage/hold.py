"""Holding threads and the storage thread's holders (ADR 25).

Owner side: ``holder_invite`` makes a holding thread for one friend (the terms: the party's id,
proved by the party key, and the bytes asked), a ``Holder`` row waiting for the friend, and a
single-use invite at the ``holder`` role. ``holders_refresh`` keeps the storage thread's holder
rows as the holding threads say (the friend's device, peer id, grant, addresses; left), and
this device's own row (every full device of the party holds for it).

Holder side: ``hold_joined`` (on ``thread_added``) checks the terms of a holding thread this
node joined as holder, holds for that party (``HeldParty``) and writes the quota it grants
(``HoldQuota``), once. ``quota_grant`` changes that grant.

Rows with deterministic ids (``row_id_for``): one holder row per device and per holding thread,
one quota row per holding member, whichever of the party's devices writes it first; the others
find it and write nothing.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError

from apps.core.models import Thread
from apps.core.thread.policy import OWNER
from apps.core.thread.rowid import row_id_for
from apps.core.threads import services as thread_services
from apps.core.threads.database import WriteRefused
from apps.core.threads.registry import thread_database
from apps.core.threads.services import ThreadServiceError
from apps.core.threads.thread_apps import app_enable
from apps.storage import held, keys, space
from apps.storage.models import HeldParty, HeldShare, Holder, HoldQuota, HoldTerms
from apps.storage.policy import HOLD_APP, HOLD_SHAPE, HOLDER

logger = logging.getLogger(__name__)

MB = 1 << 20
MAX_QUOTA_MB = 100 * 1024 * 1024  # 100 TB: more is a typo
MAX_LABEL = 120
MAX_ADDRS = 16
INVITE_DAYS = 7
_warned: set[str] = set()  # holding threads whose bad terms were logged


def _quota_bytes(quota_mb: Any, *, least: int) -> int:
    if type(quota_mb) is not int or not least <= quota_mb <= MAX_QUOTA_MB:
        raise space.StorageError(
            "invalid", f"Give the space in MB, a whole number from {least} to {MAX_QUOTA_MB:,}."
        )
    return quota_mb * MB


def _label(label: str) -> str:
    cleaned = " ".join(str(label or "").split())
    if len(cleaned) > MAX_LABEL or not cleaned.isprintable():
        raise space.StorageError(
            "invalid", f"A name is plain text of at most {MAX_LABEL} characters."
        )
    return cleaned


def _state(thread: Thread) -> Any:
    database = thread_database(thread.thread)
    with database.lock:
        return database.replica().control.state


def _peer_id() -> str:
    from apps.core.selectors import node_info

    return node_info().peer_id


def _upsert(thread: Thread, model: Any, pk: Any, fields: dict[str, Any]) -> bool:
    """Make or change row ``pk`` of ``thread`` to ``fields`` (one op); False when it already
    says so (nothing written)."""
    alias = space.using(thread)
    row = model.objects.using(alias).filter(pk=pk).first()
    if row is not None and all(getattr(row, k) == v for k, v in fields.items()):
        return False

    def write() -> None:
        found = model.objects.filter(pk=pk).first()
        if found is None:
            model.objects.create(pk=pk, **fields)
            return
        changed = [k for k, v in fields.items() if getattr(found, k) != v]
        for name in changed:
            setattr(found, name, fields[name])
        if changed:
            found.save(update_fields=changed)

    try:
        space.write(thread, write)
    except IntegrityError:  # another writer of this node made it meanwhile: change it
        space.write(thread, write)
    return True


# -- the owner: inviting a friend to hold ------------------------------------------------------


def holder_invite(*, quota_mb: int, label: str = "") -> dict:
    """A holding thread for one friend, asking ``quota_mb`` MB: ``{"link", "hold_thread",
    "holder"}`` (the link goes to the friend; ``holder`` is the new Holder row's id)."""
    from apps.core.threads.naming import display_name

    asked = _quota_bytes(quota_mb, least=1)
    label = _label(label)
    storage = space.storage_ensure()
    master = space.master_secret()
    owner_name = display_name()
    name = f"Backups of {owner_name}" if owner_name else "Backups of a friend"
    try:
        thread = thread_services.thread_create(name=name[:200], app=HOLD_SHAPE)
        app_enable(thread=thread, app=HOLD_APP)
    except ThreadServiceError as exc:
        raise space.StorageError(exc.code, str(exc)) from exc
    proof = keys.terms_sign(master, thread.thread)
    party = keys.party_id(master)
    space.write(
        thread,
        lambda: HoldTerms.objects.create(
            party=party.hex(), proof=proof.hex(), asked=asked, label=owner_name[:MAX_LABEL]
        ),
    )
    pk = _peer_row_id(storage, thread.thread)
    space.write(
        storage,
        lambda: Holder.objects.create(
            pk=pk,
            kind=Holder.Kind.PEER,
            state=Holder.State.INVITED,
            hold_thread=thread.id,
            label=label,
            quota=0,
        ),
    )
    try:
        created = thread_services.invite_create(
            thread=thread, role=HOLDER, expires_in=timedelta(days=INVITE_DAYS), uses=1, label=label
        )
    except ThreadServiceError as exc:
        raise space.StorageError(exc.code, str(exc)) from exc
    return {"link": created.link, "hold_thread": thread.id, "holder": str(pk)}


def _peer_row_id(storage: Thread, hold_thread: bytes) -> Any:
    return row_id_for(bytes.fromhex(storage.member_id), b"storage/holder/peer/" + hold_thread)


def _device_row_id(storage: Thread, device: bytes) -> Any:
    return row_id_for(bytes.fromhex(storage.member_id), b"storage/holder/device/" + device)


# -- the holder: joining a holding thread --------------------------------------------------------


def on_thread_added(thread: bytes) -> None:
    """``thread_added``: a holding thread this node joined as holder is held from now on."""
    row = Thread.objects.filter(pk=thread.hex(), state=Thread.State.ACTIVE).first()
    if row is not None and row.app == HOLD_SHAPE and row.role == HOLDER:
        hold_joined(row)


def _terms_party(thread: Thread) -> tuple[bytes, HoldTerms] | None:
    """The party whose terms ``thread`` carries, checked; None (logged) when they do not
    verify or are not here yet."""
    rows = list(HoldTerms.objects.using(space.using(thread)).all())
    if not rows:
        logger.info("storage: holding thread %s has no terms yet", thread.id[:12])
        return None
    for terms in rows:
        try:
            party, proof = bytes.fromhex(terms.party), bytes.fromhex(terms.proof)
            if len(party) != 32:
                raise ValueError("not a party id")
            keys.terms_verify(party, proof, thread.thread)
        except (ValueError, keys.SignatureError):
            continue
        return party, terms
    if thread.id not in _warned:  # said once: the worker looks again often
        _warned.add(thread.id)
        logger.warning(
            "storage: the terms of holding thread %s do not carry the owner's signature: not held",
            thread.id[:12],
        )
    return None


def _quota_row_id(thread: Thread) -> Any:
    return row_id_for(bytes.fromhex(thread.member_id), b"storage/quota")


def hold_joined(thread: Thread) -> None:
    """Hold for the party whose checked terms ``thread`` carries, and grant what it asks (once:
    a grant already written, by this device or another of this party, is left as it is)."""
    if thread.app != HOLD_SHAPE or thread.role != HOLDER:
        return
    found = _terms_party(thread)
    if found is None:
        return
    party, terms = found
    if party == held.own_party_id():
        logger.warning("storage: holding thread %s is of this node's own party", thread.id[:12])
        return
    alias = space.using(thread)
    mine = device_hex()
    quota = HoldQuota.objects.using(alias).filter(pk=_quota_row_id(thread)).first()
    if quota is not None and quota.device != mine:
        return  # another device of this party holds for them
    # What the owner asks, up to what this node grants at most (its own setting): terms alone
    # never claim more of this node's disk than its owner allowed.
    asked = min(max(0, int(terms.asked)), int(settings.SEREUS.storage_quota))
    grant = asked if quota is None else quota.quota
    row = HeldParty.objects.filter(pk=party.hex()).first()
    if row is None:
        HeldParty.objects.create(
            party=party.hex(),
            hold_thread=thread.id,
            label=terms.label[:MAX_LABEL],
            quota=grant,
            active=True,
        )
    else:
        HeldParty.objects.filter(pk=row.pk).update(
            hold_thread=thread.id, label=terms.label[:MAX_LABEL], active=True
        )
    if quota is None:
        try:
            _upsert(
                thread,
                HoldQuota,
                _quota_row_id(thread),
                {"device": mine, "peer_id": _peer_id(), "quota": grant},
            )
        except WriteRefused:
            logger.exception("storage: the grant in %s was refused", thread.id[:12])


def quota_grant(*, thread: Thread, quota_mb: int) -> None:
    """The holder changes what it grants the party of ``thread`` (it may go below what is
    used: that party then places nothing more here)."""
    grant = _quota_bytes(quota_mb, least=0)
    if thread.app != HOLD_SHAPE or thread.role != HOLDER:
        raise space.StorageError("forbidden", "This node does not hold backups in that thread.")
    row = HeldParty.objects.filter(hold_thread=thread.id).first()
    if row is None:
        raise space.StorageError(
            "conflict",
            "This node does not hold for that friend: their terms did not check out.",
        )
    _upsert(
        thread,
        HoldQuota,
        _quota_row_id(thread),
        {"device": device_hex(), "peer_id": _peer_id(), "quota": grant},
    )
    HeldParty.objects.filter(pk=row.pk).update(quota=grant)


# -- the owner: the storage thread's holders -------------------------------------------------------


def device_hex() -> str:
    from apps.storage.client import _my_device

    return _my_device().hex()


def _own_addrs(storage: Thread, device: bytes) -> list[str]:
    network = thread_services.network
    addrs: tuple[str, ...] = ()
    if network is not None:
        try:
            addrs = tuple(network.addresses())
        except Exception:  # the p2p host is not up: what the thread says will do
            addrs = ()
    if not addrs:
        addrs = _state(storage).addresses.get(device, ())
    return sorted(a for a in addrs if isinstance(a, str))[:MAX_ADDRS]


def _device_label(device: bytes) -> str:
    from apps.cadre.control import control_thread
    from apps.cadre.models import PartyDevice

    control = control_thread()
    if control is None:
        return ""
    row = PartyDevice.objects.using(space.using(control)).filter(device=device.hex()).first()
    return (row.label if row is not None else "")[:MAX_LABEL]


def _own_row(storage: Thread) -> None:
    device = bytes.fromhex(device_hex())
    pk = _device_row_id(storage, device)
    found = Holder.objects.using(space.using(storage)).filter(pk=pk).first()
    fields: dict[str, Any] = {
        "kind": Holder.Kind.DEVICE,
        "device": device.hex(),
        "peer_id": _peer_id(),
        "addrs": _own_addrs(storage, device),
        "label": _device_label(device) or (found.label if found is not None else ""),
        "party": keys.party_id(space.master_secret()).hex(),
        "quota": int(settings.SEREUS.storage_quota),
    }
    if found is None or found.state in (Holder.State.INVITED, Holder.State.LEFT):
        fields["state"] = Holder.State.ACTIVE
    _upsert(storage, Holder, pk, fields)


def _peer_row(storage: Thread, thread: Thread) -> None:
    state = _state(thread)
    holders = {m: s for m, s in state.members.items() if s.role == HOLDER}
    alias = space.using(thread)
    quotas = list(HoldQuota.objects.using(alias).all())
    active_devices = {
        d.hex()
        for d, s in state.devices.items()
        if s.active and holders.get(s.member) is not None and holders[s.member].active
    }
    quota = next((q for q in quotas if q.device in active_devices), None) or (
        quotas[0] if quotas else None
    )
    pk = _peer_row_id(storage, thread.thread)
    found = Holder.objects.using(space.using(storage)).filter(pk=pk).first()
    if found is None:
        found = Holder.objects.using(space.using(storage)).filter(hold_thread=thread.id).first()
        pk = found.pk if found is not None else pk
    fields: dict[str, Any] = {"kind": Holder.Kind.PEER, "hold_thread": thread.id}
    current = found.state if found is not None else Holder.State.INVITED
    if holders and not any(s.active for s in holders.values()):
        fields["state"] = Holder.State.LEFT  # the holder left (or was removed): it says so here
    elif quota is not None and current in (Holder.State.INVITED, Holder.State.LEFT):
        fields["state"] = Holder.State.ACTIVE
    elif found is None:
        fields["state"] = Holder.State.INVITED
    if quota is not None:
        try:
            device = bytes.fromhex(quota.device)
        except ValueError:
            device = b""
        fields["device"] = device.hex() if len(device) == 32 else ""
        fields["peer_id"] = quota.peer_id[:100]
        fields["quota"] = max(0, int(quota.quota))
        addrs = state.addresses.get(device, ())
        fields["addrs"] = sorted(a for a in addrs if isinstance(a, str))[:MAX_ADDRS]
    if found is None or not found.label:
        named = next((state.names.get(m) for m in holders if state.names.get(m)), "")
        if named:
            fields["label"] = named[:MAX_LABEL]
    _upsert(storage, Holder, pk, fields)


def _holder_side(thread: Thread) -> None:
    """A holding thread this node holds in: held once its terms check out (they may have come
    after the join); a thread it left holds nothing more."""
    if not HeldParty.objects.filter(hold_thread=thread.id, active=True).exists():
        hold_joined(thread)


def holders_refresh() -> None:
    """Bring the holder rows up to date (cheap and writing nothing when nothing changed). A
    holding thread missing here (a node restored from the phrase) leaves its row as it is."""
    storage = space.storage_thread()
    threads = space.hold_threads()
    for thread in threads:
        if thread.role == HOLDER:
            try:
                _holder_side(thread)
            except Exception:  # one bad thread never stops the others
                logger.exception("storage: holding thread %s", thread.id[:12])
    # Parties whose holding thread this node left are held no more.
    gone = Thread.objects.filter(app=HOLD_SHAPE).exclude(state=Thread.State.ACTIVE)
    HeldParty.objects.filter(hold_thread__in=gone.values("id"), active=True).update(active=False)
    if storage is None:
        return
    try:
        _own_row(storage)
    except (space.StorageError, WriteRefused):
        logger.exception("storage: this device's holder row")
    for thread in threads:
        if thread.role == OWNER:
            try:
                _peer_row(storage, thread)
            except Exception:
                logger.exception("storage: the holder of %s", thread.id[:12])


def holders_usable() -> list[Holder]:
    """The storage thread's active holders with room left, in a fixed order (devices first)."""
    storage = space.storage_thread()
    if storage is None:
        return []
    rows = Holder.objects.using(space.using(storage)).filter(state=Holder.State.ACTIVE)
    usable = [r for r in rows if r.device and r.peer_id and r.quota > r.used]
    return sorted(usable, key=lambda r: (r.kind != Holder.Kind.DEVICE, r.device, str(r.pk)))


def holding_for_others() -> list[dict]:
    """The parties this node holds shares for (friends; not its own party)."""
    own = held.own_party_id()
    rows = HeldParty.objects.exclude(pk=own.hex() if own else "").order_by("label", "party")
    return [
        {
            "party": row.party,
            "label": row.label,
            "hold_thread": row.hold_thread,
            "active": row.active,
            "used": row.used,
            "quota": row.quota,
            "shares": HeldShare.objects.filter(party=row).count(),
        }
        for row in rows
    ]
