"""The node's core: identity and keys, the owner, and (later) threads, ops and policy."""
