"""Shared profile fields follow the profile. Being written."""


def install() -> None:
    """Connect the duties (called once, from ``IdentityConfig.ready``)."""
