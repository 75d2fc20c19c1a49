"""The public Sereus Fabric pages: they answer anonymous visitors, with their own title,
description, main heading and links."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.test import Client
from django.urls import reverse

from apps.website.views import USES

# Every page needs no database, but the test database is there in case a context processor
# (the owner's claim state, say) starts to use it.
pytestmark = pytest.mark.django_db

BASE_DESCRIPTION = "Sereus Fabric: invite-only threads with shared databases your own devices keep"

PAGES = [
    ("website:home", {}, "Sereus Fabric"),
    ("website:threads", {}, "How threads work"),
    ("website:uses", {}, "Example uses"),
    ("website:run", {}, "Run a node"),
    ("website:api", {}, "The node's API"),
    ("website:offline", {}, "You're offline"),
] + [("website:use", {"slug": use.slug}, use.title) for use in USES.values()]

EXPECTED_USE_SLUGS = {
    "secure-messaging",
    "social-media",
    "classifieds",
    "distributed-storage",
    "medical-records",
    "community-voting",
    "digital-currency",
}


class PageParser(HTMLParser):
    """Collects what these tests look at: the title, the description, headings and links."""

    def __init__(self) -> None:
        super().__init__()
        self.title = ""
        self.description: str | None = None
        self.h1: list[str] = []
        self.h2: list[str] = []
        self.links: list[str] = []
        self._capture: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag in ("title", "h1", "h2"):
            self._capture = tag
            if tag != "title":
                getattr(self, tag).append("")
        elif tag == "meta" and attributes.get("name") == "description":
            self.description = attributes.get("content")
        elif tag == "a" and attributes.get("href") is not None:
            self.links.append(attributes["href"] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == self._capture:
            self._capture = None

    def handle_data(self, data: str) -> None:
        if self._capture == "title":
            self.title += data
        elif self._capture in ("h1", "h2"):
            headings = getattr(self, self._capture)
            headings[-1] += data


def parse(html: str) -> PageParser:
    parser = PageParser()
    parser.feed(html)
    return parser


def fetch(client: Client, name: str, kwargs: dict[str, str]) -> PageParser:
    response = client.get(reverse(name, kwargs=kwargs))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    return parse(response.content.decode())


@pytest.mark.parametrize(("name", "kwargs", "heading"), PAGES)
def test_page_is_public_with_its_heading(
    client: Client, name: str, kwargs: dict[str, str], heading: str
) -> None:
    page = fetch(client, name, kwargs)
    assert [h.strip() for h in page.h1] == [heading]
    assert page.title.strip()
    assert page.description
    assert BASE_DESCRIPTION not in page.description


def test_pages_have_distinct_titles_and_descriptions(client: Client) -> None:
    pages = [fetch(client, name, kwargs) for name, kwargs, _ in PAGES]
    titles = [page.title.strip() for page in pages]
    descriptions = [page.description for page in pages]
    assert len(set(titles)) == len(titles)
    assert len(set(descriptions)) == len(descriptions)


def test_home_links_to_the_other_pages_and_to_login(client: Client) -> None:
    page = fetch(client, "website:home", {})
    for name in ("website:threads", "website:uses", "website:run", "website:api", "core:login"):
        assert reverse(name) in page.links, name


def test_the_uses_are_exactly_the_documented_ones() -> None:
    assert set(USES) == EXPECTED_USE_SLUGS


def test_uses_index_links_every_use(client: Client) -> None:
    page = fetch(client, "website:uses", {})
    for slug, use in USES.items():
        assert reverse("website:use", kwargs={"slug": slug}) in page.links
        assert use.title in page.h2


@pytest.mark.parametrize("slug", sorted(USES))
def test_use_page_has_problem_design_and_story(client: Client, slug: str) -> None:
    page = fetch(client, "website:use", {"slug": slug})
    for section in ("The problem today", "How it works on Sereus", "An example"):
        assert section in page.h2
    others = {reverse("website:use", kwargs={"slug": other}) for other in USES if other != slug}
    assert others <= set(page.links)


@pytest.mark.parametrize("slug", ["no-such-use", "home", "use-page"])
def test_unknown_use_is_404(client: Client, slug: str) -> None:
    assert client.get(reverse("website:use", kwargs={"slug": slug})).status_code == 404


def test_api_page_points_to_the_docs_and_schema(client: Client) -> None:
    page = fetch(client, "website:api", {})
    assert "/api/docs/" in page.links
    assert "/api/schema/" in page.links
    # The pages use plain paths; they must be where the API really serves them.
    assert reverse("api_docs") == "/api/docs/"
    assert reverse("api_schema") == "/api/schema/"


def test_pages_refuse_post(client: Client) -> None:
    assert client.post(reverse("website:home")).status_code == 405
    assert client.post(reverse("website:use", kwargs={"slug": "classifieds"})).status_code == 405
