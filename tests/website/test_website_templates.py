"""The CSP allows no inline script or style: the website's templates and pages must not need any."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from apps.website.views import USES

TEMPLATES = Path(settings.BASE_DIR) / "templates" / "website"

SCRIPT_TAG = re.compile(r"<script\b([^>]*)>", re.IGNORECASE)
STYLE_ATTRIBUTE = re.compile(r"<[a-z][^>]*\sstyle\s*=", re.IGNORECASE)
STYLE_ELEMENT = re.compile(r"<style\b", re.IGNORECASE)
EVENT_HANDLER = re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.IGNORECASE)
HTMX_INLINE = re.compile(r"\shx-on", re.IGNORECASE)  # evaluated code: blocked by the CSP too


def inline_code(html: str) -> list[str]:
    """Everything in ``html`` that a script-src/style-src 'self' policy would block."""
    problems = [
        f"inline <script{attrs}>"
        for attrs in SCRIPT_TAG.findall(html)
        if not re.search(r"\ssrc\s*=", attrs)
    ]
    for name, pattern in (
        ("style attribute", STYLE_ATTRIBUTE),
        ("<style> element", STYLE_ELEMENT),
        ("event handler attribute", EVENT_HANDLER),
        ("hx-on attribute", HTMX_INLINE),
    ):
        problems += [name for _ in pattern.findall(html)]
    return problems


def test_the_checker_catches_inline_code() -> None:
    assert inline_code('<script src="/static/x.js" defer></script>') == []
    assert inline_code("<script>alert(1)</script>") == ["inline <script>"]
    assert inline_code('<p style="color: red">x</p>') == ["style attribute"]
    assert inline_code("<style>p {}</style>") == ["<style> element"]
    assert inline_code('<a onclick="x()">x</a>') == ["event handler attribute"]


def test_website_templates_have_no_inline_code() -> None:
    templates = sorted(TEMPLATES.rglob("*.html"))
    assert len(templates) >= 10
    for template in templates:
        assert inline_code(template.read_text()) == [], template.name


@pytest.mark.django_db
def test_rendered_pages_have_no_inline_code(client: Client) -> None:
    names = ["home", "threads", "uses", "run", "api", "offline"]
    urls = [reverse(f"website:{name}") for name in names]
    urls += [reverse("website:use", kwargs={"slug": slug}) for slug in USES]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200
        assert inline_code(response.content.decode()) == [], url
