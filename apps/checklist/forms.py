from datetime import timedelta

from django import forms

from apps.checklist.models import DEFAULT_LIST, MAX_LIST, MAX_TEXT


class ItemForm(forms.Form):
    text = forms.CharField(max_length=MAX_TEXT, label="Item")
    list_name = forms.CharField(
        max_length=MAX_LIST,
        required=False,
        initial=DEFAULT_LIST,
        label="List",
        help_text="Items are grouped by list; a new name starts a new list.",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The lists already there, offered as the member types (the page's <datalist>).
        self.fields["list_name"].widget.attrs["list"] = "checklist-lists"


class ItemEditForm(forms.Form):
    text = forms.CharField(max_length=MAX_TEXT, label="Item")


# A planned close as a delay from now: no time zone for the browser and the node to disagree on.
WHEN = {
    "hour": ("in an hour", timedelta(hours=1)),
    "evening": ("in 6 hours", timedelta(hours=6)),
    "day": ("in a day", timedelta(days=1)),
    "week": ("in a week", timedelta(weeks=1)),
}


class CloseForm(forms.Form):
    list_name = forms.CharField(max_length=MAX_LIST, widget=forms.HiddenInput)
    when = forms.ChoiceField(
        choices=[(key, label) for key, (label, _) in WHEN.items()],
        required=False,
        label="Close it",
    )
