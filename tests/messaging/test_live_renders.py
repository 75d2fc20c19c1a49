"""The conversation page's live socket re-renders only the messages a change changed, and what
it sends is what a full render draws."""

from __future__ import annotations

from unittest import mock

from apps.messaging import consumers, services
from apps.messaging.consumers import ConversationConsumer


def _socket(chat) -> ConversationConsumer:
    consumer = ConversationConsumer()
    consumer.thread_id, consumer._csrf_token = chat.id, "token"
    return consumer


def _rendering(consumer: ConversationConsumer) -> tuple[str, list[str]]:
    """The socket's next render, and the message items it rendered for it."""
    items: list[str] = []
    real = consumers.render_to_string

    def counted(name: str, context=None, *args, **kwargs) -> str:
        if name == "messaging/_message.html":
            items.append(context["message"].id)
        return real(name, context, *args, **kwargs)

    with mock.patch.object(consumers, "render_to_string", counted):
        return consumer.live_html(), items


def test_a_change_renders_only_the_messages_it_changed(chat):
    sent = [services.message_send(thread=chat, text=f"message {i}") for i in range(5)]
    consumer = _socket(chat)
    _first, items = _rendering(consumer)
    assert len(items) == 5
    new = services.message_send(thread=chat, text="a new one")
    html, items = _rendering(consumer)
    assert items == [new.id.hex]  # rendered once, not again for its append
    assert 'hx-swap-oob="beforeend:#messages"' in html
    assert f'<li id="m-{new.id.hex}" class="message mine">' in html  # appended, no swap of its own
    services.reaction_toggle(thread=chat, message_id=sent[2].id, emoji="👍")
    html, items = _rendering(consumer)
    assert items == [sent[2].id.hex]
    assert f'<li id="m-{sent[2].id.hex}" class="message mine" hx-swap-oob="true">' in html
    assert "👍 1" in html
    html, items = _rendering(consumer)
    assert (html, items) == ("", [])  # nothing changed: nothing rendered, nothing sent


def test_a_socket_that_kept_its_renders_sends_what_a_new_one_draws(chat):
    consumer = _socket(chat)
    consumer.live_html()
    for i in range(3):
        services.message_send(thread=chat, text=f"message {i}")
        consumer.live_html()
    services.message_edit(
        thread=chat, message_id=services.message_send(thread=chat, text="x").id, text="y"
    )
    consumer.live_html()
    fresh = _socket(chat)
    fresh.live_html()
    assert consumer._shown == fresh._shown
