"""This node, claimed, with its thread databases allowed, and its owner logged in."""

from tests.checklist.conftest import browser, owner_user  # noqa: F401
from tests.core.threads.conftest import node, thread_databases_allowed  # noqa: F401
