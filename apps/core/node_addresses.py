"""Where this node really listens, for the pages and the API.

The settings say what was asked for (``127.0.0.1:0``, the default port); a ``--http`` flag or a
port 0 make the real address something else. The processes that bound them record them in their
data dir locks (``datadir_lock``): runnode the web address, whichever process runs the p2p host
its listen address. A record counts only while its process lives; without one, the settings
are the best answer there is.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from apps.core import datadir_lock
from sereus_web.config import HttpBind, NodeConfig, parse_p2p_listen

HTTP = "http"
P2P_LISTEN = "p2p_listen"


def running_config() -> NodeConfig:
    """``settings.SEREUS``, with the web and p2p addresses the running node bound."""
    config: NodeConfig = settings.SEREUS
    data_dir = Path(settings.DATA_DIR)
    node = datadir_lock.record(data_dir, datadir_lock.NODE) or {}
    p2p = datadir_lock.record(data_dir, datadir_lock.P2P) or {}
    return dataclasses.replace(
        config,
        http=_http(node.get(HTTP)) or config.http,
        p2p_listen=_p2p(p2p.get(P2P_LISTEN)) or _p2p(node.get(P2P_LISTEN)) or config.p2p_listen,
    )


def http_text(bind: HttpBind) -> str:
    """``host:port`` as given to ``--http`` (``[v6]:port`` for IPv6)."""
    host = f"[{bind.host}]" if ":" in bind.host else bind.host
    return f"{host}:{bind.port}"


def http_note(host: str, port: int) -> dict[str, Any]:
    """The record fields for a web server listening on ``host:port``."""
    return {HTTP: [host, port]}


def p2p_note(listen: str, port: int | None) -> dict[str, Any]:
    """The record fields for a p2p host given ``listen`` that bound ``port`` (port 0 in
    ``listen`` means the system picked it)."""
    parts = listen.split("/")
    if port is not None and parts[4] == "0":
        parts[4] = str(port)
    return {P2P_LISTEN: "/".join(parts)}


def _http(value: Any) -> HttpBind | None:
    if (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and type(value[1]) is int
    ):
        return HttpBind(host=value[0], port=value[1])
    return None


def _p2p(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_p2p_listen(value)
    except ImproperlyConfigured:
        return None
