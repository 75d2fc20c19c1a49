"""Feed rules as JSON-like data (the API's bodies) and as recipe files people share.

Strict on input: anything but well-formed rules raises ``RulesError`` with a plain sentence,
and nothing is half-read. The values themselves are checked by ``FeedRules`` (ranking.py).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from typing import Any

from apps.timeline.ranking import DEFAULT_FEEDS, FeedRules, RulesError

__all__ = [
    "DEFAULT_FEEDS",
    "MAX_FEEDS",
    "RECIPE_FORMAT",
    "RECIPE_LIMIT",
    "FeedRules",
    "RulesError",
    "feeds_from_data",
    "feeds_to_data",
    "recipe_export",
    "recipe_import",
    "rules_from_data",
    "rules_to_data",
]

RECIPE_FORMAT = "sereus-feed-recipe/1"
RECIPE_LIMIT = 64 * 1024  # bytes of a recipe file
MAX_FEEDS = 20
FIELDS = tuple(field.name for field in dataclasses.fields(FeedRules))
# These name this node's follows (timelines and people), so a shareable recipe leaves them out.
PRIVATE_FIELDS = ("timelines", "timeline_weights", "author_weights")
NOT_A_RECIPE = "This file is not a feed recipe."


def _shown(key: Any) -> str | None:
    """A setting's name fit to quote back to a person, or None."""
    if isinstance(key, str) and key.isprintable() and 0 < len(key) <= 40:
        return key
    return None


def rules_from_data(data: Any) -> FeedRules:
    """One feed's rules from a JSON-like object (the API's body). Only ``name`` is required."""
    if not isinstance(data, Mapping):
        raise RulesError("A feed's settings must be given as a JSON object.")
    for key in data:
        if key not in FIELDS:
            shown = _shown(key)
            if shown is None:
                raise RulesError("A feed's settings include one that does not exist.")
            raise RulesError(f'A feed has no setting called "{shown}".')
    if "name" not in data:
        raise RulesError("A feed needs a name.")
    return FeedRules(**{key: data[key] for key in data})


def rules_to_data(rules: FeedRules) -> dict[str, Any]:
    """The rules as a JSON-serializable object; ``rules_from_data`` reads it back equal."""
    data: dict[str, Any] = {}
    for name in FIELDS:
        value = getattr(rules, name)
        if isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, Mapping):
            value = dict(value)
        data[name] = value
    return data


def feeds_from_data(data: Any) -> tuple[FeedRules, ...]:
    """A list of 1 to 20 feeds with different names."""
    if isinstance(data, (str, bytes)) or not isinstance(data, (list, tuple)):
        raise RulesError("The feeds must be given as a list.")
    if not 1 <= len(data) <= MAX_FEEDS:
        raise RulesError(f"There must be between 1 and {MAX_FEEDS} feeds.")
    feeds = []
    names: set[str] = set()
    for number, item in enumerate(data, start=1):
        try:
            feed = rules_from_data(item)
        except RulesError as exc:
            raise RulesError(f"Feed number {number}: {exc}") from None
        if feed.name.casefold() in names:
            raise RulesError(f'Two feeds are called "{feed.name}"; each needs its own name.')
        names.add(feed.name.casefold())
        feeds.append(feed)
    return tuple(feeds)


def feeds_to_data(feeds: Iterable[FeedRules]) -> list[dict[str, Any]]:
    return [rules_to_data(feed) for feed in feeds]


def recipe_export(rules: FeedRules) -> bytes:
    """A recipe file (UTF-8 JSON) of the feed for others to import.

    It leaves out the feed's timelines, timeline weights and weights of people: they name this
    node's follows and would mean nothing (or too much) to someone else. Its name, order,
    keywords, tags, mute words, switches and half-life are kept.
    """
    feed = {k: v for k, v in rules_to_data(rules).items() if k not in PRIVATE_FIELDS}
    text = json.dumps({"format": RECIPE_FORMAT, "feed": feed}, ensure_ascii=False, indent=2)
    raw = (text + "\n").encode("utf-8")
    if len(raw) > RECIPE_LIMIT:
        # Only long words in scripts that take several bytes a letter can get here.
        raise RulesError(
            "This feed has too many words to fit in a recipe file; "
            "remove some keywords, tags or mute words and try again."
        )
    return raw


def _no_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # JSON lets a key appear twice and the last one win; a recipe that does is ambiguous.
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise RulesError("This feed recipe gives the same setting twice.")
        out[key] = value
    return out


def recipe_import(data: bytes, name: str | None = None) -> FeedRules:
    """The feed a recipe file describes, named ``name`` if given (else as in the file)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise RulesError(NOT_A_RECIPE)
    raw = bytes(data)
    if len(raw) > RECIPE_LIMIT:
        raise RulesError("This file is too big to be a feed recipe (a recipe is at most 64 KiB).")
    try:
        parsed = json.loads(raw.decode("utf-8-sig"), object_pairs_hook=_no_repeats)
    except RulesError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise RulesError(NOT_A_RECIPE) from None
    if not isinstance(parsed, dict) or "format" not in parsed:
        raise RulesError(NOT_A_RECIPE)
    marker = parsed["format"]
    if marker != RECIPE_FORMAT:
        if isinstance(marker, str) and marker.startswith("sereus-feed-recipe/"):
            raise RulesError(
                "This feed recipe was made by a newer version of Sereus and cannot be read here."
            )
        raise RulesError(NOT_A_RECIPE)
    if set(parsed) - {"format", "feed"}:
        raise RulesError("This feed recipe holds something besides a feed, so it is refused.")
    feed = parsed.get("feed")
    if not isinstance(feed, dict):
        raise RulesError("This feed recipe has no feed in it.")
    if any(key in feed for key in PRIVATE_FIELDS):
        raise RulesError("A feed recipe cannot name timelines or people, so this one is refused.")
    if name is not None:
        feed = {**feed, "name": name}
    return rules_from_data(feed)
