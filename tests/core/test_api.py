"""The API skeleton: token and session auth, the node endpoint, the schema."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from apps.core import identity, services


def test_node_endpoint_with_token(owner, data_dir: Path):
    token = services.api_token_create(user=owner)
    response = Client().get("/api/v1/node/", HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"peer_id", "version", "data_dir_free_bytes", "http", "p2p_listen"}
    # No node runs here: the addresses are the configured ones (test_datadir_lock has a
    # running one's).
    assert body["p2p_listen"] == settings.SEREUS.p2p_listen
    assert body["peer_id"] == identity.device_key_ensure(data_dir).peer_id
    free = shutil.disk_usage(data_dir).free
    assert abs(body["data_dir_free_bytes"] - free) < 64 * 2**20


def test_node_endpoint_with_session(owner_client: Client):
    assert owner_client.get("/api/v1/node/").status_code == 200


def test_revoked_tokens_stop_working(owner):
    token = services.api_token_create(user=owner)
    assert services.api_tokens_revoke_all(user=owner) == 1
    response = Client().get("/api/v1/node/", HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 401


def test_tokens_are_stored_only_as_digests(owner):
    from knox.models import AuthToken

    token = services.api_token_create(user=owner)
    row = AuthToken.objects.get()
    assert token not in (row.digest, row.token_key)
    assert len(row.digest) == 128


@pytest.mark.django_db
def test_schema_is_public_and_documents_the_node_endpoint():
    response = Client().get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    node = schema["paths"]["/api/v1/node/"]["get"]
    props = schema["components"]["schemas"]["NodeOutput"]["properties"]
    assert set(props) == {"peer_id", "version", "data_dir_free_bytes", "http", "p2p_listen"}
    assert node["operationId"] == "node_retrieve"
    assert "tokenAuth" in schema["components"]["securitySchemes"] or any(
        "knox" in k.lower() or "token" in k.lower() for k in schema["components"]["securitySchemes"]
    )


@pytest.mark.django_db
def test_docs_page_loads_nothing_from_a_cdn():
    response = Client().get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "cdn" not in html.lower()
    assert "/static/drf_spectacular_sidecar/" in html
