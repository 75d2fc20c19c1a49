"""This node, claimed, with its thread databases allowed, its owner logged in, and the club
(``support.club``): the identity app's fixtures."""

from pathlib import Path

import pytest

from tests.checklist.conftest import browser, owner_user  # noqa: F401
from tests.core.threads.conftest import node, thread_databases_allowed  # noqa: F401
from tests.identity.support import Club
from tests.identity.support import club as club_make


@pytest.fixture
def club(node, tmp_path: Path) -> Club:  # noqa: F811
    """Alice's (this node's) climbing club with Dana (admin), Eli, Fay and Gus (writers),
    identity and voting enabled and the kind "race"."""
    return club_make(tmp_path)
