"""The sereus-p2p worker: starts its service, answers on the channel layer, stops cleanly."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from apps.core.identity import device_key_ensure
from apps.p2p.consumers import P2P_CHANNEL
from tests.conftest import RunningWorker
from tests.support.nodes import REPO, node_env

REDIS_URL = "redis://127.0.0.1:6379/0"

# Channels closes stale database connections around every message it dispatches.
pytestmark = pytest.mark.django_db(transaction=True)


async def _ask_status(layer, timeout: float = 5.0) -> dict:
    reply_channel = await layer.new_channel()
    await layer.send(P2P_CHANNEL, {"type": "p2p.status", "reply_channel": reply_channel})
    return await asyncio.wait_for(layer.receive(reply_channel), timeout)


@pytest.mark.anyio
async def test_in_process_worker_answers_status_and_stops_cleanly(
    p2p_worker: RunningWorker, data_dir: Path, caplog
):
    worker = p2p_worker.worker
    status = await _ask_status(worker.channel_layer)
    assert status["type"] == "p2p.status.reply"
    assert status["running"] is True
    assert status["mode"] == "in-process"
    assert status["listen"] == "/ip4/127.0.0.1/tcp/0"
    assert status["peer_id"] == device_key_ensure(data_dir).peer_id
    consumers = [d["future"] for d in worker.application_instances.values()]
    assert consumers, "the status request started the consumer"

    await p2p_worker.stop()
    assert not worker.service.running
    assert all(future.done() for future in consumers)
    assert "p2p worker stopped" in caplog.text
    # Stopped means stopped: nothing takes messages off the channel any more.
    await worker.channel_layer.send(P2P_CHANNEL, {"type": "p2p.status", "reply_channel": "x!y"})
    assert await asyncio.wait_for(worker.channel_layer.receive(P2P_CHANNEL), 1)


@pytest.mark.anyio
async def test_a_status_request_without_reply_channel_is_ignored(p2p_worker: RunningWorker):
    layer = p2p_worker.worker.channel_layer
    await layer.send(P2P_CHANNEL, {"type": "p2p.status"})
    await layer.send(P2P_CHANNEL, {"type": "p2p.status", "reply_channel": 42})
    # The worker is still alive and answers a proper request.
    assert (await _ask_status(layer))["running"] is True


def _redis_available() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not _redis_available(), reason="no Redis on 127.0.0.1:6379")
def test_scale_out_runworker_answers_over_redis_and_stops_on_sigterm(tmp_path: Path):
    """`runworker sereus-p2p` as its own process, reached through channels-redis."""
    prefix = f"sereus-test-{uuid.uuid4().hex[:8]}"
    env = {"SEREUS_REDIS_URL": REDIS_URL, "SEREUS_REDIS_PREFIX": prefix}
    data_dir = tmp_path / "node"
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "runworker", P2P_CHANNEL],
        cwd=REPO,
        env=node_env(data_dir, env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # A second process plays the web side: it asks over Redis and prints the reply.
        asker = subprocess.run(
            [sys.executable, "-c", ASK_STATUS],
            cwd=REPO,
            env={**node_env(data_dir, env), "DJANGO_SETTINGS_MODULE": "sereus_web.settings.dev"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert asker.returncode == 0, asker.stderr
        status = json.loads(asker.stdout.strip().splitlines()[-1])
        assert status["running"] is True
        assert status["mode"] == "worker process"
        assert status["peer_id"] == device_key_ensure(data_dir).peer_id
    finally:
        worker.send_signal(signal.SIGTERM)
        out, _ = worker.communicate(timeout=30)
    assert worker.returncode == 0, out
    assert "p2p worker stopped" in out


ASK_STATUS = """
import asyncio, json, django
django.setup()
from channels.layers import get_channel_layer

async def main():
    layer = get_channel_layer()
    reply = await layer.new_channel()
    for _ in range(100):  # the worker may still be starting: ask again until it answers
        await layer.send("sereus-p2p", {"type": "p2p.status", "reply_channel": reply})
        try:
            return await asyncio.wait_for(layer.receive(reply), 0.5)
        except asyncio.TimeoutError:
            continue
    raise SystemExit("no answer from the p2p worker")

print(json.dumps(asyncio.run(main())))
"""
