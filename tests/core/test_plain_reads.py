"""``plain_reads`` gives the rows the ORM gives: the same instances, field by field and type by
type (dates aware, booleans, nulls), from the same database."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.test import Client
from knox.models import AuthToken

from apps.core import plain_reads, services
from apps.core.models import Node, Thread
from apps.core.selectors import node_owner_id


def _fields(instance) -> dict:
    return {f.attname: getattr(instance, f.attname) for f in type(instance)._meta.concrete_fields}


def _same(found, expected) -> None:
    assert type(found) is type(expected)
    assert found._state.db == expected._state.db
    assert found._state.adding is False
    got, want = _fields(found), _fields(expected)
    assert got == want
    assert {k: type(v) for k, v in got.items()} == {k: type(v) for k, v in want.items()}


def test_rows_are_the_orms_rows(owner):
    instance, _token = AuthToken.objects.create(user=owner, expiry=timedelta(hours=1))
    AuthToken.objects.create(user=owner, expiry=None)
    thread = Thread.objects.create(id="ab" * 32, name="t", app="messaging", member_id="cd" * 32)
    _same(plain_reads.by_pk(get_user_model(), owner.pk), get_user_model().objects.get(pk=owner.pk))
    _same(plain_reads.by_pk(Thread, thread.id), Thread.objects.get(pk=thread.id))
    (found,) = plain_reads.rows(AuthToken, '"token_key" = %s', [instance.token_key])
    _same(found, AuthToken.objects.get(pk=instance.pk))
    assert found.expiry is not None
    assert len(plain_reads.rows(AuthToken, '"user_id" = %s', [owner.pk])) == 2


def test_no_row_is_none(db):
    assert plain_reads.by_pk(Thread, "00" * 32) is None
    assert plain_reads.rows(Thread, '"app" = %s', ["nothing"]) == []


def test_a_change_of_owner_is_seen_at_once(owner):
    token = services.api_token_create(user=owner)
    client = Client(HTTP_AUTHORIZATION=f"Token {token}")
    assert node_owner_id() == owner.pk
    assert client.get("/api/v1/node/").status_code == 200
    other = get_user_model().objects.create_user(username="mallory", password="x" * 20)
    Node.objects.filter(pk=Node.SINGLETON_PK).update(owner=other)
    assert node_owner_id() == other.pk
    assert client.get("/api/v1/node/").status_code == 403
    Node.objects.filter(pk=Node.SINGLETON_PK).update(owner=None)
    assert node_owner_id() is None
    assert client.get("/api/v1/node/").status_code == 403
    Node.objects.all().delete()
    assert node_owner_id() is None
