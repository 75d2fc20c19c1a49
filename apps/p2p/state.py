"""What the p2p worker leaves in the data dir for itself and for the web processes: the listen
port it picked (so a restart keeps the address members have on record) and the addresses it
announces (for invite links made by a web process in scale-out mode)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from sereus_web.files import secret_file_replace

FILE_NAME = "p2p-state.json"


@dataclass(frozen=True)
class P2PState:
    port: int | None = None
    addrs: tuple[str, ...] = field(default_factory=tuple)


def state_load(data_dir: Path) -> P2PState:
    try:
        doc = json.loads((data_dir / FILE_NAME).read_text())
    except (OSError, ValueError):
        return P2PState()  # absent or damaged: it is only a hint, start afresh
    if not isinstance(doc, dict):
        return P2PState()
    port = doc.get("port")
    addrs = doc.get("addrs")
    return P2PState(
        port=port if type(port) is int and 0 < port < 65536 else None,
        addrs=tuple(a for a in addrs if type(a) is str)[:16] if type(addrs) is list else (),
    )


def state_save(data_dir: Path, state: P2PState) -> None:
    doc = {"port": state.port, "addrs": list(state.addrs)}
    secret_file_replace(data_dir / FILE_NAME, json.dumps(doc).encode())
