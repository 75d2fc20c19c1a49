"""A follower's feed: the rules it is ranked by, and the ranking itself.

Pure and deterministic: no database, no clock (``now`` is a parameter). Rules are plain values
checked when built, so a ``FeedRules`` in hand is always valid; reading and writing them as
JSON, and recipe files, live in ``recipes.py``.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from apps.timeline.post import PostView

RANKED, NEWEST = "ranked", "newest"
WEIGHT_LIMIT = 5
MAX_ENTRIES = 200  # per list or mapping of a feed
MAX_WORD = 60  # characters of a keyword, tag or mute word
MAX_NAME = 60
MIN_HALF_LIFE, MAX_HALF_LIFE = 0.5, 8760.0  # hours: half an hour to a year
_ID = re.compile(r"[0-9a-f]{64}\Z")  # a thread id or a member key
_BAD_CHARS = ("Cc", "Cs")  # control characters; lone surrogates would not survive UTF-8


class RulesError(ValueError):
    """Feed rules or a recipe refused; the message is a plain sentence for the person."""


class Weights(Mapping[str, float]):
    """An immutable, hashable mapping of names to weights (keeps ``FeedRules`` frozen)."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, float] | Iterable[tuple[str, float]] = ()) -> None:
        self._items = dict(items)

    def __getitem__(self, key: str) -> float:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    def __repr__(self) -> str:
        return f"Weights({self._items!r})"


@dataclass(frozen=True)
class FeedRules:
    """One named feed's rules. Built only valid: a bad value raises ``RulesError``."""

    name: str
    order: str = RANKED
    timelines: tuple[str, ...] = ()  # thread ids; () = every timeline the caller passes
    timeline_weights: Mapping[str, float] = Weights()
    author_weights: Mapping[str, float] = Weights()
    keywords: Mapping[str, float] = Weights()
    tags: Mapping[str, float] = Weights()
    mute_words: tuple[str, ...] = ()
    hide_replies_to_unfollowed: bool = False
    dedupe_reposts: bool = True
    half_life_hours: float = 24.0

    def __post_init__(self) -> None:
        # Checked and normalized here, so every way of building rules gets the same checks.
        for field_name, value in _checked(self).items():
            object.__setattr__(self, field_name, value)


def _checked(rules: FeedRules) -> dict[str, Any]:
    return {
        "name": _name(rules.name),
        "order": _order(rules.order),
        "timelines": _ids(rules.timelines),
        "timeline_weights": _weights(
            rules.timeline_weights, "timeline weights", _timeline_key, lambda _: "a timeline"
        ),
        "author_weights": _weights(
            rules.author_weights, "weights of people", _person_key, lambda _: "a person"
        ),
        "keywords": _weights(rules.keywords, "keywords", _keyword_key, 'the keyword "{}"'.format),
        "tags": _weights(rules.tags, "tags", _tag_key, 'the tag "#{}"'.format),
        "mute_words": _mute_words(rules.mute_words),
        "hide_replies_to_unfollowed": _flag(
            rules.hide_replies_to_unfollowed, "hide replies to people I don't follow"
        ),
        "dedupe_reposts": _flag(rules.dedupe_reposts, "show a reposted post once"),
        "half_life_hours": _half_life(rules.half_life_hours),
    }


def _clean_text(value: Any) -> str | None:
    """The text stripped, or None if it is not text or holds control characters."""
    if not isinstance(value, str):
        return None
    if any(unicodedata.category(c) in _BAD_CHARS for c in value):
        return None
    return value.strip()


def _name(value: Any) -> str:
    name = _clean_text(value)
    if name is None:
        raise RulesError("A feed's name must be plain text on one line.")
    if not name:
        raise RulesError("A feed needs a name.")
    if len(name) > MAX_NAME:
        raise RulesError(f"A feed's name can be at most {MAX_NAME} characters long.")
    return name


def _order(value: Any) -> str:
    if not isinstance(value, str) or value not in (RANKED, NEWEST):
        raise RulesError('A feed\'s order is either "ranked" or "newest".')
    return value


