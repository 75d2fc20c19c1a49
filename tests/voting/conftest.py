"""This node, claimed, with its thread databases allowed (the core's fixtures), and its owner
logged in."""

import pytest
from django.test import Client

from apps.core import services as node_services
from tests.core.threads.conftest import node, thread_databases_allowed  # noqa: F401


@pytest.fixture
def owner_user(node):  # noqa: F811
    token = node_services.claim_token_issue()
    return node_services.owner_claim(token=token, username="me", password="pw " * 6).user


@pytest.fixture
def browser(owner_user) -> Client:
    """The owner's browser without JavaScript (and the API's session client)."""
    client = Client()
    client.force_login(owner_user)
    return client
