"""Owner setup: the one-time claim link, the recovery phrase shown once, restore, headless setup."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from apps.core import identity, services
from apps.core.models import Node
from tests.conftest import OWNER_PASSWORD
from tests.support.nodes import manage

CLAIM = "/claim/"


def _claim_form(password: str = OWNER_PASSWORD, **extra: str) -> dict[str, str]:
    return {"username": "alice", "password1": password, "password2": password, **extra}


def _phrase_in(html: str) -> str:
    words = re.findall(r"<li>([a-z]+)</li>", html)
    assert len(words) == 24, html
    return " ".join(words)


@pytest.fixture
def claim_token(db, data_dir: Path) -> str:
    return services.claim_token_issue()


def test_claim_link_creates_owner_and_shows_phrase_once(claim_token: str, data_dir: Path):
    browser = Client()
    response = browser.get(f"{CLAIM}?token={claim_token}")
    # The token leaves the address bar at once.
    assert response.status_code == 302
    assert response["Location"] == CLAIM
    form_page = browser.get(CLAIM)
    assert form_page.status_code == 200
    assert b"Make this node yours" in form_page.content

    done = browser.post(CLAIM, _claim_form())
    assert done.status_code == 200
    assert "no-store" in done["Cache-Control"]
    phrase = _phrase_in(done.content.decode())
    assert identity.recovery_phrase_to_secret(phrase) == identity.master_secret_load(data_dir)
    # The claimer is logged in as the owner.
    assert browser.get(reverse("core:dashboard")).status_code == 200

    # The link works once: a second browser with the same link is turned away.
    again = Client().get(f"{CLAIM}?token={claim_token}")
    assert again.status_code == 302
    assert again["Location"] == reverse("core:login")
    # The owner logs in with the password chosen.
    fresh = Client()
    login = fresh.post(reverse("core:login"), {"username": "alice", "password": OWNER_PASSWORD})
    assert login.status_code == 302
    assert fresh.get(reverse("core:dashboard")).status_code == 200
    assert Node.objects.get().recovery_phrase_shown


def test_wrong_or_replaced_token_is_refused(claim_token: str):
    assert Client().get(f"{CLAIM}?token=not-the-token").status_code == 403
    newer = services.claim_token_issue()  # a restart prints a new link
    assert Client().get(f"{CLAIM}?token={claim_token}").status_code == 403
    assert Client().get(f"{CLAIM}?token={newer}").status_code == 302
    # Without a token in the session, posting the form does nothing.
    response = Client().post(CLAIM, _claim_form())
    assert response.status_code == 403
    assert not Node.objects.filter(owner__isnull=False).exists()


def test_weak_or_mismatched_password_keeps_the_token(claim_token: str):
    browser = Client()
    browser.get(f"{CLAIM}?token={claim_token}")
    weak = browser.post(CLAIM, _claim_form(password="12345678"))
    assert weak.status_code == 200
    assert b"too common" in weak.content or b"entirely numeric" in weak.content
    mismatch = browser.post(CLAIM, {**_claim_form(), "password2": "something else 99"})
    assert b"The two passwords differ" in mismatch.content
    assert services.claim_token_valid(token=claim_token)
    assert browser.post(CLAIM, _claim_form()).status_code == 200


def test_claim_with_passphrase_seals_the_master_secret(claim_token: str, data_dir: Path):
    browser = Client()
    browser.get(f"{CLAIM}?token={claim_token}")
    done = browser.post(CLAIM, _claim_form(passphrase="river stone lamp window"))
    phrase = _phrase_in(done.content.decode())
    assert identity.master_secret_is_sealed(data_dir)
    with pytest.raises(identity.PassphraseRequired):
        identity.master_secret_load(data_dir)
    secret = identity.master_secret_load(data_dir, passphrase="river stone lamp window")
    assert identity.recovery_phrase_to_secret(phrase) == secret


def test_headless_owner_can_claim_later_and_sees_phrase_then(db, data_dir: Path):
    owner = services.owner_ensure()
    assert not owner.has_usable_password()
    assert services.owner_ensure().pk == owner.pk, "owner_ensure is idempotent"
    assert services.node_needs_claim()
    secret = identity.master_secret_load(data_dir)

    token = services.claim_token_issue()
    browser = Client()
    browser.get(f"{CLAIM}?token={token}")
    done = browser.post(CLAIM, _claim_form())
    assert identity.recovery_phrase_to_secret(_phrase_in(done.content.decode())) == secret
    owner.refresh_from_db()
    assert owner.username == "alice"
    assert owner.check_password(OWNER_PASSWORD)
    assert not services.node_needs_claim()


def test_recovery_phrase_reveal_is_once_and_needs_the_password(db, data_dir: Path):
    owner = services.owner_ensure()
    owner.set_password(OWNER_PASSWORD)
    owner.save()
    browser = Client()
    browser.force_login(owner)
    url = reverse("core:recovery_reveal")
    assert b"Show your recovery phrase" in browser.get(url).content
    wrong = browser.post(url, {"password": "not my password"})
    assert b"That is not your password" in wrong.content
    shown = browser.post(url, {"password": OWNER_PASSWORD})
    phrase = _phrase_in(shown.content.decode())
    assert identity.recovery_phrase_to_secret(phrase) == identity.master_secret_load(data_dir)
    assert browser.get(url).status_code == 302, "never shown twice"


def test_recovery_phrase_restores_the_same_master_secret_on_a_fresh_data_dir(
    claim_token: str, data_dir: Path, tmp_path: Path
):
    browser = Client()
    browser.get(f"{CLAIM}?token={claim_token}")
    phrase = _phrase_in(browser.post(CLAIM, _claim_form()).content.decode())

    fresh = tmp_path / "restored"
    result = manage(fresh, "node_restore", stdin=phrase + "\n")
    assert result.returncode == 0, result.stderr
    assert "Restored" in result.stdout
    assert identity.master_secret_load(fresh) == identity.master_secret_load(data_dir)
    # A new device of the same party: a different device key.
    assert (
        identity.device_key_load(fresh).public_key
        != identity.device_key_ensure(data_dir).public_key
    )

    again = manage(fresh, "node_restore", stdin=phrase)
    assert again.returncode != 0
    assert "already has an owner" in again.stderr


def test_restore_refuses_a_bad_phrase_and_writes_nothing(tmp_path: Path):
    fresh = tmp_path / "node"
    result = manage(fresh, "node_restore", stdin="abandon " * 23 + "zebra")
    assert result.returncode != 0
    assert "not a valid recovery phrase" in result.stderr
    assert not identity.master_secret_exists(fresh)
