"""The public blog: valid Atom and HTML, only public posts, escaped titles, the static export, and
anonymous access to /blog/ and nothing else of the node."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from apps.timeline import blog, blog_views, selectors
from apps.timeline.management.commands.blog_export import Command as BlogExport
from apps.timeline.post import LONG, SHORT, PostView

BASE = "https://blog.example/blog/"
IDENTITY = {"base_url": BASE, "title": "Alice's blog", "author": "Alice"}
ATOM = "{http://www.w3.org/2005/Atom}"
HOSTILE_TITLE = "<script>alert('title')</script> & more"


def make_post(n: int, **fields: object) -> PostView:
    values: dict = {
        "id": f"{n:032x}",
        "thread": "ab" * 16,
        "author": "cd" * 32,
        "author_name": "you",
        "kind": LONG,
        "text": f"Body {n}",
        "html": f"<p>Body of post {n}</p>",
        "title": f"Post number {n}",
        "slug": f"post-{n}",
        "created_at": datetime(2026, 3, n, 12, 0, tzinfo=UTC),
        "public": True,
    }
    values.update(fields)
    return PostView(**values)


def mixed_posts() -> list[PostView]:
    """Newest first: a public short post, a public long one, a private one, a deleted one."""
    return [
        make_post(
            5, kind=SHORT, title="", slug="", text="A short note", html="<p>A short note</p>"
        ),
        make_post(4, edited_at=datetime(2026, 3, 6, 9, 0, tzinfo=UTC)),
        make_post(3, public=False, title="Private diary", slug="private-diary"),
        make_post(2, deleted=True, title="Gone post", slug="gone"),
    ]


class PageCheck(HTMLParser):
    """Parses a page and records what the tests ask about: open tags left over or closed out of
    order, scripts, links and the visible text."""

    VOID = {"meta", "link", "br", "hr", "img", "input", "source", "wbr", "col", "area", "base"}

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.doctype = ""
        self.feed(page)
        self.close()
        self.errors += [f"<{tag}> is never closed" for tag in self.stack]

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def attrs(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]

    @property
    def visible(self) -> str:
        return " ".join(" ".join(self.text).split())


def checked_page(page: str) -> PageCheck:
    parsed = PageCheck(page)
    assert parsed.doctype.lower() == "doctype html"
    assert parsed.errors == []
    assert [tag for tag, _ in parsed.tags].count("html") == 1
    assert not parsed.attrs("script")
    alternates = [a for a in parsed.attrs("link") if a.get("rel") == "alternate"]
    assert [a["type"] for a in alternates] == ["application/atom+xml"]
    return parsed


def parse_atom(data: bytes) -> ET.Element:
    return ET.fromstring(data)  # noqa: S314 - the node's own output, made by these tests


def checked_feed(data: bytes, base_url: str = BASE) -> ET.Element:
    """The feed, after checking what RFC 4287 requires of it and of each entry."""
    feed = parse_atom(data)
    assert feed.tag == f"{ATOM}feed"
    for name in ("id", "title", "updated"):
        assert len(feed.findall(f"{ATOM}{name}")) == 1, name
    # Without a feed author, every entry would need its own.
    assert feed.find(f"{ATOM}author/{ATOM}name").text
    rels = {link.get("rel", "alternate"): link.get("href") for link in feed.findall(f"{ATOM}link")}
    assert rels["self"] == f"{base_url}atom.xml"
    for entry in feed.findall(f"{ATOM}entry"):
        for name in ("id", "title", "updated"):
            assert len(entry.findall(f"{ATOM}{name}")) == 1, name
        assert entry.find(f"{ATOM}link").get("href").startswith(base_url)
        assert entry.find(f"{ATOM}id").text.startswith("urn:uuid:")
        datetime.fromisoformat(entry.find(f"{ATOM}updated").text)
    return feed


def test_feed_is_valid_atom_with_only_public_posts():
    feed = checked_feed(blog.atom_feed(mixed_posts(), **IDENTITY))
    entries = feed.findall(f"{ATOM}entry")
    assert [e.find(f"{ATOM}title").text for e in entries] == ["A short note", "Post number 4"]
    assert feed.find(f"{ATOM}title").text == "Alice's blog"
    # The feed is as new as its newest change: post 4 was edited after post 5 was written.
    assert datetime.fromisoformat(feed.find(f"{ATOM}updated").text) == datetime(
        2026, 3, 6, 9, 0, tzinfo=UTC
    )
    links = [e.find(f"{ATOM}link").get("href") for e in entries]
    assert links == [f"{BASE}#p-{5:032x}", f"{BASE}post-4/"]
    assert entries[1].find(f"{ATOM}content").text == "<p>Body of post 4</p>"
    assert b"Private diary" not in blog.atom_feed(mixed_posts(), **IDENTITY)


def test_empty_feed_is_still_valid():
    feed = checked_feed(blog.atom_feed([], **IDENTITY))
    assert feed.findall(f"{ATOM}entry") == []


def test_index_lists_only_public_posts_and_links_their_pages():
    page = checked_page(blog.blog_index_html(mixed_posts(), **IDENTITY))
    assert "Post number 4" in page.visible
    assert "A short note" in page.visible  # short posts are shown whole on the index
    assert "Private diary" not in page.visible
    assert "Gone post" not in page.visible
    hrefs = [a["href"] for a in page.attrs("a")]
    assert "post-4/" in hrefs
    assert not any("private-diary" in h or "gone" in h for h in hrefs)


def test_post_page_is_valid_html_and_only_for_public_long_posts():
    post = mixed_posts()[1]
    page = checked_page(blog.blog_post_html(post, **IDENTITY))
    assert "Body of post 4" in page.visible
    assert {"rel": "canonical", "href": f"{BASE}post-4/"} in page.attrs("link")
    for hidden in mixed_posts()[0::2] + mixed_posts()[3:]:
        with pytest.raises(ValueError, match="Only a public long post"):
            blog.blog_post_html(hidden, **IDENTITY)


def test_script_in_titles_is_shown_as_text_everywhere():
    post = make_post(7, title=HOSTILE_TITLE)
    for page in (
        blog.blog_index_html([post], **IDENTITY),
        blog.blog_post_html(post, **IDENTITY),
    ):
        assert "<script" not in page
        assert HOSTILE_TITLE in checked_page(page).visible
    hostile_blog = {**IDENTITY, "title": HOSTILE_TITLE, "author": HOSTILE_TITLE}
    page = blog.blog_index_html([post], **hostile_blog)
    assert "<script" not in page
    assert HOSTILE_TITLE in checked_page(page).visible
    feed = checked_feed(blog.atom_feed([post], **hostile_blog))
    assert feed.find(f"{ATOM}entry/{ATOM}title").text == HOSTILE_TITLE
    assert feed.find(f"{ATOM}title").text == HOSTILE_TITLE


def test_a_slug_that_could_leave_the_folder_gets_no_page(tmp_path: Path):
    post = make_post(8, slug="../../escape")
    assert not blog.has_page(post)
    blog.blog_export(tmp_path / "site", [post], **IDENTITY)
    assert not (tmp_path / "escape").exists()
    assert sorted(p.name for p in (tmp_path / "site").iterdir()) == sorted(
        [*blog.EXPORT_FILES, blog.EXPORT_MANIFEST]
    )


def test_export_writes_the_pages_and_removes_posts_no_longer_public(tmp_path: Path):
    target = tmp_path / "site"
    posts = mixed_posts()
    blog.blog_export(target, posts, **IDENTITY)
    checked_page((target / "index.html").read_text())
    checked_page((target / "post-4" / "index.html").read_text())
    checked_feed((target / "atom.xml").read_bytes())
    assert "max-width" in (target / "style.css").read_text()
    assert not (target / "private-diary").exists()
    assert not (target / "gone").exists()
    # The exported files are the pages the node serves.
    assert (target / "index.html").read_text() == blog.blog_index_html(posts, **IDENTITY)

    unpublished = [posts[0], replace(posts[1], public=False)]
    blog.blog_export(target, unpublished, **IDENTITY)
    assert not (target / "post-4").exists()
    assert "Post number 4" not in (target / "index.html").read_text()
    assert json.loads((target / blog.EXPORT_MANIFEST).read_text()) == {"slugs": []}


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Callable[[list[PostView]], None]:
    """Makes the selectors return the given posts (as if they were this node's public posts)."""

    def serve(posts: list[PostView]) -> None:
        live = [p for p in posts if p.public and not p.deleted]
        monkeypatch.setattr(selectors, "public_posts", lambda: live)
        monkeypatch.setattr(
            selectors, "public_post", lambda slug: next((p for p in live if p.slug == slug), None)
        )

    return serve


@pytest.mark.django_db
def test_export_command_writes_the_blog(tmp_path: Path, served, settings):
    served(mixed_posts())
    settings.SEREUS = replace(settings.SEREUS, domain="alice.example")
    call_command(BlogExport(), str(tmp_path / "out"))
    feed = parse_atom((tmp_path / "out" / "atom.xml").read_bytes())
    assert feed.find(f"{ATOM}id").text == "https://alice.example/blog/"
    assert len(feed.findall(f"{ATOM}entry")) == 2
    assert (tmp_path / "out" / "post-4" / "index.html").exists()


@pytest.mark.django_db
def test_export_command_refuses_in_plain_words(tmp_path: Path, served, settings):
    served(mixed_posts())
    settings.SEREUS = replace(settings.SEREUS, domain=None)
    with pytest.raises(CommandError, match="Give the blog's address with --base-url"):
        call_command(BlogExport(), str(tmp_path / "out"))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(CommandError, match=r"^Could not write the blog into .*a-file/out: "):
        call_command(BlogExport(), str(blocker / "out"), base_url=BASE)
    with pytest.raises(CommandError, match="is not a web address"):
        call_command(BlogExport(), str(tmp_path / "out"), base_url="blog.example")


@pytest.mark.django_db
def test_anonymous_readers_get_the_public_blog(served):
    served(mixed_posts())
    browser = Client()
    index = browser.get("/blog/")
    assert index.status_code == 200
    assert sorted(index["Cache-Control"].split(", ")) == ["max-age=300", "public"]
    page = checked_page(index.content.decode())
    assert "Post number 4" in page.visible
    assert "Private diary" not in page.visible
    assert index.content.decode().count("<title>Blog</title>") == 1  # no display name yet

    assert browser.get("/blog/post-4/").status_code == 200
    feed = browser.get("/blog/atom.xml")
    assert feed["Content-Type"].startswith("application/atom+xml")
    assert parse_atom(feed.content).find(f"{ATOM}id").text == "http://testserver/blog/"
    assert browser.get("/blog/style.css")["Content-Type"].startswith("text/css")


@pytest.mark.django_db
def test_a_node_without_timelines_serves_an_empty_blog():
    # The real selectors: nothing published yet is a page saying so, not an error.
    page = checked_page(Client().get("/blog/").content.decode())
    assert "Nothing is published here yet." in page.visible
    assert Client().get("/blog/anything/").status_code == 404
    feed = checked_feed(Client().get("/blog/atom.xml").content, "http://testserver/blog/")
    assert feed.find(f"{ATOM}entry") is None


@pytest.mark.django_db
@pytest.mark.parametrize("slug", ["private-diary", "gone", "no-such-post", "post-5"])
def test_anything_not_public_is_404(served, slug: str):
    served([*mixed_posts(), make_post(6, kind=SHORT, slug="post-5", title="")])
    assert Client().get(f"/blog/{slug}/").status_code == 404


@pytest.mark.django_db
def test_the_blog_takes_no_writes(served):
    served(mixed_posts())
    assert Client().post("/blog/").status_code == 405


@pytest.mark.django_db
def test_the_rest_of_the_node_still_needs_login(served):
    served(mixed_posts())
    browser = Client()
    response = browser.get("/node/")
    assert response.status_code == 302
    assert "/login" in response["Location"]
    assert browser.get("/api/v1/node/").status_code == 401
    assert browser.get("/api/v1/").status_code in (401, 403, 404)


def _patterns(resolver: URLResolver, prefix: str = "") -> list[tuple[str, object]]:
    found: list[tuple[str, object]] = []
    for pattern in resolver.url_patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            found += _patterns(pattern, route)
        elif isinstance(pattern, URLPattern):
            found.append((route, pattern.callback))
    return found


def _drf_guarded(view) -> bool:
    """An API view: DRF checks who calls it (the project's default permission, owner only), so
    Django's login_required does not apply; it must not allow anyone."""
    from rest_framework.permissions import AllowAny

    cls = getattr(view, "cls", None)
    if cls is None:
        return False
    return all(not isinstance(p, AllowAny) for p in cls().get_permissions())


def test_the_timeline_app_opens_only_the_blog_to_anonymous_readers():
    public = [
        route
        for route, view in _patterns(get_resolver())
        if getattr(view, "__module__", "").startswith("apps.timeline")
        and not getattr(view, "login_required", True)
        and not _drf_guarded(view)
    ]
    cover = r"^blog/(?P<slug>[A-Za-z0-9_-]+)/(?P<name>cover\.(?:png|jpg|gif|webp))$"
    expected = ["blog/", "blog/<slug:slug>/", "blog/atom.xml", "blog/style.css", cover]
    assert sorted(public) == sorted(expected)
    assert all(
        getattr(view, "__module__", "") == blog_views.__name__
        for route, view in _patterns(get_resolver())
        if route in public
    )


PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa75\x81\x84"
    b"\x00\x00\x00\x00IEND\xaeB`\x82"
)


