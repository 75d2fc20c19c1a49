"""The conversation page as a chat, without JavaScript: what a person reads is text (no template
syntax, no empty labels, no labels of hidden fields), a message over the limit gets one error in
plain words and keeps its text, a reply quotes the message it answers (or says what became of
it), reactions are chips beside one menu per message, a delete asks first, and messages are
grouped by day."""

from __future__ import annotations

import re
import uuid
from datetime import date
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from django.urls import reverse

from apps.core.threads.registry import thread_database
from apps.messaging import selectors, services, shown
from apps.messaging.models import MAX_TEXT, Message, Reaction
from tests.core.threads.conftest import exchange

pytestmark = pytest.mark.django_db(transaction=True)

TOO_LONG = (
    "This message is 9\u00a0120 characters; the limit is 8\u00a0000."
    " Send the rest as a second message or attach it as a file."
)


def _bob_says(bob, chat, text: str, reply_to: uuid.UUID | None = None) -> str:
    message = Message.objects.using(bob.alias).create(text=text, reply_to=reply_to)
    exchange(bob.database, thread_database(chat.thread))
    return message.id.hex


def _url(chat) -> str:
    return reverse("messaging:conversation", args=[chat.id])


class Page(HTMLParser):
    """What a page is made of, as far as these tests look: its text, its labels (with their
    text), its fields and its elements by class."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.text: list[str] = []
        self.labels: dict[str, str] = {}  # for -> text
        self.fields: dict[str, dict[str, str | None]] = {}  # id -> attributes
        self.classes: dict[str, list[dict[str, str | None]]] = {}
        self.textareas: dict[str, str] = {}
        self._label: str | None = None
        self._textarea: str | None = None
        self._skip = 0
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        for name in (attributes.get("class") or "").split():
            self.classes.setdefault(name, []).append({"tag": tag, **attributes})
        if tag in ("script", "style"):
            self._skip += 1
        if tag == "label":
            self._label = attributes.get("for") or ""
            self.labels.setdefault(self._label, "")
        if tag in ("input", "textarea", "select") and attributes.get("id"):
            self.fields[attributes["id"]] = attributes
        if tag == "textarea":
            self._textarea = attributes.get("id") or ""
            self.textareas[self._textarea] = ""

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._skip -= 1
        if tag == "label":
            self._label = None
        if tag == "textarea":
            self._textarea = None

    def handle_data(self, data):
        if self._skip:
            return
        self.text.append(data)
        if self._label is not None:
            self.labels[self._label] += data
        if self._textarea is not None:
            self.textareas[self._textarea] += data


def _page(browser: Client, url: str, status: int = 200) -> tuple[str, Page]:
    response = browser.get(url)
    assert response.status_code == status
    html = response.content.decode()
    return html, Page(html)


def test_the_page_is_text_a_person_reads(browser, chat, bob):
    written = "Hello {{ name }}, {% all %} {# fine #}"
    hello = _bob_says(bob, chat, written)
    services.message_send(thread=chat, text="Hi Bob", reply_to=hello)
    _, page = _page(browser, _url(chat))
    text = "".join(page.text)
    # Template-like text is only where Bob wrote it (his message, and its quote in the reply).
    assert text.count(written) == 2
    for syntax in ("{{", "{%", "{#"):
        assert syntax not in text.replace(written, "")
    for field, label in page.labels.items():
        assert label.strip(), f"the label of {field} is empty"
    # Hidden fields are in the form, without labels.
    assert page.fields["id_reply_to"]["type"] == "hidden"
    assert page.fields["id_id"]["type"] == "hidden"
    assert "id_reply_to" not in page.labels
    assert "id_id" not in page.labels
    for field in ("id_text", "id_files", "q"):
        assert page.labels[field].strip()
    assert not re.search(r"\b[0-9a-f]{32,}\b", text)  # no hex ids to read


def test_an_over_long_message_gets_one_error_and_keeps_its_text(browser, chat):
    text = "x" * 9120
    response = browser.post(_url(chat), {"text": text})
    assert response.status_code == 400
    page = Page(response.content.decode())
    errors = [e for e in page.classes["errorlist"] if e["tag"] == "ul"]
    assert len(errors) == 1
    said = "".join(page.text)
    assert TOO_LONG in said
    assert said.count("the limit is") == 1
    assert "Write a message or attach a file" not in said
    assert page.textareas["id_text"].strip("\n") == text  # nothing cut, nothing lost
    assert "maxlength" not in page.fields["id_text"]
    assert page.fields["id_text"]["aria-invalid"] == "true"
    assert selectors.messages(chat) == []
    # An empty message is told the other thing, once.
    response = browser.post(_url(chat), {"text": "   "})
    said = "".join(Page(response.content.decode()).text)
    assert said.count("Write a message or attach a file.") == 1
    assert "the limit is" not in said


def test_line_breaks_count_as_one_character_each(browser, chat):
    # Browsers send a textarea's line breaks as CR LF: 3 000 lines are 6 000 characters as the
    # person sees them, not 9 000.
    response = browser.post(_url(chat), {"text": "x\r\n" * 3000})
    assert response.status_code == 302
    (message,) = selectors.messages(chat)
    assert message.text == ("x\n" * 3000).strip()
    assert len(("x\r\n" * 3000).strip()) > MAX_TEXT


def test_a_refused_edit_keeps_its_text(browser, chat):
    message = services.message_send(thread=chat, text="short")
    url = reverse("messaging:edit", args=[chat.id, message.id.hex])
    response = browser.post(url, {"text": "y" * 9120})
    assert response.status_code == 400
    page = Page(response.content.decode())
    assert TOO_LONG in "".join(page.text)
    assert page.textareas["id_edit_text"].strip("\n") == "y" * 9120
    assert page.labels["id_edit_text"] == "Message"
    assert "Save" in "".join(page.text)
    assert selectors.messages(chat)[0].text == "short"


def test_a_reply_quotes_the_message_it_answers(browser, chat, bob):
    first = "A long first line " + "about the cake " * 10 + "\nand a second line"
    original = _bob_says(bob, chat, "> quoting someone\n" + first)
    services.message_send(thread=chat, text="On my way", reply_to=original)
    html, page = _page(browser, _url(chat))
    (quote,) = page.classes["quote"]
    assert quote["href"] == f"#m-{original}"  # on this page
    shown_quote = re.search(r'<a class="quote[^>]*>(.*?)</a>', html, re.S).group(1)
    bob_name = selectors.messages(chat)[1].author_name
    assert f"<strong>{bob_name}</strong>" in shown_quote
    line = re.search(r'<span class="line">(.*?)</span>', shown_quote).group(1)
    assert line.startswith("quoting someone")  # the first line with words, without its mark
    first_line = shown.first_line(first)
    assert len(first_line) <= shown.QUOTE_CHARS
    assert first_line.endswith("…")
    assert "second line" not in first_line


def test_a_quote_of_an_older_message_leads_to_the_page_that_has_it(browser, chat):
    original = services.message_send(thread=chat, text="Way back")
    for i in range(selectors.PAGE):
        services.message_send(thread=chat, text=f"later {i}")
    services.message_send(thread=chat, text="About that", reply_to=original.id)
    html, page = _page(browser, _url(chat))
    assert f'id="m-{original.id.hex}"' not in html
    (quote,) = page.classes["quote"]
    assert "You" in re.search(r'<a class="quote.*?</a>', html, re.S).group(0)
    older = quote["href"]
    assert older.startswith(_url(chat) + "?before=")
    assert older.endswith(f"#m-{original.id.hex}")
    html, _ = _page(browser, older.split("#")[0])
    items = re.findall(r'<li id="m-([0-9a-f]+)"', html)
    assert items[-1] == original.id.hex  # the newest of the older page


def test_a_reply_to_a_deleted_or_missing_message_says_so(browser, chat, bob):
    gone = services.message_send(thread=chat, text="Oops, wrong chat")
    services.message_send(thread=chat, text="Ignore that", reply_to=gone.id)
    services.message_delete(thread=chat, message_id=gone.id)
    # Bob answers a message this node has not received (it may come later).
    _bob_says(bob, chat, "Yes, that one", reply_to=uuid.uuid4())
    _, page = _page(browser, _url(chat))
    absent = [q for q in page.classes["quote"] if q["tag"] == "p"]
    assert len(absent) == 2
    text = "".join(page.text)
    assert "Reply to a deleted message" in text
    assert "Reply to a message not here yet" in text


def test_reply_without_javascript(browser, chat, bob):
    original = _bob_says(bob, chat, "Dinner at 7?")
    html, page = _page(browser, _url(chat) + f"?reply={original}")
    assert page.fields["id_reply_to"]["value"] == original
    assert "hidden" not in page.classes["replying"][0]
    assert "Dinner at 7?" in re.search(r'id="replying".*?</div>', html, re.S).group(0)
    browser.post(_url(chat) + f"?reply={original}", {"text": "Yes!", "reply_to": original})
    newest = selectors.messages(chat)[0]
    assert (newest.text, newest.reply_to) == ("Yes!", original)
    # Not replying: the bar is there for the script, hidden.
    _, page = _page(browser, _url(chat))
    assert "hidden" in page.classes["replying"][0]
    assert page.fields["id_reply_to"].get("value") in (None, "")


def test_reactions_are_chips_beside_one_menu_per_message(browser, chat, bob):
    hello = _bob_says(bob, chat, "Hello")
    services.message_send(thread=chat, text="Hi")
    html, page = _page(browser, _url(chat))
    assert len(page.classes["menu"]) == 2  # one per message
    # The six reactions are inside the menus, not under each message.
    assert len(page.classes["emoji"]) == 2 * len(services.REACTIONS)
    assert html.count('<details class="menu">') == 2
    assert "chip" not in page.classes
    react = reverse("messaging:react", args=[chat.id, hello])
    browser.post(react, {"emoji": "👍"})
    # Bob reacts alike on his node: two on one chip.
    Reaction.objects.using(bob.alias).create(message=uuid.UUID(hello), emoji="👍")
    exchange(bob.database, thread_database(chat.thread))
    html, page = _page(browser, _url(chat))
    (chip,) = page.classes["chip"]
    assert chip["aria-pressed"] == "true"
    assert "mine" in chip["class"].split()
    assert re.search(r'class="chip mine"[^>]*>👍 2</button>', html)
    # Pressing one's own chip takes one's reaction back; Bob's stays.
    browser.post(react, {"emoji": "👍"})
    html, page = _page(browser, _url(chat))
    (chip,) = page.classes["chip"]
    assert chip["aria-pressed"] == "false"
    assert re.search(r'class="chip"[^>]*>👍 1</button>', html)


def test_a_delete_asks_first(browser, chat):
    message = services.message_send(thread=chat, text="Regret")
    html, page = _page(browser, _url(chat))
    delete = reverse("messaging:delete", args=[chat.id, message.id.hex])
    assert f'action="{delete}"' not in html  # the menu only links to the question
    html, page = _page(browser, _url(chat) + f"?delete={message.id.hex}")
    assert f'action="{delete}"' in html
    assert "Delete this message for everyone in the conversation?" in "".join(page.text)
    assert "ws-connect" not in html  # a live render would take the question away
    assert [m.text for m in selectors.messages(chat)] == ["Regret"]
    assert browser.post(delete).status_code == 302
    assert selectors.messages(chat) == []


def test_messages_are_grouped_by_day(browser, chat):
    for text in ("one", "two", "three"):
        services.message_send(thread=chat, text=text)
    html, page = _page(browser, _url(chat))
    assert len(page.classes["day"]) == 1
    assert re.search(r'<h2 class="day"><span>Today</span></h2>', html)
    assert re.findall(r"<time [^>]*>(\d\d:\d\d)</time>", html)  # times as HH:MM


@pytest.mark.parametrize(
    ("day", "label"),
    [
        (date(2026, 3, 12), "Today"),
        (date(2026, 3, 11), "Yesterday"),
        (date(2026, 3, 9), "Monday"),
        (date(2026, 3, 6), "Friday"),  # six days back: still this week
        (date(2026, 3, 5), "Thursday 5 March"),
        (date(2025, 12, 24), "24 December 2025"),
    ],
)
def test_day_labels(day, label):
    assert shown.day_label(day, today=date(2026, 3, 12)) == label


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("\n\n  hello  \nworld", "hello"),
        ("> a quote\nthen", "a quote"),
        ("- an item", "an item"),
        ("x" * 150, "x" * 99 + "…"),
        ("", ""),
        # A quote shows what the reader saw, not the Markdown marks behind it.
        ("Who is in for a **film night** on *Friday*?", "Who is in for a film night on Friday?"),
        ("see `make run` and [the docs](https://example.org)", "see make run and the docs"),
        ("1. first\n2. second", "first"),
        ("snake_case_name stays", "snake_case_name stays"),
    ],
)
def test_first_line(text, line):
    assert shown.first_line(text) == line


@pytest.mark.parametrize("zone", ["Asia/Kathmandu", "America/St_Johns"])
def test_times_show_in_the_time_zone_the_browser_reported(browser, chat, zone):
    services.message_send(thread=chat, text="what time is it where you are?")
    sent = selectors.messages(chat)[-1].created_at
    browser.cookies["sereus_tz"] = zone
    html, _ = _page(browser, _url(chat))
    local = sent.astimezone(ZoneInfo(zone)).strftime("%H:%M")
    assert re.findall(r"<time [^>]*>(\d\d:\d\d)</time>", html)[-1] == local
    # The node's own zone (UTC) differs by a fraction of an hour: a wrong zone cannot pass.
    assert local != sent.astimezone(ZoneInfo("UTC")).strftime("%H:%M")


@pytest.mark.parametrize(
    "cookie", ["../../etc/passwd", "Nowhere/Land", "x" * 200, "/etc/localtime"]
)
def test_an_unknown_time_zone_from_the_browser_is_ignored(browser, chat, cookie):
    services.message_send(thread=chat, text="still here")
    sent = selectors.messages(chat)[-1].created_at
    browser.cookies["sereus_tz"] = cookie
    html, _ = _page(browser, _url(chat))
    utc = sent.astimezone(ZoneInfo("UTC")).strftime("%H:%M")
    assert re.findall(r"<time [^>]*>(\d\d:\d\d)</time>", html)[-1] == utc


def test_a_run_of_one_authors_messages_names_them_once(browser, chat, bob):
    for text in ("one", "two", "three"):
        _bob_says(bob, chat, text)
    services.message_send(thread=chat, text="mine")
    _bob_says(bob, chat, "four")
    html, _ = _page(browser, _url(chat))
    shown_names = re.findall(r'<strong class="author">([^<]*)</strong>', html)
    # Bob's first three are one run; after my message his next one names him again.
    assert len(shown_names) == 2, shown_names
    # A screen reader still hears who wrote each one.
    assert len(re.findall(r'<strong class="visually-hidden">[^<]*</strong>', html)) >= 3
