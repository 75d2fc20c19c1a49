"""The identity app's rules (ADR 26): every ordered table's validator. Being written."""

from collections.abc import Mapping

from apps.core.thread.ordered import Validator


def validators() -> Mapping[str, Validator]:
    return {}
