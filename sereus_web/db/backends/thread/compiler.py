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
    _tag: bytes | None = None  # this node's row tag in the thread, once asked

    def pre_save_val(self, field, obj):
        value = super().pre_save_val(field, obj)
        if field.primary_key and getattr(value, "provisional", False):
            # The provisional id's first ten bytes (time, counter, version) are already unique
            # in this process (``rowid.row_id_new``): only its owner tag is replaced, without
            # making a whole id again for every row of a bulk insert.
            tag = self._tag
            if tag is None:
                tag = self._tag = self.connection.handle().row_tag()
            value = uuid.UUID(bytes=value.bytes[:10] + tag)
            setattr(obj, field.attname, value)
        return value
