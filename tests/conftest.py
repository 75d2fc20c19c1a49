"""Fixtures shared by the whole suite."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client

from apps.core import services
from apps.core.models import ClaimToken
from tests.support.fixed_rows import rows_kept

pytest_plugins = ["tests.support.ordering"]  # the slowest files first; their times at the end

OWNER_PASSWORD = "correct horse battery staple 42"


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's test database; then each transactional test's flush puts the content
    types and permissions back from a copy instead of making them again (``fixed_rows``)."""
    yield from rows_kept(django_db_blocker)


@pytest.fixture
def data_dir(settings, tmp_path: Path) -> Path:
    """A fresh, empty data dir for this test (the settings point at it)."""
    path = tmp_path / "data"
    path.mkdir(mode=0o700)
    settings.DATA_DIR = path
    return path


@pytest.fixture
def owner(db, data_dir: Path) -> AbstractBaseUser:
    """The node's owner, claimed through the service with a password."""
    token = services.claim_token_issue()
    result = services.owner_claim(token=token, username="alice", password=OWNER_PASSWORD)
    assert not ClaimToken.objects.exists()
    return result.user


@pytest.fixture
def owner_client(owner: AbstractBaseUser) -> Client:
    client = Client()
    client.force_login(owner)
    return client


@pytest.fixture
def anyio_backend() -> str:
    # Django, Channels and daphne are asyncio; trio appears only inside the p2p host's thread.
    return "asyncio"


class RunningWorker:
    """A P2PWorker running as a task; ``stop()`` cancels it and waits for its clean-up."""

    def __init__(self, worker) -> None:
        self.worker = worker
        self.task = asyncio.ensure_future(worker.arun())

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


@pytest.fixture
async def p2p_worker(data_dir: Path):
    """An in-process sereus-p2p worker on the in-memory channel layer, stopped afterwards."""
    from channels.layers import get_channel_layer
    from channels.routing import get_default_application

    from apps.p2p.consumers import P2P_CHANNEL
    from apps.p2p.worker import P2PWorker

    running = RunningWorker(
        P2PWorker(
            application=get_default_application(),
            channels=[P2P_CHANNEL],
            channel_layer=get_channel_layer(),
            listen="/ip4/127.0.0.1/tcp/0",
            mode="in-process",
        )
    )
    # Started means its libp2p host is up: on a loaded machine that takes seconds, longer than
    # a page waits for the worker's answer before calling it silent.
    deadline = asyncio.get_running_loop().time() + 60
    while not running.worker.service.running and not running.task.done():
        assert asyncio.get_running_loop().time() < deadline, "the p2p worker did not start"
        await asyncio.sleep(0.05)
    yield running
    await running.stop()
