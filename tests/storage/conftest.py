"""Fixtures the storage tests share: this node (claimed, its thread databases allowed)."""

from __future__ import annotations

from tests.core.threads.conftest import node, thread_databases_allowed  # noqa: F401
