"""The thread core: what a thread *is*, decided the same way on every replica.

Pure library (no network, no Django models): canonical encoding, keys and signatures, ops, the
policy, control operations, the validation pipeline and the deterministic resolver that turns a set
of ops into members, roles, keys and accepted changes. ``docs/adr/0007-thread-core.md`` explains
the rules; ``../shared/DESIGN.md`` §2-§6 and §9 is the contract.
"""
