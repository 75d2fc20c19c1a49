"""Terms an app attaches to an invite through the core's invites API (``invite_terms``): refused
in a thread whose app takes none, with nothing made; handed to the app's handler, which makes
the invite or refuses it in words; an app that asked for it sees every invite, terms or not."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from apps.core.models import ThreadInvite
from apps.core.threads import invite_terms
from apps.core.threads import services as threads
from apps.core.threads.services import ThreadServiceError
from tests.checklist.conftest import browser, owner_user  # noqa: F401
from tests.core.threads.conftest import node, thread_databases_allowed  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def handlers(monkeypatch) -> list[dict]:
    """What the handlers registered by the test were called with; the registry is restored."""
    monkeypatch.setattr(invite_terms, "HANDLERS", {})
    monkeypatch.setattr(invite_terms, "ALWAYS", set())
    return []


def invite(api: Client, thread_id: str, **body):
    body.setdefault("expires_in", 3600)
    return api.post(
        f"/api/v1/threads/{thread_id}/invites/", json.dumps(body), content_type="application/json"
    )


def test_a_thread_whose_app_takes_no_terms_refuses_a_grant(browser, handlers):  # noqa: F811
    thread = threads.thread_create(name="Book club")
    answer = invite(browser, thread.id, grant={"read": ["Observation"]})
    assert answer.status_code == 400, answer.content
    assert answer.json()["error"] == "invalid"
    assert "take no grant" in answer.json()["detail"]
    assert not ThreadInvite.objects.filter(thread=thread).exclude(link="").exists()
    plain = invite(browser, thread.id)
    assert plain.status_code == 201, plain.content
    assert plain.json()["link"].startswith("sereus:")


def test_the_apps_handler_makes_the_invite_with_its_terms(browser, handlers):  # noqa: F811
    thread = threads.thread_create(name="Ada's record")

    def handler(*, thread, role, expires_in, uses, label, terms):
        handlers.append({"role": role, "seconds": expires_in.total_seconds(), "terms": terms})
        if terms and terms.get("read") == ["everything"]:
            raise ThreadServiceError("forbidden", "Dr. Lee may not read everything")
        return threads.invite_create(
            thread=thread, role=role, expires_in=expires_in, uses=uses, label=label
        )

    invite_terms.register(thread.app, handler)
    terms = {"read": ["Observation"], "write": [], "label": "Dr. Lee"}
    made = invite(browser, thread.id, role="reader", grant=terms, label="for Dr. Lee")
    assert made.status_code == 201, made.content
    assert made.json()["role"] == "reader"
    assert made.json()["label"] == "for Dr. Lee"
    assert handlers == [{"role": "reader", "seconds": 3600, "terms": terms}]

    refused = invite(browser, thread.id, role="reader", grant={"read": ["everything"]})
    assert refused.status_code == 403, refused.content
    assert refused.json() == {"error": "forbidden", "detail": "Dr. Lee may not read everything"}
    assert ThreadInvite.objects.filter(thread=thread).exclude(link="").count() == 1

    bad = invite(browser, thread.id, grant=["Observation"])
    assert bad.status_code == 400
    assert len(handlers) == 2  # a grant that is no object never reaches the handler

    plain = invite(browser, thread.id, role="reader")
    assert plain.status_code == 201  # without terms: the core's invite, the handler not asked
    assert len(handlers) == 2


def test_an_app_may_see_every_invite_of_its_threads(browser, handlers):  # noqa: F811
    thread = threads.thread_create(name="Ada's record")

    def handler(*, thread, role, expires_in, uses, label, terms):
        handlers.append(terms)
        raise ThreadServiceError("invalid", "say what the newcomer may read")

    invite_terms.register(thread.app, handler, always=True)
    answer = invite(browser, thread.id)
    assert answer.status_code == 400
    assert answer.json()["detail"] == "say what the newcomer may read"
    assert handlers == [None]
    invite_terms.register(thread.app, handler)  # registered again without it: plain invites
    assert invite(browser, thread.id).status_code == 201
