"""Reads about the node itself: its identity, owner and disk."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import connections, router

import sereus_web
from apps.core import identity
from apps.core.models import Node


@dataclass(frozen=True)
class NodeInfo:
    peer_id: str
    version: str
    data_dir: Path
    data_dir_free_bytes: int


@lru_cache(maxsize=4)
def _peer_id(data_dir: Path) -> str:
    # The device key never changes while the process runs; reading it once is enough.
    return identity.device_key_ensure(data_dir).peer_id


def node_info() -> NodeInfo:
    data_dir = Path(settings.DATA_DIR)
    return NodeInfo(
        peer_id=_peer_id(data_dir),
        version=sereus_web.__version__,
        data_dir=data_dir,
        data_dir_free_bytes=shutil.disk_usage(data_dir).free,
    )


def node_owner_id() -> int | None:
    # Every API request and owner page asks: plain SQL for the one column (the ORM's query cost
    # ten times the read; the whole row, made a Node through its converters, 0.35 ms a request).
    meta = Node._meta
    with connections[router.db_for_read(Node)].cursor() as cursor:
        cursor.execute(
            f'SELECT "{meta.get_field("owner").column}" FROM "{meta.db_table}"'  # noqa: S608 - the model's own names
            f' WHERE "{meta.pk.column}" = %s',
            [Node.SINGLETON_PK],
        )
        row = cursor.fetchone()
    return None if row is None else row[0]


def is_node_owner(user: AbstractBaseUser | AnonymousUser | None) -> bool:
    if user is None or not user.is_authenticated:
        return False
    owner_id = node_owner_id()
    return owner_id is not None and owner_id == user.pk


def recovery_phrase_pending() -> bool:
    """True when the owner exists but has not seen the recovery phrase yet."""
    return Node.objects.filter(
        pk=Node.SINGLETON_PK, owner__isnull=False, recovery_phrase_shown=False
    ).exists()


def master_secret_sealed() -> bool:
    data_dir = Path(settings.DATA_DIR)
    return identity.master_secret_exists(data_dir) and identity.master_secret_is_sealed(data_dir)
