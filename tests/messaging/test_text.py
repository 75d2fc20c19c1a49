"""Message text is Markdown rendered to harmless HTML: no script, no raw HTML, no remote images,
links only to the web or mail and never with the reader's referrer."""

import pytest

from apps.messaging.text import render


def test_markup_that_messages_use_is_rendered():
    html = render("**bold** _it_ `code`\n\n- one\n- two\n\n> quoted")
    for tag in ("<strong>bold</strong>", "<em>it</em>", "<code>code</code>", "<li>one</li>"):
        assert tag in html
    assert "<blockquote>" in html


@pytest.mark.parametrize(
    "text",
    [
        "<script>alert(1)</script>",
        '<img src="x" onerror="alert(1)">',
        "<iframe src=//evil.example></iframe>",
        '<a href="javascript:alert(1)">x</a>',
    ],
)
def test_raw_html_is_shown_as_text(text):
    html = render(text)
    assert "<script" not in html
    assert "<img" not in html
    assert "<iframe" not in html
    assert "<a " not in html
    assert "&lt;" in html  # the reader sees what was typed


def test_links_only_to_the_web_or_mail_and_without_referrer():
    html = render("[site](https://example.org) [bad](javascript:alert(1)) [data](data:text/html,x)")
    assert 'href="https://example.org"' in html
    assert 'rel="noopener noreferrer nofollow"' in html
    assert 'href="javascript' not in html
    assert 'href="data' not in html


def test_images_are_not_fetched_from_addresses_a_sender_chose():
    html = render("![pixel](https://tracker.example/p.png)")
    assert "<img" not in html
    assert "src=" not in html
