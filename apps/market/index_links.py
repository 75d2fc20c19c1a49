"""Market indexes by link: whether this node runs one, the link that names it, and the indexes this
node asks when it searches (issue 15 §2).

A link is ``sereus:index/<base64url of canonical CBOR {v, peer, addrs, name}>``: the index
node's peer id, the addresses it listens on and its name. Someone pastes it on a buyer's node
(``index_add``); that node then asks it at those addresses only. Nothing in a link is trusted:
every field is checked, and its addresses are dialed under the rule for addresses other people
give (``apps.p2p.addresses``).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import unicodedata
from typing import Any

import cbor2
from django.db import transaction

from apps.core.thread import codec
from apps.core.threads.services import ThreadServiceError
from apps.market.models import MAX_NAME, IndexSettings, KnownIndex

PREFIX = "sereus:index/"
VERSION = 1
LINK_MOST = 3_000  # characters
ADDRS_MOST = 8
ADDR_MOST = 200
_PEER_ID = re.compile(r"12D3KooW[1-9A-HJ-NP-Za-km-z]{44}")  # an Ed25519 key's peer id
_ADDR = re.compile(r"/(ip4|ip6|dns|dns4|dns6)/[^/\s]{1,100}/tcp/[0-9]{1,5}(/[^\s]*)?")


def _invalid(words: str) -> ThreadServiceError:
    return ThreadServiceError("invalid", words)


def _name_check(name: str) -> str:
    name = " ".join(unicodedata.normalize("NFC", name).split())
    if len(name) > MAX_NAME:
        raise _invalid(f"An index's name can be at most {MAX_NAME} characters.")
    if any(unicodedata.category(char)[0] == "C" for char in name):
        raise _invalid("An index's name must be plain text.")
    return name


# -- this node's index -------------------------------------------------------------------------


def index_settings() -> IndexSettings:
    """This node's index setting (off until turned on)."""
    row = IndexSettings.objects.order_by("pk").first()
    return row if row is not None else IndexSettings(enabled=False, name="")


def index_enable(enabled: bool, name: str = "") -> IndexSettings:
    """Run (or stop running) a market index on this node, under ``name``."""
    name = _name_check(name)
    with transaction.atomic():
        row = IndexSettings.objects.select_for_update().order_by("pk").first()
        if row is None:
            row = IndexSettings(enabled=enabled, name=name)
        row.enabled, row.name = enabled, name
        row.save()
    if enabled:
        from apps.market import index_duty

        index_duty.refresh_stale(force=True)
    return row


def _own_peer() -> str:
    from apps.core.selectors import node_info

    return node_info().peer_id


def _own_addrs() -> list[str]:
    from apps.core.threads import services

    if services.network is None:
        return []
    return list(services.network.addresses())[:ADDRS_MOST]


def index_link() -> str:
    """The link naming this node's index, to paste on a buyer's node."""
    settings = index_settings()
    if not settings.enabled:
        raise ThreadServiceError("not_enabled", "This node runs no market index: turn it on first.")
    addrs = [a for a in _own_addrs() if len(a) <= ADDR_MOST]
    if not addrs:
        raise ThreadServiceError(
            "unreachable", "This node does not know its own addresses yet: is its p2p host up?"
        )
    doc = {"v": VERSION, "peer": _own_peer(), "addrs": addrs, "name": settings.name}
    return PREFIX + base64.urlsafe_b64encode(codec.encode(doc)).rstrip(b"=").decode()


# -- the indexes this node asks --------------------------------------------------------------------


def link_parse(link: str) -> tuple[str, list[str], str]:
    """(peer id, addresses, name) of an index link, checked; ``invalid`` in words otherwise."""
    text = link.strip() if isinstance(link, str) else ""
    if not text.startswith(PREFIX):
        raise _invalid("This is not a market index link (it starts with sereus:index/).")
    payload = text[len(PREFIX) :]
    if len(payload) > LINK_MOST:
        raise _invalid("This index link is too long.")
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        doc: Any = cbor2.loads(raw)
    except (binascii.Error, ValueError, cbor2.CBORDecodeError):
        raise _invalid("This index link is damaged: copy it again, whole.") from None
    if not isinstance(doc, dict) or set(doc) != {"v", "peer", "addrs", "name"}:
        raise _invalid("This index link is damaged: copy it again, whole.")
    if doc["v"] != VERSION:
        raise _invalid("This index link is of a version this node does not know.")
    peer, addrs, name = doc["peer"], doc["addrs"], doc["name"]
    if not isinstance(peer, str) or not _PEER_ID.fullmatch(peer):
        raise _invalid("The index link does not name a node (its peer id is not valid).")
    if (
        not isinstance(addrs, list)
        or not 1 <= len(addrs) <= ADDRS_MOST
        or not all(isinstance(a, str) and len(a) <= ADDR_MOST and _ADDR.fullmatch(a) for a in addrs)
    ):
        raise _invalid("The index link has no address this node could reach it at.")
    if not isinstance(name, str):
        raise _invalid("The index link's name is not text.")
    return peer, list(dict.fromkeys(addrs)), _name_check(name)


def index_add(link: str) -> KnownIndex:
    """Ask the index this link names from now on (a known one gets the link's addresses)."""
    peer, addrs, name = link_parse(link)
    if peer == _own_peer():
        raise _invalid("This is this node's own index: its shops are searched already.")
    row, _created = KnownIndex.objects.update_or_create(
        peer=peer, defaults={"addrs": json.dumps(addrs), "name": name, "last_error": ""}
    )
    return row


def index_remove(peer: str) -> None:
    """Stop asking the index of ``peer``."""
    deleted, _ = KnownIndex.objects.filter(peer=str(peer)[:100]).delete()
    if not deleted:
        raise ThreadServiceError("not_found", "This node does not ask that index.")


def known_indexes() -> list[KnownIndex]:
    return list(KnownIndex.objects.order_by("added_at", "pk"))


def index_addrs(row: KnownIndex) -> list[str]:
    """The addresses a known index was added with (as checked then)."""
    try:
        addrs = json.loads(row.addrs)
    except ValueError:
        return []
    return [a for a in addrs if isinstance(a, str)] if isinstance(addrs, list) else []
