"""A registry of factories by app name: what this node's apps bring to threads (their policy
templates, their specs), registered in ``AppConfig.ready``."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Generic, TypeVar

# App, role and column names. \Z, not $: "$" also matches before a trailing newline.
NAME_RE = re.compile(r"\A[a-z][a-z0-9_]{0,63}\Z")
T = TypeVar("T")


class Named(Generic[T]):
    def __init__(self, missing: Callable[[str], Exception]) -> None:
        self._factories: dict[str, Callable[[], T]] = {}
        self._missing = missing

    def register(self, app: str, factory: Callable[[], T]) -> None:
        if not NAME_RE.match(app):
            raise ValueError(f"bad app name {app!r}")
        self._factories[app] = factory

    def names(self) -> list[str]:
        return sorted(self._factories)

    def make(self, app: str) -> T:
        try:
            factory = self._factories[app]
        except KeyError:
            raise self._missing(app) from None
        return factory()
