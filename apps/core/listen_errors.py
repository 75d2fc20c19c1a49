"""A node that cannot listen where it was told to says so in plain words and stops.

The web server (daphne) and the p2p host (libp2p) both report a busy port in their own way, deep
in a log; the person starting the node needs one sentence naming the port and how to choose
another.
"""

from __future__ import annotations

import errno

from apps.core.node_addresses import http_text
from sereus_web.config import HttpBind


class ListenError(Exception):
    """The node cannot listen on an address it was given; the message is for people."""


def _reason(host: str, port: int, error: OSError | None) -> str:
    if error is not None and error.errno == errno.EADDRINUSE:
        return f"Port {port} on {host} is already in use by another program."
    if error is not None and error.errno == errno.EADDRNOTAVAIL:
        return f"This machine has no address {host}, so it cannot listen on port {port} there."
    if error is not None and error.errno == errno.EACCES:
        return f"This user may not listen on port {port} on {host} (ports below 1024 need root)."
    detail = f": {error.strerror or error}" if error is not None else ""
    return f"Cannot listen on port {port} on {host}{detail}."


def _other_port(port: int) -> int:
    return port + 1 if 1024 <= port < 65535 else 9000


def http_listen_error(bind: HttpBind, error: OSError | None) -> ListenError:
    other = HttpBind(host=bind.host, port=_other_port(bind.port))
    return ListenError(
        f"{_reason(bind.host, bind.port, error)} Choose another with --http {http_text(other)}."
    )


def p2p_listen_error(listen: str, error: OSError | None) -> ListenError:
    """``listen`` is a validated ``/ip4|ip6/<host>/tcp/<port>`` multiaddr."""
    parts = listen.split("/")
    host, port = parts[2], int(parts[4])
    other = "/".join([*parts[:4], str(_other_port(port)), *parts[5:]])
    return ListenError(
        f"{_reason(host, port, error)} Choose another p2p port with --p2p-listen {other} "
        "(or SEREUS_P2P_LISTEN)."
    )
