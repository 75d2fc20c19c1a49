"""Threads on this node: their databases, the router that sends replicated models to them, the
op capture and the application of other nodes' ops (DESIGN §7)."""
