"""Template helpers of the design system (docs/ui.md): avatars and times as a list shows them."""

from __future__ import annotations

import hashlib
from datetime import datetime

from django import template
from django.utils import timezone

register = template.Library()

# sereus.css has one class per hue (.hue-0 … .hue-11), each dark enough for white initials (AA):
# the page's CSP allows no inline style, so a colour cannot be computed into the markup.
HUES = 12


def initials(name: str) -> str:
    """Up to two letters for an avatar: of the first two words ("Book club" → "BC")."""
    words = [word for word in name.split() if word[:1].isalnum()]
    return "".join(word[0] for word in words[:2]).upper() or "?"


def hue(key: str) -> int:
    """The same colour for the same id on every page and every node."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=2).digest()) % HUES


@register.inclusion_tag("core/ui/_avatar.html")
def avatar(name: str, key: str, size: str = "") -> dict:
    """A coloured circle with initials; decoration only, the name is always written beside it."""
    return {"initials": initials(name or ""), "hue": hue(key or name or ""), "size": size}


@register.filter
def when(moment: datetime | None, now: datetime | None = None) -> str:
    """A time as a chat list shows it: 14:05 today, Yesterday, a weekday this week, else 3 Mar."""
    if moment is None:
        return ""
    now = timezone.localtime(now or timezone.now())
    moment = timezone.localtime(moment)
    days = (now.date() - moment.date()).days
    if days <= 0:
        return moment.strftime("%H:%M")
    if days == 1:
        return "Yesterday"
    if days < 7:
        return moment.strftime("%A")
    if moment.year == now.year:
        return f"{moment.day} {moment:%b}"
    return f"{moment.day} {moment:%b} {moment.year}"


SETTINGS_PAGES = frozenset(
    {"settings", "network", "ui_gallery", "passphrase", "recovery_reveal", "token_create"}
)


@register.simple_tag(takes_context=True)
def nav_section(context: template.Context) -> str:
    """Which of the four places of the app (home, chats, threads, settings) a page belongs to."""
    match = getattr(context.get("request"), "resolver_match", None)
    if match is None:
        return ""
    if match.app_name == "messaging":
        return "chats"
    if match.app_name == "timeline":
        return "feed"
    if match.app_name == "core" and match.url_name == "dashboard":
        return "home"
    if match.app_name in ("ledger", "ledger_books", "market", "medical"):
        return "home"  # Money, Market and Health are cards on Home
    if match.app_name in ("cadre", "storage", "identity_profile"):
        return "settings"  # your devices, backups: parts of Settings
    if match.app_name == "core" and match.url_name in SETTINGS_PAGES:
        return "settings"
    threads = ("core", "checklist", "voting")
    if match.app_name in threads and match.url_name not in ("login", "claim"):
        return "threads"
    return ""
