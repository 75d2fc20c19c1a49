"""Real nodes for multi-node tests: a runnode process with an API token and helpers for threads,
invites, notes and the network status."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from tests.support.api import Api, wait_for
from tests.support.nodes import REPO, NodeProcess, manage, node_env

NODE_SETTINGS = "tests.node_settings"


class Peer:
    """One node process, claimed headlessly (``node_token``), spoken to over its API.

    Keyword arguments go to ``NodeProcess`` (``p2p_listen``, ``http``, ``prefix``)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        env: dict[str, str] | None = None,
        redis_url: str | None = None,
        **kwargs: Any,
    ):
        self.env = {"DJANGO_SETTINGS_MODULE": NODE_SETTINGS, **(env or {})}
        if redis_url:
            # Scale-out mode: daphne (runnode) and ``runworker sereus-p2p`` as two processes
            # sharing the data dir, talking over Redis under a prefix of their own.
            self.env.update(
                SEREUS_REDIS_URL=redis_url,
                SEREUS_REDIS_PREFIX=f"sereus-test-{uuid.uuid4().hex[:8]}",
                SEREUS_P2P_LISTEN=kwargs.get("p2p_listen", "/ip4/127.0.0.1/tcp/0"),
            )
        self.process = NodeProcess(data_dir, env=self.env, **kwargs)
        self.data_dir = data_dir
        self.api: Api | None = None
        self.token: str | None = None
        self.worker: subprocess.Popen[str] | None = None

    def start(self) -> Peer:
        if self.token is None:
            result = manage(self.data_dir, "node_token", env=self.env)
            assert result.returncode == 0, result.stderr
            self.token = result.stdout.strip()
        self.process.start()
        if "SEREUS_REDIS_URL" in self.env:
            self.worker = subprocess.Popen(
                [*self.process.prefix, sys.executable, "manage.py", "runworker", "sereus-p2p"],
                cwd=REPO,
                env=node_env(self.data_dir, self.env),
                stdout=(self.data_dir / "worker.log").open("a"),
                stderr=subprocess.STDOUT,
            )
        self.api = Api(self.process.url, self.token)
        self.network(wait=True)
        return self

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.terminate()
            assert self.worker.wait(30) == 0
            self.worker = None
        self.process.stop()

    def kill(self) -> None:
        if self.worker is not None:
            self.worker.kill()
            self.worker.wait(10)
            self.worker = None
        self.process.kill()

    @property
    def peer_id(self) -> str:
        return self.process.peer_id

    def network(self, *, wait: bool = False) -> dict[str, Any]:
        assert self.api is not None
        if not wait:
            return self.api.get("/api/v1/network/")
        return wait_for(
            lambda: (s := self.api.get("/api/v1/network/")).get("addresses") and s,
            timeout=30,
            what="the p2p host to run",
        )

    # -- threads ----------------------------------------------------------------------------

    def thread_create(self, name: str) -> str:
        assert self.api is not None
        return self.api.post("/api/v1/threads/", {"name": name})["id"]

    def invite(self, thread: str, role: str = "writer", expires_in: int = 3600) -> str:
        return self.invite_create(thread, role, expires_in)["link"]

    def invite_create(self, thread: str, role: str = "writer", expires_in: int = 3600) -> dict:
        assert self.api is not None
        body = {"role": role, "expires_in": expires_in}
        return self.api.post(f"/api/v1/threads/{thread}/invites/", body)

    def redeem(self, link: str) -> dict[str, Any]:
        assert self.api is not None
        return self.api.post("/api/v1/invites/redeem/", {"link": link})

    def note(self, thread: str, title: str, body: str = "") -> dict[str, Any]:
        assert self.api is not None
        return self.api.post(f"/api/test/threads/{thread}/notes/", {"title": title, "body": body})

    def notes(self, thread: str) -> list[dict[str, Any]]:
        assert self.api is not None
        return self.api.get(f"/api/test/threads/{thread}/notes/")

    def dump(self, thread: str) -> dict[str, Any]:
        assert self.api is not None
        return self.api.get(f"/api/test/threads/{thread}/dump/")


def converged(peers: list[Peer], thread: str, *, timeout: float = 60.0) -> dict[str, Any]:
    """Wait until every peer holds the same rows and the same op log of ``thread``."""

    def same() -> dict[str, Any] | None:
        dumps = [peer.dump(thread) for peer in peers]
        return dumps[0] if all(d == dumps[0] for d in dumps) else None

    return wait_for(same, timeout=timeout, interval=0.25, what="the nodes to converge")
