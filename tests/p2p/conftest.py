"""Fixtures for the p2p tests: this node with a thread, borrowed from the thread-database tests."""

from tests.core.threads.conftest import node, tdb, thread, thread_databases_allowed  # noqa: F401
