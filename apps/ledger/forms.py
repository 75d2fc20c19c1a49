"""The tally pages' forms. They check only the shape of what was typed (lengths, a field left
empty); amounts and units are judged by the services, which say in words what is wrong."""

from __future__ import annotations

from django import forms

from apps.ledger.models import MAX_COMMENT, MAX_MEMO

AMOUNT_HELP = "In the tally's unit, like 12.50."


def _amount(label: str, help_text: str = AMOUNT_HELP) -> forms.CharField:
    # Text, not a number field: the services parse it exactly ("1,000.50", "12,5" refused in
    # words) and a browser's number field would round or reject what a person typed.
    return forms.CharField(
        max_length=64,
        label=label,
        help_text=help_text,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )


class TallyForm(forms.Form):
    name = forms.CharField(
        max_length=200, label="Name", help_text="What you call this tally, like “Bob and me”."
    )
    unit = forms.CharField(
        max_length=40,
        label="Unit",
        initial="CHIP",
        help_text="CHIP, a currency code like EUR, or a thing like “hours”.",
    )
    my_limit = _amount("The credit you give", "How much your partner may owe you.")
    partner_limit = _amount("The credit you ask for", "How much you may owe your partner.")
    comment = forms.CharField(
        max_length=MAX_COMMENT,
        required=False,
        label="Comment",
        help_text="Optional: what the tally is for.",
        widget=forms.Textarea(attrs={"rows": 2}),
    )


class PayForm(forms.Form):
    amount = _amount("Amount")
    memo = forms.CharField(
        max_length=MAX_MEMO, required=False, label="What for", help_text="Optional."
    )


class AskForm(PayForm):
    """Ask for payment: the same fields as paying."""


class LimitForm(forms.Form):
    amount = _amount("The credit you give", "How much your partner may owe you, at most.")


class PayLinkForm(forms.Form):
    link = forms.CharField(
        max_length=400,
        label="Payment request link",
        help_text="Paste the link you received (it starts with sereus:pay/).",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