def _items(value: Any, what: str) -> tuple[Any, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise RulesError(f"The {what} of a feed must be a list.")
    if len(value) > MAX_ENTRIES:
        raise RulesError(f"A feed can have at most {MAX_ENTRIES} {what}.")
    return tuple(value)


def _timeline_key(value: Any) -> str:
    if not isinstance(value, str) or not _ID.match(value.lower()):
        raise RulesError("A timeline in this feed's rules is not a valid timeline id.")
    return value.lower()


def _person_key(value: Any) -> str:
    if not isinstance(value, str) or not _ID.match(value.lower()):
        raise RulesError("A person in this feed's rules is not named by a valid member key.")
    return value.lower()


def _ids(value: Any) -> tuple[str, ...]:
    ids = tuple(_timeline_key(item) for item in _items(value, "timelines"))
    if len(set(ids)) != len(ids):
        raise RulesError("The feed lists the same timeline twice.")
    return ids


def _word(value: Any, what: str) -> str:
    word = _clean_text(value)
    if word is None:
        raise RulesError(f"Each {what} must be plain text on one line.")
    if not word:
        raise RulesError(f"A {what} cannot be empty.")
    if len(word) > MAX_WORD:
        raise RulesError(f'The {what} "{word[:20]}…" is longer than {MAX_WORD} characters.')
    return word


def _keyword_key(value: Any) -> str:
    return _word(value, "keyword")


def _tag_key(value: Any) -> str:
    word = _word(value, "tag")
    tag = word.removeprefix("#").lower()
    if not tag or any(c.isspace() or c == "#" for c in tag):
        raise RulesError(f'A tag is a single word, and "{word}" is not.')
    return tag


def _weight(value: Any, subject: str) -> float:
    # Compared before float(), so a huge int cannot overflow; NaN and infinities fail the range.
    number = not isinstance(value, bool) and isinstance(value, (int, float))
    if not number or not -WEIGHT_LIMIT <= value <= WEIGHT_LIMIT:
        raise RulesError(f"A weight is a number from -5 to 5, and the one for {subject} is not.")
    return float(value)


def _weights(
    value: Any, plain: str, check_key: Callable[[Any], str], subject: Callable[[str], str]
) -> Weights:
    if not isinstance(value, Mapping):
        raise RulesError(f"The {plain} of a feed must pair each name with a number.")
    if len(value) > MAX_ENTRIES:
        raise RulesError(f"A feed can have at most {MAX_ENTRIES} {plain}.")
    out: dict[str, float] = {}
    folded: set[str] = set()
    for key, weight in value.items():
        clean = check_key(key)
        if _fold(clean) in folded:
            raise RulesError(f"The {plain} of a feed give {subject(clean)} twice.")
        folded.add(_fold(clean))
        out[clean] = _weight(weight, subject(clean))
    return Weights(out)


def _mute_words(value: Any) -> tuple[str, ...]:
    words = tuple(_word(item, "mute word") for item in _items(value, "mute words"))
    if len({_fold(w) for w in words}) != len(words):
        raise RulesError("The feed lists the same mute word twice.")
    return words


def _flag(value: Any, plain: str) -> bool:
    if not isinstance(value, bool):
        raise RulesError(f'The setting "{plain}" is either on or off (true or false).')
    return value


def _half_life(value: Any) -> float:
    number = not isinstance(value, bool) and isinstance(value, (int, float))
    if not number or not MIN_HALF_LIFE <= value <= MAX_HALF_LIFE:
        raise RulesError("The half-life is a number of hours from 0.5 to 8760 (a year).")
    return float(value)


DEFAULT_FEEDS: tuple[FeedRules, ...] = (
    FeedRules("Everything, newest first", order=NEWEST),
    FeedRules("Ranked"),
)


# --- matching and scoring ---


def _fold(text: str) -> str:
    """Text as words are compared: compatibility forms unified, case folded (Unicode-aware)."""
    return unicodedata.normalize("NFKC", text).casefold()


def _pattern(phrase: str) -> str:
    # Whole words: no word character just before or after; spaces inside match any whitespace.
    body = r"\s+".join(re.escape(part) for part in _fold(phrase).split())
    return rf"(?<!\w){body}(?!\w)"


_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class _Word:
    """A keyword or mute word, compiled. Each run of word characters in it must be one of the
    text's words for it to match: a set lookup that spares most regex searches."""

    needs: frozenset[str]
    pattern: re.Pattern[str] | None  # None: a single word, which ``needs`` alone decides

    @classmethod
    def of(cls, word: str) -> _Word:
        folded = _fold(word)
        single = _WORD.fullmatch(folded) is not None
        return cls(frozenset(_WORD.findall(folded)), None if single else re.compile(_pattern(word)))

    def found(self, text: str, words: set[str]) -> bool:
        if not self.needs <= words:
            return False
        return self.pattern is None or self.pattern.search(text) is not None


@dataclass(frozen=True)
class _Matcher:
    mute: tuple[_Word, ...]
    keywords: tuple[tuple[_Word, float], ...]


@functools.lru_cache(maxsize=64)
def _matcher(rules: FeedRules) -> _Matcher:
    return _Matcher(
        mute=tuple(_Word.of(w) for w in rules.mute_words),
        keywords=tuple((_Word.of(w), x) for w, x in rules.keywords.items()),
    )


def _applied(rules: FeedRules, matcher: _Matcher, post: PostView) -> float | None:
    """The sum of the weights that apply to the post (None if a mute word hides it): all of
    its score but its age, so it changes only when the post is edited."""
    text = _fold(f"{post.title}\n{post.text}")
    words = set(_WORD.findall(text))
    if any(mute.found(text, words) for mute in matcher.mute):
        return None
    exponent = rules.timeline_weights.get(post.thread.lower(), 0.0)
    exponent += rules.author_weights.get(post.author.lower(), 0.0)
    for keyword, weight in matcher.keywords:
        if keyword.found(text, words):
            exponent += weight
    post_tags = {tag.lower() for tag in post.tags}
    for tag, weight in rules.tags.items():
        if tag in post_tags:
            exponent += weight
    return exponent


def _log2_score(rules: FeedRules, matcher: _Matcher, post: PostView, now: datetime) -> float | None:
    """log2 of the score (None if muted): ranking on it keeps order where the score would
    overflow or underflow a float."""
    exponent = _applied(rules, matcher, post)
    if exponent is None:
        return None
    return exponent - _age_hours(post, now) / rules.half_life_hours


def _age_hours(post: PostView, now: datetime) -> float:
    return max(0.0, (now - post.created_at).total_seconds() / 3600)


def score(rules: FeedRules, post: PostView, now: datetime) -> float | None:
    """The post's rank score, or None if a mute word hides it:
    0.5 ** (age in hours / half-life) * 2 ** (sum of the weights that apply)."""
    log2 = _log2_score(rules, _matcher(rules), post, now)
    if log2 is None:
        return None
    return 2.0 ** min(log2, 1023.0)  # beyond this a float overflows; rank uses the log


_UNSEEN: Any = object()


def _one_per_key(posts: Iterable[PostView]) -> list[PostView]:
    """A post given twice counts once: its latest edit (then a deleted one) wins, and as a last
    resort its fields' text decides, so that the input's order never does."""
    best: dict[str, PostView] = {}
    for post in posts:
        seen = best.get(post.key)
        if seen is None or _version(post) > _version(seen):
            best[post.key] = post
    return list(best.values())


def _version(post: PostView) -> tuple[datetime, bool, str]:
    return (post.edited_at or post.created_at, post.deleted, repr(post))


def _dedupe_reposts(posts: list[PostView]) -> list[PostView]:
    """One post per original: the original itself if present, else its earliest repost
    (by the repost's time; the node's arrival order is not part of a post)."""
    groups: dict[str, list[PostView]] = {}
    for post in posts:
        groups.setdefault(post.repost_of or post.key, []).append(post)
    kept = []
    for target, group in groups.items():
        original = [p for p in group if p.repost_of is None and p.key == target]
        if original:
            # Its reposts share the original's fate (deleted, muted, hidden): filtered below.
            kept.append(original[0])
            continue
        live = [p for p in group if not p.deleted] or group
        kept.append(min(live, key=lambda p: (p.created_at, p.key)))
    return kept


def _hidden_reply(post: PostView, followed_authors: set[str]) -> bool:
    if post.reply_to is None and post.reply_to_author is None:
        return False
    answered = (post.reply_to_author or "").lower()
    if answered and answered == post.author.lower():
        return False  # someone continuing their own thread is not a reply to a stranger
    return answered not in followed_authors


def rank(
    rules: FeedRules,
    posts: Iterable[PostView],
    now: datetime,
    followed_authors: Collection[str],
    followed_timelines: Collection[str],
    memo: dict[Any, float | None] | None = None,
) -> list[PostView]:
    """The feed: the posts these rules show, best first. Independent of the input's order.

    With ``rules.timelines`` empty every post given is a candidate (the caller passes the
    followed timelines, and its own if wanted); otherwise only those timelines that are also
    followed. ``followed_authors`` should hold this node's own key, so replies to me show.
    ``memo``: the caller's memo of weights by post version, for these rules only.
    """
    matcher = _matcher(rules)
    authors = {a.lower() for a in followed_authors}
    candidates = _one_per_key(posts)
    if rules.timelines:
        allowed = set(rules.timelines) & {t.lower() for t in followed_timelines}
        candidates = [p for p in candidates if p.thread.lower() in allowed]
    if rules.dedupe_reposts:
        candidates = _dedupe_reposts(candidates)
    scored: list[tuple[float, PostView]] = []
    for post in candidates:
        if post.deleted:
            continue
        if rules.hide_replies_to_unfollowed and _hidden_reply(post, authors):
            continue
        # A post's weights change only with an edit: a caller ranking the same posts again
        # under the same rules passes a memo of them (keyed by the post's version).
        version = (post.key, post.edited_at)
        weights = memo.get(version, _UNSEEN) if memo is not None else _UNSEEN
        if weights is _UNSEEN:
            weights = _applied(rules, matcher, post)
            if memo is not None:
                memo[version] = weights
        if weights is not None:
            scored.append((weights - _age_hours(post, now) / rules.half_life_hours, post))
    # Stable sorts from the last tie-breaker to the first: a total, deterministic order.
    scored.sort(key=lambda item: item[1].key)
    scored.sort(key=lambda item: item[1].created_at, reverse=True)
    if rules.order == RANKED:
        scored.sort(key=lambda item: item[0], reverse=True)
    return [post for _, post in scored]


def __getattr__(name: str) -> Any:
    # The feed API is one list: its JSON and recipe half lives in recipes.py (which imports
    # this module), and is reachable from here too without an import cycle.
    from apps.timeline import recipes

    if name in recipes.__all__:
        return getattr(recipes, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
