"""The holder protocol, registered with the node's app protocol layer on every node (any node
may hold shares: the party's own devices and friends who agreed). The handler (``serve.py``)
is imported when first called, so a module that fails to import answers "unavailable"
instead of stopping the node."""

from __future__ import annotations

import importlib

from apps.storage import wire


def _serve(peer_device: bytes, request: bytes) -> bytes:
    return importlib.import_module("apps.storage.serve").serve(peer_device, request)


def install() -> None:
    from apps.p2p import app_protocols

    app_protocols.register(
        wire.PROTOCOL,
        _serve,
        max_request=wire.MAX_REQUEST,
        max_response=wire.MAX_ANSWER,
        # A backup puts many shares in a row; each is bounded by the byte budget too.
        rate=(200.0, 400),
        timeout=30.0,
    )
