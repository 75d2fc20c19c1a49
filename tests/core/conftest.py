"""This node with a thread, for the live UI tests (borrowed from the thread-database tests)."""

from tests.core.threads.conftest import node, tdb, thread, thread_databases_allowed  # noqa: F401
