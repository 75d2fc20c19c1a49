"""Real node processes for integration tests: ``manage.py runnode`` on 127.0.0.1 (or on another
address, run through a command prefix such as ``ip netns exec <ns>``), free ports, a temporary
data dir, stopped with SIGTERM like a service manager would."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WEB_LINE = re.compile(r"^\s+web:\s+(http://\S+?)/?$")
CLAIM_LINE = re.compile(r"^\s+(http://\S+/claim/\?token=\S+)$")
PEER_LINE = re.compile(r"^\s+peer id:\s+(\S+)$")


def node_env(data_dir: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a node process: this one's, minus any node settings of the test run
    itself (its own data dir, a Redis URL), plus the node's own."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SEREUS_") and k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")
    }
    env.update(
        DJANGO_SETTINGS_MODULE="sereus_web.settings.dev",
        SEREUS_DATA_DIR=str(data_dir),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra or {})
    return env


def manage(
    data_dir: Path, *args: str, stdin: str | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run one ``manage.py`` command for the node whose data dir is given."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=node_env(data_dir, env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class NodeProcess:
    """One node: ``start()`` waits until it serves, ``stop()`` sends SIGTERM and waits.

    ``http`` is where its web UI listens (port 0: a free one). ``prefix`` goes in front of the
    command, e.g. ``["ip", "netns", "exec", "<ns>"]`` to run the node in a network namespace
    (that command execs the node, so the signals still reach it)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        p2p_listen: str = "/ip4/127.0.0.1/tcp/0",
        http: str = "127.0.0.1:0",
        prefix: Sequence[str] = (),
    ) -> None:
        self.data_dir = data_dir
        self.extra_env = dict(env or {})
        self.p2p_listen = p2p_listen
        self.http = http
        self.prefix = list(prefix)
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.claim_url: str | None = None
        self.peer_id = ""
        self.output: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()

    def start(self, *, timeout: float = 60.0) -> NodeProcess:
        # A restart reads the new process's output only.
        self._lines = queue.Queue()
        self.output = []
        env = node_env(self.data_dir, self.extra_env)
        self.proc = subprocess.Popen(
            [
                *self.prefix,
                sys.executable,
                "manage.py",
                "runnode",
                "--http",
                self.http,
                "--p2p-listen",
                self.p2p_listen,
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._pump, args=(self.proc, self._lines), daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError("node exited during start-up:\n" + self.log())
            if m := PEER_LINE.match(line):
                self.peer_id = m.group(1)
            elif m := WEB_LINE.match(line):
                self.url = m.group(1)
            elif m := CLAIM_LINE.match(line):
                self.claim_url = m.group(1)
            elif line.startswith("Ready in"):
                return self
        self.kill()
        raise TimeoutError(f"node did not start in {timeout}s:\n" + self.log())

    def _pump(self, proc: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
        assert proc.stdout is not None
        # Kept whole beside the data dir too: a test's failure message shows only the tail.
        with (self.data_dir.parent / f"{self.data_dir.name}-output.log").open("a") as kept:
            for raw in proc.stdout:
                line = raw.rstrip("\n")
                self.output.append(line)
                lines.put(line)
                kept.write(raw)
                kept.flush()
        lines.put(None)

    def stop(self, *, timeout: float = 20.0) -> int:
        """SIGTERM, then wait; returns the exit code (a hang is a test failure, not a kill)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"node did not stop within {timeout}s:\n{self.log()}") from None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def log(self) -> str:
        return "\n".join(self.output[-200:])
