"""A replicated app for the tests of the thread database backend (installed by test settings)."""
