"""Django's SQL compilers, with one change: a row inserted with a provisional id gets an id
that names its owner (``apps.core.thread.rowid``) from the thread it is inserted into.

Model instances are often made before their thread is known (``Model(...)`` then
``.save(using=...)``, or ``QuerySet.create`` on ``.using(alias)``): their default id is then
provisional, and the insert, which knows its database, binds it to this node's member key of
that thread. Save and ``bulk_create`` both insert through here.
"""

import uuid

from django.db.models.sql.compiler import (  # noqa: F401 - the compilers this backend uses
    SQLAggregateCompiler,
    SQLCompiler,
    SQLDeleteCompiler,
    SQLUpdateCompiler,
)
from django.db.models.sql.compiler import SQLInsertCompiler as _SQLInsertCompiler


class SQLInsertCompiler(_SQLInsertCompiler):
    def as_sql(self):
        # Bound once per object before Django reads the values, not in ``pre_save_val``:
        # that runs once per column of every row, and a bulk insert of 100 000 rows of six
        # columns paid 600 000 extra Python calls for the 100 000 ids it changed.
        # A provisional id is always among the inserted columns (Django inserts a key it
        # has; only a key the database makes, which is never provisional, is left out).
        attname = self.query.get_meta().pk.attname
        tag = None  # this node's row tag in the thread, asked once a statement
        for obj in self.query.objs:
            value = getattr(obj, attname)
            if getattr(value, "provisional", False):
                # The provisional id's first ten bytes (time, counter, version) are already
                # unique in this process (``rowid.row_id_new``): only its owner tag is
                # replaced, without making a whole id again for every row.
                if tag is None:
                    tag = self.connection.handle().row_tag()
                setattr(obj, attname, uuid.UUID(bytes=value.bytes[:10] + tag))
        return super().as_sql()
