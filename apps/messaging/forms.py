from django import forms

from apps.messaging.models import MAX_NAME, MAX_TEXT


class ConversationForm(forms.Form):
    name = forms.CharField(max_length=200, label="Conversation name")
    my_name = forms.CharField(
        max_length=MAX_NAME, required=False, label="Your name in it", help_text="Members see it."
    )


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


class MessageForm(forms.Form):
    text = forms.CharField(
        max_length=MAX_TEXT,
        required=False,
        label="Message",
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "Write a message (Markdown)"}),
    )
    reply_to = forms.UUIDField(required=False, widget=forms.HiddenInput)
    # Chosen when the form is drawn: the same message sent twice (a retry, the offline outbox
    # of the service worker) is posted once.
    id = forms.UUIDField(required=False, widget=forms.HiddenInput)
    files = MultipleFileField(required=False, label="Attach files")

    def clean(self):
        data = super().clean()
        if not (data.get("text") or "").strip() and not data.get("files"):
            raise forms.ValidationError("Write a message or attach a file.")
        return data


class MessageEditForm(forms.Form):
    text = forms.CharField(max_length=MAX_TEXT, label="Message", widget=forms.Textarea({"rows": 3}))


class NameForm(forms.Form):
    name = forms.CharField(max_length=MAX_NAME, label="Your name here")


class ReactionForm(forms.Form):
    emoji = forms.CharField(max_length=16)
