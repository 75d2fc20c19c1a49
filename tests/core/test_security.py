"""The local UI is a door into the owner's data: Host, CSRF, login, owner-only, headers."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

NODE_PAGES = ["core:dashboard", "core:settings", "core:recovery_reveal"]


@pytest.mark.django_db
def test_foreign_host_header_is_refused():
    # DNS rebinding: a page on attacker.example resolving to 127.0.0.1 sends its own Host.
    response = Client().get("/", HTTP_HOST="attacker.example")
    assert response.status_code == 400
    assert Client().get("/", HTTP_HOST="localhost:8000").status_code == 200
    assert Client().get("/", HTTP_HOST="127.0.0.1:8000").status_code == 200


def test_post_without_csrf_token_is_refused(owner):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(owner)
    response = browser.post(reverse("core:token_create"))
    assert response.status_code == 403
    page = browser.get(reverse("core:settings"))
    token = page.context["csrf_token"]
    ok = browser.post(reverse("core:token_create"), {"csrfmiddlewaretoken": str(token)})
    assert ok.status_code == 200


def test_login_without_csrf_is_refused(owner):
    browser = Client(enforce_csrf_checks=True)
    response = browser.post(reverse("core:login"), {"username": "alice", "password": "x"})
    assert response.status_code == 403


@pytest.mark.django_db
@pytest.mark.parametrize("name", NODE_PAGES)
def test_node_pages_send_anonymous_visitors_to_login(name: str):
    url = reverse(name)
    response = Client().get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("core:login"))
    assert f"next={url}" in response["Location"]


@pytest.mark.parametrize("name", NODE_PAGES)
def test_node_pages_refuse_accounts_other_than_the_owner(owner, name: str):
    guest = get_user_model().objects.create_user("guest", password="guest password 123")
    browser = Client()
    browser.force_login(guest)
    assert browser.get(reverse(name)).status_code == 403


@pytest.mark.django_db
def test_admin_needs_login():
    response = Client().get("/admin/")
    assert response.status_code == 302


def test_owner_reaches_admin(owner_client: Client):
    assert owner_client.get("/admin/").status_code == 200


@pytest.mark.django_db
def test_api_answers_401_in_json_without_credentials():
    response = Client().get("/api/v1/node/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json()["error"] == "not_authenticated"


@pytest.mark.django_db
def test_api_refuses_a_wrong_token():
    response = Client().get("/api/v1/node/", HTTP_AUTHORIZATION="Token " + "0" * 64)
    assert response.status_code == 401
    assert "detail" in response.json()


def test_api_answers_403_to_a_logged_in_non_owner(owner):
    guest = get_user_model().objects.create_user("guest", password="guest password 123")
    browser = Client()
    browser.force_login(guest)
    response = browser.get("/api/v1/node/")
    assert response.status_code == 403
    assert response.json()["error"] == "permission_denied"


@pytest.mark.django_db
def test_security_headers_on_every_page():
    response = Client().get("/")
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "'unsafe-inline'" not in csp
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def test_logging_out_clears_what_the_browser_kept_for_offline_use(owner_client):
    response = owner_client.post("/logout/")
    assert response.status_code == 302
    assert response["Clear-Site-Data"] == '"cache", "storage"'
    assert owner_client.get("/node/").status_code == 302  # logged out: to the login page
