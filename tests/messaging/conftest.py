"""A node with a conversation, and other nodes (in this process) to talk in it."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.core import services as node_services
from apps.core.models import Thread
from apps.core.threads.database import ThreadDatabase
from apps.core.threads.registry import thread_database
from apps.messaging import services
from tests.core.threads.conftest import (  # noqa: F401 - node and its databases: fixtures
    OtherNode,
    admit,
    node,
    other_node,
    thread_databases_allowed,
)


@pytest.fixture
def chat(db, node) -> Thread:  # noqa: F811
    return services.conversation_create(name="Chat", my_name="Alice")


@pytest.fixture
def chat_db(chat: Thread) -> ThreadDatabase:
    return thread_database(chat.thread)


@pytest.fixture
def owner_user(chat):
    token = node_services.claim_token_issue()
    return node_services.owner_claim(token=token, username="alice", password="pw " * 6).user


@pytest.fixture
def browser(owner_user) -> Client:
    """The owner's browser, logged in (pages as a person uses them, without JavaScript)."""
    client = Client()
    client.force_login(owner_user)
    return client


@pytest.fixture
def bob(chat: Thread, tmp_path) -> OtherNode:
    """Bob, a writer in the conversation, on a node of his own in this process."""
    bob = other_node(tmp_path, chat.thread, "bob")
    admit(thread_database(chat.thread), bob, "writer")
    return bob
