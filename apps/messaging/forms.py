from django import forms

from apps.messaging.models import MAX_NAME, MAX_TEXT


class ConversationForm(forms.Form):
    name = forms.CharField(max_length=200, label="Conversation name")
    my_name = forms.CharField(
        max_length=MAX_NAME, required=False, label="Your name in it", help_text="Members see it."
    )


class MessageForm(forms.Form):
    text = forms.CharField(
        max_length=MAX_TEXT,
        label="Message",
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "Write a message (Markdown)"}),
    )
    reply_to = forms.UUIDField(required=False, widget=forms.HiddenInput)


class NameForm(forms.Form):
    name = forms.CharField(max_length=MAX_NAME, label="Your name here")


class ReactionForm(forms.Form):
    emoji = forms.CharField(max_length=16)
