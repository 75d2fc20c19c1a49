"""The shop's rules (placeholder until written)."""

from apps.core.thread.ordered import Validator


def validators() -> dict[str, Validator]:
    return {}
