"""Work a member's node does on its own for challenges. Being written."""


def install() -> None:
    """Connect the duties (called once, from ``IdentityConfig.ready``)."""
