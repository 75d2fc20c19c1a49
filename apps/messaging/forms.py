from django import forms

from apps.core.thread.payloads import MAX_INVITE_LABEL
from apps.messaging.models import MAX_NAME, MAX_TEXT

MAX_CONVERSATION_NAME = 200


class ConversationForm(forms.Form):
    name = forms.CharField(max_length=MAX_CONVERSATION_NAME, label="Conversation name")
    my_name = forms.CharField(
        max_length=MAX_NAME, required=False, label="Your name in it", help_text="Members see it."
    )


class PlainName(forms.CharField):
    """A name on one line, its blanks collapsed; its length checked on the server only, so a
    long paste is told, not cut by the browser without a word (no ``maxlength``)."""

    def __init__(self, *, limit: int, what: str, **kwargs) -> None:
        self.limit, self.what = limit, what
        kwargs.setdefault("error_messages", {"required": f"Write {what}."})
        super().__init__(**kwargs)

    def to_python(self, value: object) -> str:
        return " ".join(super().to_python(value).split())

    def validate(self, value: str) -> None:
        super().validate(value)
        if len(value) > self.limit:
            raise forms.ValidationError(
                f"{self.what.capitalize()} has at most {self.limit} characters; "
                f"this one has {len(value)}.",
                code="max_length",
            )
        if not value.isprintable():
            raise forms.ValidationError(
                f"{self.what.capitalize()} is plain text: letters, digits, signs and spaces.",
                code="invalid",
            )


class InviteSomeoneForm(forms.Form):
    """Invite one person to a new conversation: who they are, and what the conversation is
    called ("Chat with Sam" when left empty)."""

    label = PlainName(
        limit=MAX_INVITE_LABEL,
        what="their name",
        label="Their name",
        help_text="For example “Sam”. It names the invite, so you can tell your invites apart.",
    )
    name = PlainName(
        limit=MAX_CONVERSATION_NAME,
        what="a conversation's name",
        required=False,
        label="Conversation name",
        help_text="Left empty, it is “Chat with” and their name. Everyone in it sees it.",
    )

    def clean(self) -> dict:
        data = super().clean()
        if not data.get("name") and data.get("label"):
            data["name"] = f"Chat with {data['label']}"
        return data


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files in one field (Django's documented pattern)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        if isinstance(data, list | tuple):
            return [super(MultipleFileField, self).clean(d, initial) for d in data]
        return [super().clean(data, initial)] if data else []


def thousands(number: int) -> str:
    """9120 as "9 120" (a no-break space: the number never wraps in the middle)."""
    return f"{number:,}".replace(",", "\u00a0")


# The page's script says the same while one types ({length} is filled in there).
TOO_LONG = (
    "This message is {length} characters; the limit is {limit}."
    " Send the rest as a second message or attach it as a file."
)


def too_long(length: int | None = None) -> str:
    """What a message too long is told; without a length, with ``{length}`` left to fill in."""
    shown = "{length}" if length is None else thousands(length)
    return TOO_LONG.format(length=shown, limit=thousands(MAX_TEXT))


class MessageText(forms.CharField):
    """A message's text, its length checked on the server only: a ``maxlength`` attribute would
    make the browser cut a long paste without a word, and the person would send half of it."""

    def to_python(self, value: object) -> str:
        # Browsers send a textarea's line breaks as CR LF: count them as the one character
        # a person sees (and the page's counter counts).
        return super().to_python(value).replace("\r\n", "\n")

    def validate(self, value: str) -> None:
        super().validate(value)
        if len(value) > MAX_TEXT:  # counted as sent: without the blanks around it
            raise forms.ValidationError(too_long(len(value)), code="max_length")


class MessageForm(forms.Form):
    text = MessageText(
        required=False,
        label="Message",
        widget=forms.Textarea(attrs={"rows": 1, "placeholder": "Write a message"}),
    )
    reply_to = forms.UUIDField(required=False, widget=forms.HiddenInput)
    # Chosen when the form is drawn: the same message sent twice (a retry, the offline outbox
    # of the service worker) is posted once.
    id = forms.UUIDField(required=False, widget=forms.HiddenInput)
    files = MultipleFileField(required=False, label="Attach files")

    def clean(self):
        data = super().clean()
        # Only when the text itself is fine: a text refused as too long is not "no text".
        empty = not (data.get("text") or "").strip() and not data.get("files")
        if empty and "text" not in self.errors:
            raise forms.ValidationError("Write a message or attach a file.")
        return data


class MessageEditForm(forms.Form):
    text = MessageText(label="Message", widget=forms.Textarea({"rows": 3}))

    def __init__(self, *args, **kwargs) -> None:
        # Drawn on the page beside the composer: ids of its own (``id_edit_text``).
        kwargs.setdefault("auto_id", "id_edit_%s")
        super().__init__(*args, **kwargs)


class ReactionForm(forms.Form):
    emoji = forms.CharField(max_length=16)
