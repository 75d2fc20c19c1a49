"""The public site says what works today, truthfully: a use is "available now" exactly when this
node has the app that does it, and no page calls networking or an installed app "being built"
or "next"."""

from __future__ import annotations

import re
from html import unescape

import pytest
from django.test import Client
from django.urls import reverse

from apps.website import views
from apps.website.views import USES

pytestmark = pytest.mark.django_db

STALE = (
    "being built now",
    "none of them is ready",
    "not built yet: this page describes the design. threads",
)


def said(client: Client, name: str, **kwargs: str) -> str:
    response = client.get(reverse(name, kwargs=kwargs))
    assert response.status_code == 200
    html = re.sub(r"<[^>]+>", " ", response.content.decode())
    return " ".join(unescape(html).split())


def test_every_use_with_a_built_app_is_available(client: Client) -> None:
    # Each use names the label of the app that does it; a wrong label would call a built app
    # "planned" (as the market, medical records and ledger once were).
    labels = {use.slug: use.app for use in USES.values()}
    assert labels["classifieds"] == "market"
    assert labels["medical-records"] == "medical"
    assert labels["digital-currency"] == "ledger"
    assert all(use.available for use in USES.values())
    page = said(client, "website:use", slug="secure-messaging")
    assert "Available now" in page
    assert "Planned" not in page


@pytest.mark.parametrize("slug", list(USES))
def test_each_use_page_says_available_exactly_when_its_app_is_installed(
    client: Client, slug: str
) -> None:
    page = said(client, "website:use", slug=slug)
    if USES[slug].available:
        assert "Available now" in page
        assert "Not built yet" not in page
    else:
        assert "Planned" in page
        assert "Available now" not in page


def test_a_use_whose_app_is_taken_out_is_planned_again(client: Client, monkeypatch) -> None:
    installed = views.app_installed
    monkeypatch.setattr(
        views, "app_installed", lambda label: label != "messaging" and installed(label)
    )
    page = said(client, "website:use", slug="secure-messaging")
    assert "Planned" in page
    assert "Available now" not in page
    home = said(client, "website:home")
    status = home[home.index("What works today") :]
    assert "secure messaging" in status[status.index("Planned:") :]


@pytest.mark.parametrize(
    "name", ["website:home", "website:threads", "website:uses", "website:run", "website:api"]
)
def test_no_page_is_stale(client: Client, name: str) -> None:
    page = said(client, name).lower()
    for stale in STALE:
        assert stale not in page
    assert "git clone git clone" not in page


def test_the_home_page_lists_what_works_and_what_is_planned(client: Client) -> None:
    home = said(client, "website:home")
    status = home[home.index("What works today") :]
    works, _, planned = status.partition("Planned:")
    for use in USES.values():
        assert (use.title.lower() in works) == use.available, use.slug
        assert (use.title.lower() in planned) == (not use.available), use.slug
    assert "peer to peer" in works
    assert "checklists" in works