@pytest.mark.django_db(transaction=True)
def test_a_public_posts_cover_is_served_and_exported_and_nothing_else_is(node, tmp_path, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from apps.timeline import services

    thread = services.timeline_create(name="Essays", my_name="Alice")

    def upload(name: str) -> SimpleUploadedFile:
        return SimpleUploadedFile(name, PNG, content_type="image/png")

    services.post_create(
        thread=thread, title="With a cover", text_="Body.", public=True,
        files=[upload("sea.png")], cover=True,
    )  # fmt: skip
    services.post_create(
        thread=thread, title="Private one", text_="Body.", files=[upload("me.png")], cover=True
    )
    anonymous = Client()
    page = anonymous.get("/blog/with-a-cover/")
    assert b'<img class="cover" src="cover.png" alt="">' in page.content
    picture = anonymous.get("/blog/with-a-cover/cover.png")
    assert picture.status_code == 200
    assert picture.content == PNG
    assert picture["Content-Type"] == "image/png"
    assert picture["X-Content-Type-Options"] == "nosniff"
    for path in ("/blog/with-a-cover/cover.jpg", "/blog/private-one/cover.png"):
        assert anonymous.get(path).status_code == 404
    settings.SEREUS = replace(settings.SEREUS, domain="blog.example.org")
    call_command("blog_export", str(tmp_path / "site"))
    assert (tmp_path / "site" / "with-a-cover" / "cover.png").read_bytes() == PNG
    assert not (tmp_path / "site" / "private-one").exists()
