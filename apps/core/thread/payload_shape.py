"""What every payload parser (``payloads``, ``datapayload``) shares: the one error they raise,
and the check that a decoded map has exactly the fields its kind requires."""

from __future__ import annotations

from typing import Any


class PayloadError(ValueError):
    """A payload that does not have the shape its kind requires."""


def _fields(doc: Any, what: str, required: set[str], optional: frozenset[str] = frozenset()):
    if type(doc) is not dict:
        raise PayloadError(f"{what}: expected a map")
    keys = set(doc)
    missing = required - keys
    extra = keys - required - optional
    if missing or extra:
        raise PayloadError(f"{what}: missing {sorted(missing)} / unknown {sorted(map(str, extra))}")
    return doc
