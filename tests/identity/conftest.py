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


@pytest.fixture(autouse=True)
def no_identity_worker():
    """The outcome duty runs when a test calls it (``services.outcomes_due``), not on a worker
    thread behind the test's back (it would reach a database the test has not opened to it)."""
    from apps.core.threads.signals import ops_written
    from apps.identity import duties
    from apps.voting import duties as voting_duties

    ops_written.disconnect(dispatch_uid="identity-duties")
    ops_written.disconnect(dispatch_uid="voting-duties")  # a challenge's poll is never secret
    yield
    duties.install()
    ops_written.connect(voting_duties.on_ops_written, dispatch_uid="voting-duties")
