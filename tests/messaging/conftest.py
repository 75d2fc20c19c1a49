"""A node with a conversation, and other nodes (in this process) to talk in it."""

from __future__ import annotations

import pytest

from apps.core.models import Thread
from apps.core.threads.database import ThreadDatabase
from apps.core.threads.registry import thread_database
from apps.messaging import services
from tests.core.threads.conftest import node, thread_databases_allowed  # noqa: F401


@pytest.fixture
def chat(db, node) -> Thread:  # noqa: F811
    return services.conversation_create(name="Chat", my_name="Alice")


@pytest.fixture
def chat_db(chat: Thread) -> ThreadDatabase:
    return thread_database(chat.thread)
