"""Template helpers for names (ADR 16): the display name, for forms that show it."""

from __future__ import annotations

from django import template

from apps.core.threads import naming

register = template.Library()


@register.simple_tag
def display_name() -> str:
    """The name this node's person goes by ("" until set)."""
    return naming.display_name()
