"""API tokens: the token presented is checked as knox checks it (digest, expiry, active user),
without knox's per-request sweep of the owner's other tokens."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from knox.models import AuthToken

from apps.core import services


def _get(token: str):
    return Client().get("/api/v1/node/", HTTP_AUTHORIZATION=f"Token {token}")


def test_an_expired_token_is_refused_and_deleted(owner):
    instance, token = AuthToken.objects.create(user=owner, expiry=timedelta(seconds=60))
    AuthToken.objects.filter(pk=instance.pk).update(expiry=timezone.now() - timedelta(seconds=1))
    assert _get(token).status_code == 401
    assert not AuthToken.objects.filter(pk=instance.pk).exists()


def test_a_token_with_a_wrong_secret_or_an_inactive_owner_is_refused(owner):
    token = services.api_token_create(user=owner)
    assert _get(token).status_code == 200
    assert _get(token[:-1] + ("0" if token[-1] != "0" else "1")).status_code == 401
    owner.is_active = False
    owner.save(update_fields=["is_active"])
    assert _get(token).status_code == 401


def test_the_owners_other_tokens_are_not_read_on_each_request(owner):
    token = services.api_token_create(user=owner)
    for _ in range(5):
        services.api_token_create(user=owner)
    _get(token)  # the first request reads what it reads once
    with CaptureQueriesContext(connection) as queries:
        assert _get(token).status_code == 200
    token_reads = [q["sql"] for q in queries if 'FROM "knox_authtoken"' in q["sql"]]
    assert len(token_reads) == 1, token_reads  # the token presented, by its key
    assert "token_key" in token_reads[0].split("WHERE")[1]


def test_the_token_and_its_owner_are_read_in_one_statement(owner):
    token = services.api_token_create(user=owner)
    _get(token)
    with CaptureQueriesContext(connection) as queries:
        response = Client().get("/api/v1/node/", HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 200
    users = f'"{get_user_model()._meta.db_table}"'
    token_reads = [q["sql"] for q in queries if 'FROM "knox_authtoken"' in q["sql"]]
    assert len(token_reads) == 1
    assert f"JOIN {users}" in token_reads[0]
    assert not [q["sql"] for q in queries if f"FROM {users}" in q["sql"]], "the owner read again"
