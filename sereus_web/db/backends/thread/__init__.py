"""The thread database backend: SQLite, with every write to a replicated table captured as an op.

ENGINE ``sereus_web.db.backends.thread`` (see ``base.py``). Thread databases are registered by
``apps.core.threads.registry``, never listed in settings.
"""
