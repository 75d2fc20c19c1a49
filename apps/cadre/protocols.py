"""The cadre's p2p protocols, registered with the node's app protocol layer
(``apps.p2p.app_protocols``). A full node serves device links and its party's logs; a mirror
serves logs and its parties' rosters from the ciphertext it keeps. Handlers are imported when
first called, so a module that fails to import answers "unavailable" instead of stopping the
node."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from django.conf import settings

from apps.cadre import wire

KIB, MIB = 1 << 10, 1 << 20


def _lazy(path: str) -> Callable[[bytes, bytes], bytes]:
    module, _, name = path.partition(":")

    def handler(peer_device: bytes, request: bytes) -> bytes:
        return getattr(importlib.import_module(module), name)(peer_device, request)

    return handler


def install() -> None:
    from apps.p2p import app_protocols

    mirror = settings.SEREUS.mirror
    served = "apps.cadre.mirror_serve" if mirror else "apps.cadre.logs"
    # Fetching a page is cheap and a new device fetches many in a row; the rest are rare.
    app_protocols.register(
        wire.LOG,
        _lazy(f"{served}:serve_log"),
        max_request=4 * KIB,
        max_response=4 * MIB,
        rate=(50.0, 100),
        timeout=20.0,
    )
    app_protocols.register(
        wire.SUBMIT,
        _lazy(f"{served}:serve_submit"),
        max_request=MIB,
        max_response=4 * KIB,
        rate=(10.0, 40),
        timeout=20.0,
    )
    # Both on every node: the asking side looks a protocol up for its bounds, full nodes ask a
    # mirror (rosters) and a mirror asks a full node (its device link). Each handler refuses,
    # in words, what its kind of node does not serve.
    app_protocols.register(
        wire.MIRROR,
        _lazy("apps.cadre.mirror_serve:serve_mirror"),
        max_request=MIB,
        max_response=256 * KIB,
        rate=(2.0, 10),
        timeout=20.0,
    )
    app_protocols.register(
        wire.LINK,
        _lazy("apps.cadre.link:serve"),
        max_request=256 * KIB,
        max_response=MIB,
        rate=(1.0, 5),
        timeout=60.0,  # certifying in every thread of the party
        busy="Too many tries with device links; wait a moment.",
    )
