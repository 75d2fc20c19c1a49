"""The holder's store: the shares this node keeps for the parties it holds for (ADR 25).

Each share is a file ``<DATA_DIR>/storage/held/<party hex>/<digest hex[:2]>/<digest hex>``
(0600, folders 0700), written atomically (temp file, fsync, rename), named by the BLAKE2b-256
of its bytes, so a file that no longer hashes to its name is known to be damaged. The rows
(``HeldShare``, ``HeldParty.used``) are the accounting: a share costs its bytes once, however
often it is put, and the quota check and the count change in one conditional update, so
concurrent puts cannot overshoot the quota or miscount.

Nothing here logs more of a share than its digest's first characters.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F

from apps.storage import keys
from apps.storage.models import HeldParty, HeldShare
from apps.storage.space import StorageError, master_secret

logger = logging.getLogger(__name__)

FULL_START = "This node keeps at most"  # how a refusal over the quota begins (client.py reads it)


def size_words(size: int) -> str:
    """A byte count as a person reads it ("3 MB", "1.5 GB"); binary units, like the settings."""
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if size >= scale:
            value = size / scale
            return (
                f"{value:.1f} {unit}"
                if value < 10 and value != int(value)
                else f"{value:.0f} {unit}"
            )
    return f"{size} bytes"


def root() -> Path:
    return Path(settings.DATA_DIR) / "storage" / "held"


def path_of(party: HeldParty, digest: bytes) -> Path:
    name = digest.hex()
    return root() / party.pk / name[:2] / name


def _folder(path: Path) -> None:
    # Made one level at a time so that each new folder gets 0700 whatever the umask.
    missing = []
    here = path
    while not here.exists():
        missing.append(here)
        here = here.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            continue
        os.chmod(folder, 0o700)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all (temp file, fsync, rename, folder fsync),
    0600 in folders made 0700; safe with other writers of the same path at the same moment."""
    _folder(path.parent)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")  # one per writer
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def _intact(path: Path, digest: bytes) -> bytes | None:
    """The file's bytes when they still hash to ``digest``; None when missing or damaged."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError:
        logger.warning("held share %s… cannot be read", digest.hex()[:12])
        return None
    if keys.share_digest(data) != digest:
        logger.warning("held share %s… is damaged on disk", digest.hex()[:12])
        return None
    return data


# -- parties ------------------------------------------------------------------------------------


def own_party() -> HeldParty:
    """This node's own party (every node holds for its own party), made on first use; its
    quota follows ``settings.SEREUS.storage_quota``."""
    party = keys.party_id(master_secret()).hex()
    quota = int(settings.SEREUS.storage_quota)
    row, made = HeldParty.objects.get_or_create(
        pk=party, defaults={"quota": quota, "label": "", "hold_thread": "", "active": True}
    )
    if not made and (row.quota != quota or not row.active):
        HeldParty.objects.filter(pk=party).update(quota=quota, active=True)
        row.refresh_from_db()
    return row


def own_party_id() -> bytes | None:
    try:
        return keys.party_id(master_secret())
    except StorageError:
        return None


def held_party(party: bytes) -> HeldParty | None:
    """The party ``party`` if this node holds for it now (its own, or an active holding)."""
    if party == own_party_id():
        return own_party()
    return HeldParty.objects.filter(pk=party.hex(), active=True).first()


# -- shares -------------------------------------------------------------------------------------


def _full(party: HeldParty, size: int) -> StorageError:
    party.refresh_from_db(fields=["used", "quota"])
    return StorageError(
        "full",
        f"{FULL_START} {size_words(party.quota)} of your backups and "
        f"{size_words(party.used)} are used: it cannot take {size_words(size)} more.",
    )


def held_charge(party: HeldParty, size: int) -> None:
    """Count ``size`` more bytes against the party's quota; ``StorageError("full")`` in words
    when they do not fit (nothing counted then)."""
    if size <= 0:
        return
    fits = HeldParty.objects.filter(pk=party.pk, used__lte=F("quota") - size).update(
        used=F("used") + size
    )
    if not fits:
        raise _full(party, size)


def held_uncharge(party: HeldParty, size: int) -> None:
    if size > 0:
        HeldParty.objects.filter(pk=party.pk).update(used=F("used") - size)
        # Never below zero, whatever was counted before (a row removed by hand, say).
        HeldParty.objects.filter(pk=party.pk, used__lt=0).update(used=0)


def held_put(party: HeldParty, share: bytes, *, digest: bytes | None = None) -> bytes:
    """Keep ``share``; its digest. The same share again costs nothing (and mends a damaged
    copy); ``StorageError("full")`` in words when it does not fit the quota. ``digest``: given
    only by this node's own backup, which made it from these bytes (a share from the network
    is always hashed here); a wrong one would only name a file that no longer vouches for
    itself, found by the next audit like any damage."""
    if digest is None:
        digest = keys.share_digest(share)
    path = path_of(party, digest)
    counted = False
    try:
        with transaction.atomic():
            if not HeldShare.objects.filter(party=party, digest=digest.hex()).exists():
                held_charge(party, len(share))
                HeldShare.objects.create(party=party, digest=digest.hex(), size=len(share))
                counted = True
    except IntegrityError:
        pass  # another put of the same share made the row at the same moment: counted once
    if counted or _intact(path, digest) is None:
        try:
            write_atomic(path, share)
        except OSError:
            if counted:
                with transaction.atomic():
                    HeldShare.objects.filter(party=party, digest=digest.hex()).delete()
                    held_uncharge(party, len(share))
            logger.exception("held share %s… could not be written", digest.hex()[:12])
            raise StorageError(
                "unavailable", "This node could not write the share to its disk: try again later."
            ) from None
    return digest


def held_get(party: HeldParty, digest: bytes) -> bytes | None:
    """The share's bytes; None when this node does not keep it, or its file is damaged."""
    if not HeldShare.objects.filter(party=party, digest=digest.hex()).exists():
        return None
    return _intact(path_of(party, digest), digest)


def held_audit(party: HeldParty, digest: bytes, nonce: bytes) -> bytes | None:
    """The answer to an audit (``keys.audit_answer``): only a node that has the share can
    make it. None when it does not have it (or it is damaged)."""
    share = held_get(party, digest)
    return None if share is None else keys.audit_answer(nonce, share)


def held_release(party: HeldParty, digests: list[bytes]) -> int:
    """Delete these shares (the caller checked the party's release); how many were here."""
    released = 0
    for digest in dict.fromkeys(digests):
        with transaction.atomic():
            row = HeldShare.objects.filter(party=party, digest=digest.hex()).first()
            if row is None:
                continue
            deleted, _ = HeldShare.objects.filter(pk=row.pk).delete()
            if not deleted:
                continue  # a release at the same moment took it
            held_uncharge(party, row.size)
        released += 1
        path_of(party, digest).unlink(missing_ok=True)
    return released


def held_usage(party: HeldParty) -> dict:
    party.refresh_from_db(fields=["used", "quota"])
    return {
        "used": party.used,
        "quota": party.quota,
        "shares": HeldShare.objects.filter(party=party).count(),
    }
